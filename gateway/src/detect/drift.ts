/**
 * Drift statistic: a sustained small shift of one feature, which the window score misses.
 *
 * The window score is a sum over all F features of one window, so a channel that is 2 sd off in every
 * window (a temperature creeping up, a sensor drifting, a flow slowly falling) adds only ~4 x P_ii / F
 * to it, and each window on its own is well within the healthy spread. Averaging over windows removes
 * that spread: per feature, an exponentially weighted moving average (EWMA control chart, Roberts 1959;
 * Montgomery, Introduction to Statistical Quality Control, ch. 9) of the model's conditional residual
 * `resid` (the feature's deviation from what the machine's other channels predict, in conditional sd;
 * output of the ONNX model, so the averaging runs on what onnxruntime computed):
 *
 *   e_i <- (1 - lambda) e_i + lambda clip(resid_i, +-clip),  lambda = 1 - exp(-hopMs / timeConstantMs)
 *   drift = max_i |e_i| / sigma_i
 *
 * sigma_i is calibrated per machine, like the threshold: the RMS of e_i when the same EWMA runs over the
 * machine's out-of-sample baseline residuals in time order (so a slow channel whose residual wanders,
 * e.g. a temperature following the weather, gets a wide band and a fast one a narrow band), floored at
 * the value for N(0,1) residuals of windows that overlap by windowMs / hopMs (each reading sits in that
 * many windows, so there are that many times fewer independent residuals than windows):
 * sqrt(lambda / (2 - lambda)) x sqrt(windowMs / hopMs). Clipping each residual at
 * `clip` sd (Huber) keeps a single transition window from moving the average much, while sparse but
 * repeated outliers (spikes) and small sustained shifts both accumulate.
 */

export interface DriftCalibration {
  /** Per feature (model input order): RMS of the EWMA over the baseline, floored. */
  sigma: number[];
  lambda: number;
  clip: number;
  /** Largest drift value seen over the baseline with these sigmas (for the record). */
  baselineMax: number;
}

export interface DriftState {
  e: Float64Array;
}

export interface DriftValue {
  /** max_i |e_i| / sigma_i (0 when there is nothing to average). */
  value: number;
  /** Feature index of that maximum, -1 if none. */
  feature: number;
  /** Signed EWMA of that feature (conditional sd). */
  ewma: number;
}

/** EWMA weight of one window so the average forgets with the given time constant. */
export function driftLambda(hopMs: number, timeConstantMs: number): number {
  return 1 - Math.exp(-hopMs / Math.max(hopMs, timeConstantMs));
}

/** Stationary sd of the EWMA of independent N(0,1) values. */
export function iidSigma(lambda: number): number {
  return Math.sqrt(lambda / (2 - lambda));
}

export function initialDriftState(features: number): DriftState {
  return { e: new Float64Array(features) };
}

/**
 * Windows that never came (the machine was silent, or the gateway was down) count as residual 0, as a
 * missing feature does: the average decays by one step per missed hop instead of freezing at its old
 * value. `missed` = hops between the last window folded in and this one, minus 1.
 */
export function decayDrift(st: DriftState, missed: number, lambda: number): void {
  if (!(missed > 0)) return;
  const k = Math.pow(1 - lambda, missed);
  for (let i = 0; i < st.e.length; i++) st.e[i] = (st.e[i] as number) * k;
}

/** Update the EWMA with one window's residuals; a non-finite residual counts as 0 (missing). */
export function updateDrift(st: DriftState, resid: ArrayLike<number>, lambda: number, clip: number): void {
  const f = st.e.length;
  for (let i = 0; i < f; i++) {
    const r = i < resid.length ? (resid[i] as number) : 0;
    const v = Number.isFinite(r) ? Math.max(-clip, Math.min(clip, r)) : 0;
    st.e[i] = (1 - lambda) * (st.e[i] as number) + lambda * v;
  }
}

export function driftValue(st: DriftState, sigma: readonly number[]): DriftValue {
  let value = 0;
  let feature = -1;
  for (let i = 0; i < st.e.length; i++) {
    const s = sigma[i] ?? 0;
    if (!(s > 0)) continue;
    const d = Math.abs(st.e[i] as number) / s;
    if (d > value) {
      value = d;
      feature = i;
    }
  }
  return { value, feature, ewma: feature >= 0 ? (st.e[feature] as number) : 0 };
}

/**
 * Calibrate sigma from out-of-sample baseline residuals in time order. The first `warmup` windows (the
 * EWMA starting from 0) are left out of the RMS when enough windows remain.
 */
export function calibrateDrift(series: readonly ArrayLike<number>[], features: number, lambda: number, clip: number, overlap = 1): DriftCalibration {
  const st = initialDriftState(features);
  const warmup = Math.ceil(2 / lambda);
  const skip = series.length - warmup >= 20 ? warmup : 0;
  const sq = new Float64Array(features);
  const rsq = new Float64Array(features);
  const trace: Float64Array[] = [];
  let n = 0;
  series.forEach((r, t) => {
    updateDrift(st, r, lambda, clip);
    for (let i = 0; i < features; i++) {
      const v = Number.isFinite(r[i] as number) ? Math.max(-clip, Math.min(clip, r[i] as number)) : 0;
      rsq[i] = (rsq[i] as number) + v * v;
    }
    if (t < skip) return;
    n++;
    for (let i = 0; i < features; i++) sq[i] = (sq[i] as number) + (st.e[i] as number) ** 2;
    trace.push(Float64Array.from(st.e));
  });
  const floor = iidSigma(lambda) * Math.sqrt(Math.max(1, overlap));
  // Residuals wider than N(0,1) out of sample (clipped, as averaged) widen the floor in proportion.
  const m = Math.max(1, series.length);
  const sigma = Array.from(sq, (s, i) => Math.max(floor * Math.max(1, Math.sqrt((rsq[i] as number) / m)), n > 0 ? Math.sqrt(s / n) : 0));
  let baselineMax = 0;
  for (const e of trace) baselineMax = Math.max(baselineMax, driftValue({ e }, sigma).value);
  return { sigma, lambda, clip, baselineMax };
}
