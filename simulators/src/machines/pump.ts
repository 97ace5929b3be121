import type { Effects } from '../faults.js';
import { ShiftClock } from '../schedule.js';
import type { MachineKind } from '../types.js';
import { clamp, lagAlpha, MachineModel, type ChannelDef, type MachineOptions, type StepEnv } from './base.js';

/** Channels of a centrifugal process/cooling-water pump, in output order. */
export const PUMP_CHANNELS: readonly ChannelDef[] = [
  { name: 'flow_l_min', unit: 'l/min', description: 'Delivered flow (magnetic flow meter).', decimals: 1, healthy: [0, 650], noiseAbs: 0.3, noiseRel: 0.005, floor: 0 },
  { name: 'suction_pressure_bar', unit: 'bar(g)', description: 'Suction pressure (gauge), fed from a tank.', decimals: 2, healthy: [-0.3, 0.8], noiseAbs: 0.005, noiseRel: 0.005, floor: -1 },
  { name: 'discharge_pressure_bar', unit: 'bar(g)', description: 'Discharge pressure (gauge).', decimals: 2, healthy: [-0.3, 4.5], noiseAbs: 0.005, noiseRel: 0.003, floor: -1 },
  { name: 'motor_current_a', unit: 'A', description: 'Motor RMS phase current (direct-on-line start).', decimals: 2, healthy: [0, 45], noiseAbs: 0.02, noiseRel: 0.008, floor: 0 },
  { name: 'bearing_temp_c', unit: '°C', description: 'Pump drive-end bearing temperature.', decimals: 1, healthy: [5, 60], noiseAbs: 0.08, noiseRel: 0, floor: -40 },
  { name: 'vibration_rms_mm_s', unit: 'mm/s', description: 'Bearing housing vibration velocity, RMS.', decimals: 2, healthy: [0, 4.5], noiseAbs: 0.01, noiseRel: 0.04, floor: 0 },
  { name: 'vibration_kurtosis', unit: '1', description: 'Kurtosis of the vibration signal (3 = Gaussian).', decimals: 2, healthy: [2.2, 4.0], noiseAbs: 0.12, noiseRel: 0, floor: 1 },
];

const MIN = 60_000;
const BAR_PER_M = 0.0981; // water, 1000 kg/m³

/**
 * Fixed-speed centrifugal pump on a throttled system (fully open = best-efficiency point). Pump curve H = H0·s² − k·Q² (affinity laws in
 * speed s), system curve H = Hstatic + Kv·Q²/valve²; the operating point is their intersection. The
 * valve position follows process demand (step changes every 10-60 min, actuator lag). Shaft power
 * follows the radial-pump power curve (45% at shut-off, rising with flow); current = magnetising + power.
 * Vibration rises away from the BEP (recirculation) and with cavitation; bearing temperature lags
 * current and speed (tau 20-30 min). Suction comes from a tank whose level wanders slowly.
 */
export class CentrifugalPump extends MachineModel {
  readonly kind: MachineKind = 'pump';
  readonly channels = PUMP_CHANNELS;
  private readonly clock: ShiftClock;
  private readonly h0: number;
  private readonly qMax: number;
  private readonly qBep: number;
  private readonly hStatic: number;
  private readonly kv: number;
  private readonly etaMax: number;
  private readonly pBep: number;
  private readonly iRated: number;
  private readonly pRated: number;
  private readonly kSuction: number;
  private readonly pTankBase: number;
  private readonly pCav: number;
  private readonly vibBase: number;
  private readonly kurtBase: number;
  private readonly tauMs: number;

  private sf = 0;
  private valve = 0.7;
  private valveSet = 0.7;
  private nextValveChange = 0;
  private tankDev = 0;
  private temp = Number.NaN;

  constructor(opts: MachineOptions) {
    super(opts, 'three-shift');
    const r = this.prm;
    this.clock = new ShiftClock(this.schedule, this.jitterKey);
    this.h0 = r.uniform(28, 36);
    this.qMax = r.uniform(650, 800);
    this.qBep = 0.55 * this.qMax;
    this.hStatic = r.uniform(3, 8);
    // valve fully open puts the pump at its best-efficiency point
    this.kv = (this.h0 * (1 - 0.55 * 0.55) - this.hStatic) / (this.qBep * this.qBep);
    this.etaMax = r.uniform(0.62, 0.74);
    const hBep = this.h0 * (1 - 0.55 * 0.55);
    this.pBep = (9810 * (this.qBep / 60_000) * hBep) / this.etaMax;
    this.pRated = r.uniform(2500, 3200);
    this.iRated = this.pRated / (Math.sqrt(3) * 400 * 0.85 * 0.86);
    this.kSuction = r.uniform(0.06, 0.12) / (this.qBep * this.qBep);
    this.pTankBase = r.uniform(0.25, 0.4);
    this.pCav = r.uniform(-0.5, -0.4);
    this.vibBase = r.clampedNormal(1.2, 0.2, 0.8, 1.6);
    this.kurtBase = r.clampedNormal(3.0, 0.08, 2.8, 3.2);
    this.tauMs = r.uniform(20, 30) * MIN;
    this.init();
  }

