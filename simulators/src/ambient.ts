import { Rng } from './prng.js';
import { localTime } from './schedule.js';

/**
 * Shop-floor air temperature: a daily cycle (coolest ~05:00, warmest ~15:00), weather as a slow
 * Ornstein-Uhlenbeck wander, and heat from the running shop with a lag of about an hour.
 */
export class Ambient {
  private weather = 0;
  private shopHeat = 0;
  private readonly rng: Rng;
  readonly base: number;

  constructor(seed: number, base = 20) {
    this.rng = new Rng(seed);
    this.base = base;
    this.weather = this.rng.normal() * 1.0;
  }

  /** Advance by dtMs and return the temperature in °C at the end of the step. */
  step(ts: number, dtMs: number, utcOffsetMinutes: number, shopActive: number): number {
    const tauW = 8 * 3_600_000;
    const a = Math.exp(-dtMs / tauW);
    // OU with stationary sd 1.2 °C
    this.weather = this.weather * a + 1.2 * Math.sqrt(1 - a * a) * this.rng.normal();
    const aHeat = 1 - Math.exp(-dtMs / 3_600_000);
    this.shopHeat += (2.0 * shopActive - this.shopHeat) * aHeat;
    const { minute } = localTime(ts, utcOffsetMinutes);
    const daily = 3 * Math.cos((2 * Math.PI * (minute - 15 * 60)) / 1440);
    return this.base + daily + this.weather + this.shopHeat;
  }
}
