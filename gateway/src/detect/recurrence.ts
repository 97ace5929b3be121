/**
 * Recurrence statistic: far-out windows that come back more often than the machine's baseline allows.
 *
 * A single-sample spike, a brief stall or a loose contact makes one window (two, as windows overlap) far
 * out and the rest normal. The window score sees each one but k-of-n needs 6 of 10 windows in a row, and
 * the drift average (clipped) barely moves; yet "the current went wild in 4 of the last 6 ten-minute
 * periods, when the baseline day saw that about once a day" is what a maintenance lead wants to hear.
 *
 * Per feature i, a window is **far out** when its conditional residual resid_i (conditional sd; the ONNX
 * model's output, as for the drift) is more than `level` from the feature's recent level (below). Event time is cut into slots of
 * horizonMs / slots (10 min by default) and a slot counts when any of its windows was far out for i, so a
 * burst (a start-up or shut-down flickering for a few minutes) counts once, while a fault that keeps
 * coming back fills slot after slot. Over the machine's out-of-sample baseline residuals in time order
 * (like the threshold and the drift spread):
 *
 *   p_i       = (slots with a far-out window + 1) / (baseline slots + 1)   (Laplace: a baseline day that
 *               saw none does not prove the rate is 0)
 *   allowed_i = smallest a >= 1 with  slotsPerWeek x p_i x P(Binomial(S - 1, p_i) >= a)  <= budget / F,
 *               and at least the most slots any horizon of the baseline itself held
 *
 * (the count of the last S slots goes from a to a + 1 only when a new slot is hit while a of the other S - 1
 * are, so that product is the expected number of false crossings per week; the F features share the
 * budget; a baseline whose far-out slots cluster never alarms on its own pattern.)
 * At run time count_i = hit slots among the last S (the current one included), and
 *
 *   recurrence = max_i count_i / (allowed_i + 0.5)
 *
 * which is > 1 exactly when some count exceeds what it allows (and below 0.8, the clear ratio, only once
 * it has fallen clearly back), so it joins the window score as threshold x recurrence.
 */

const WEEK_MS = 7 * 24 * 3_600_000;

export interface RecurrenceCalibration {
  /** |resid - recent level| above which a window is far out (conditional sd). */
  level: number;
  /** Weight of one window in the recent level, and the clip of each step (as the drift statistic's). */
  lambda: number;
  clip: number;
  horizonMs: number;
  /** Slots per horizon (S); a slot is horizonMs / slots long. */
  slots: number;
  /** Per feature (model input order): probability that a slot holds a far-out window, Laplace-estimated. */
  p: number[];
  /** Per feature: the most hit slots per horizon still consistent with the baseline. */
  allowed: number[];
  /** Per feature: hit slots in the baseline (for the record). */
  hits: number[];
  /** Baseline slots the rates come from. */
  baselineSlots: number;
}

export interface RecurrenceState {
  /** Per feature: indices (event time / slot length) of the hit slots within the horizon, ascending. */
  hit: number[][];
  /** Per feature: robust running level of the residual (see `updateRecurrence`). */
  local: Float64Array;
}

export interface RecurrenceValue {
  /** max_i count_i / (allowed_i + 0.5); 0 when nothing recurs. */
  value: number;
  /** Feature of that maximum, -1 if none. */
  feature: number;
  count: number;
  /** Hit slots per horizon expected from the baseline for that feature (S x p). */
  expected: number;
}

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/** P(X >= a) for X ~ Binomial(n, p), summed term by term in log space (n is small: slots per horizon). */
export function binomialUpperTail(a: number, n: number, p: number): number {
  if (a <= 0) return 1;
  if (a > n || !(p > 0)) return 0;
  if (p >= 1) return 1;
  let sum = 0;
  for (let k = a; k <= n; k++) sum += Math.exp(logChoose(n, k) + k * Math.log(p) + (n - k) * Math.log1p(-p));
  return Math.min(1, sum);
}

/**
 * Smallest a >= 1 whose expected false crossings per week are within budget. a = slots (a count can never
 * exceed it) when none below is: a feature the baseline hits nearly every slot cannot alarm this way.
 */