  protected simulate(ts: number, dtMs: number, env: StepEnv, fx: Effects, out: Float64Array): void {
    const on = !fx.failed && this.clock.isOn(ts, env.utcOffsetMinutes);
    // direct-on-line: up to speed in ~1.5 s, coast down in ~5 s
    const wasBelow = this.sf < 1;
    this.sf = on ? Math.min(1, this.sf + dtMs / 1500) : Math.max(0, this.sf - dtMs / 5000);
    const starting = on && wasBelow && this.sf < 1;
    if (ts >= this.nextValveChange) {
      this.valveSet = this.ops.uniform(0.4, 1.0);
      this.nextValveChange = ts + this.ops.uniform(10, 60) * MIN;
    }
    this.valve += (this.valveSet - this.valve) * lagAlpha(dtMs, 8000);
    const aT = lagAlpha(dtMs, 2 * 3_600_000);
    this.tankDev += -this.tankDev * aT + Math.sqrt(aT * (2 - aT)) * this.ops.normal();
    const pTank = this.pTankBase + 0.06 * this.tankDev - 0.9 * fx.suctionLoss;

    const sf = this.sf;
    const kPump = this.h0 / (this.qMax * this.qMax);
    const kClog = (fx.clog * 12) / (this.qBep * this.qBep); // strainer loss, m of head per (l/min)²
    const kSys = this.kv / (this.valve * this.valve) + kClog;
    const hAvail = this.h0 * sf * sf - this.hStatic;
    let q = hAvail > 0 ? Math.sqrt(hAvail / (kPump + kSys)) : 0;
    let ps = pTank - (this.kSuction * q * q) - kClog * BAR_PER_M * q * q;
    // cavitation: vapour forms once suction pressure falls below the pump's NPSH requirement
    const cav = sf > 0 ? clamp((this.pCav - ps) / 0.3, 0, 1) : 0;
    let headLoss = 0;
    if (cav > 0) {
      const burst = 1 + 0.3 * this.fxRng.normal();
      q *= 1 - 0.3 * cav * burst;
      headLoss = 0.25 * cav * (1 + 0.3 * this.fxRng.normal());
      ps = pTank - (this.kSuction * q * q) - kClog * BAR_PER_M * q * q;
    }
    const hPump = Math.max(0, (this.h0 * sf * sf - kPump * q * q) * (1 - headLoss));
    const pd = ps + BAR_PER_M * hPump;

    let current = 0;
    if (sf > 0) {
      // radial pump power curve: ~45% of BEP power at shut-off, rising about linearly with flow
      // (affinity: flow scales with speed, power with speed cubed); cavitation unloads the impeller
      const x = q / (this.qBep * sf);
      const pShaft = this.pBep * (0.45 + 0.55 * x) * sf * sf * sf * (1 - 0.15 * cav);
      current = this.iRated * (0.35 * sf + (0.65 * pShaft) / this.pRated) * fx.currentGain;
      if (starting) current = Math.max(current, 6 * this.iRated * (1 - 0.6 * sf));
    }

    if (Number.isNaN(this.temp)) this.temp = env.ambientC;
    const iRel = current / this.iRated;
    const tTarget = env.ambientC + 8 * sf + 12 * Math.min(iRel * iRel, 1.5) + fx.heat * sf;
    this.temp += (tTarget - this.temp) * lagAlpha(dtMs, this.tauMs);

    let vib = 0.05;
    let kurt = this.kurtBase;
    if (sf > 0) {
      const dev = (q - this.qBep) / this.qBep;
      vib += (0.3 + this.vibBase * sf * sf * (1 + 0.8 * dev * dev)) * fx.vibGain + fx.vibAdd * sf * sf;
      kurt += fx.kurtAdd * Math.min(1, 3 * sf);
      if (cav > 0) {
        vib += 3 * cav * (1 + 0.5 * Math.abs(this.fxRng.normal()));
        kurt += 4 * cav * (1 + 0.3 * this.fxRng.normal());
      }
    }

    out[0] = q;
    out[1] = ps;
    out[2] = pd;
    out[3] = current;
    out[4] = this.temp;
    out[5] = vib;
    out[6] = kurt;
  }
}