export function allowedSlots(p: number, slots: number, slotsPerWeek: number, budget: number): number {
  let a = 1;
  while (a < slots && slotsPerWeek * p * binomialUpperTail(a, slots - 1, p) > budget) a++;
  return a;
}

export function initialRecurrenceState(features: number): RecurrenceState {
  return { hit: Array.from({ length: features }, () => []), local: new Float64Array(features) };
}

export function slotMs(cal: Pick<RecurrenceCalibration, 'horizonMs' | 'slots'>): number {
  return cal.horizonMs / cal.slots;
}

/**
 * Fold one window (its end, event time) in; slots that left the horizon are forgotten. Far out is measured
 * from the feature's recent level, not from 0: a channel that sits off for hours (a tank lower than on the
 * baseline day, a slow drift) is the drift statistic's and the window score's business, and hovering near
 * `level` must not count as recurring events. The level follows the residual like the drift average
 * (weight `lambda` per window) but each step is clipped to +-clip around it (a Huber M-estimate of
 * location), so it tracks any sustained level while one spike moves it by at most lambda x clip.
 */
export function updateRecurrence(st: RecurrenceState, resid: ArrayLike<number>, end: number, cal: Pick<RecurrenceCalibration, 'level' | 'horizonMs' | 'slots' | 'lambda' | 'clip'>): void {
  const slot = Math.floor(end / slotMs(cal));
  for (let i = 0; i < st.hit.length; i++) {
    const list = st.hit[i] as number[];
    const r = resid[i];
    const e = st.local[i] as number;
    if (r !== undefined && Number.isFinite(r)) {
      if (Math.abs(r - e) > cal.level && list[list.length - 1] !== slot) list.push(slot);
      st.local[i] = e + cal.lambda * Math.max(-cal.clip, Math.min(cal.clip, r - e));
    }
    while (list.length > 0 && (list[0] as number) <= slot - cal.slots) list.shift();
  }
}

export function recurrenceValue(st: RecurrenceState, cal: RecurrenceCalibration): RecurrenceValue {
  let best: RecurrenceValue = { value: 0, feature: -1, count: 0, expected: 0 };
  for (let i = 0; i < st.hit.length; i++) {
    const count = (st.hit[i] as number[]).length;
    const allowed = cal.allowed[i];
    if (count === 0 || allowed === undefined) continue;
    const v = count / (allowed + 0.5);
    if (v > best.value) best = { value: v, feature: i, count, expected: (cal.p[i] as number) * cal.slots };
  }
  return best;
}

/**
 * Calibrate from out-of-sample baseline residuals in time order (`hopMs` apart). `budget` = expected false
 * alerts per machine-week this statistic may add when the machine behaves like its baseline.
 */
export function calibrateRecurrence(series: readonly ArrayLike<number>[], features: number, o: { level: number; horizonMs: number; slots: number; hopMs: number; budget: number; lambda: number; clip: number }): RecurrenceCalibration {
  const cal = { level: o.level, horizonMs: o.horizonMs, slots: o.slots, lambda: o.lambda, clip: o.clip };
  const len = slotMs(cal);
  const hits = new Array<number>(features).fill(0);
  const maxInHorizon = new Array<number>(features).fill(0);
  const st = initialRecurrenceState(features);
  series.forEach((r, t) => {
    const before = st.hit.map((l) => l[l.length - 1]);
    updateRecurrence(st, r, t * o.hopMs, cal);
    for (let i = 0; i < features; i++) {
      const list = st.hit[i] as number[];
      if (list.length > 0 && list[list.length - 1] !== before[i]) hits[i] = (hits[i] as number) + 1;
      maxInHorizon[i] = Math.max(maxInHorizon[i] as number, list.length);
    }
  });
  const baselineSlots = Math.max(1, Math.ceil((series.length * o.hopMs) / len));
  const p = hits.map((h) => Math.min(1, (h + 1) / (baselineSlots + 1)));
  const perFeature = o.budget / Math.max(1, features);
  const slotsPerWeek = WEEK_MS / len;
  const allowed = p.map((pi, i) => Math.max(maxInHorizon[i] as number, allowedSlots(pi, o.slots, slotsPerWeek, perFeature)));
  return { ...cal, p, allowed, hits, baselineSlots };
}
