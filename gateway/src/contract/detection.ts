/**
 * Contract between detection (windows -> features -> detector -> k-of-n policy) and alerts.
 * Pure types: detection emits these, alerts consume them; neither imports the other.
 */

export type ConditionKind = 'anomaly' | 'limit' | 'silence';
export type Severity = 'info' | 'warning' | 'critical';

/** One metric/feature that pushed a score up, in words a maintenance lead can read. */
export interface Contributor {
  metric: string;
  /** e.g. "mean", "std", "rms", "slope", "kurtosis", "crest", "max", "min", "relation". */
  feature: string;
  /** Value of the feature in the window. */
  value: number;
  /** Baseline reference (for example the baseline mean of this feature). */
  baseline: number;
  /** How far from normal, in the unit the text uses (e.g. 4.1 for "4.1x baseline" or a z-score). */
  ratio: number;
  /** Plain words, e.g. "vibration_rms_mm_s std 4.1x baseline". */
  text: string;
}

/** Score of one closed window of one machine (written to InfluxDB `anomaly` and served over HTTP). */
export interface WindowScore {
  machine: string;
  /** Window bounds, event time, epoch ms. */
  windowStart: number;
  windowEnd: number;
  /** `learning` while the baseline is being collected: score/threshold are not meaningful yet. */
  phase: 'learning' | 'scoring';
  score: number;
  /** Calibrated per-machine threshold; null while learning. */
  threshold: number | null;
  /** score > threshold in this window (a single window never opens an alert by itself). */
  above: boolean;
  contributors: Contributor[];
  modelVersion: string;
}

/**
 * A condition changed for (machine, kind): `active: true` opens or updates the one alert of that
 * machine and kind; `active: false` clears it (the alert auto-resolves).
 */
export interface ConditionEvent {
  machine: string;
  kind: ConditionKind;
  active: boolean;
  /** Event time (epoch ms): when the condition started (active) or cleared (inactive). */
  eventTs: number;
  severity: Severity;
  score?: number;
  threshold?: number;
  contributors: Contributor[];
  /** One sentence, e.g. "Anomaly score 7.2 above threshold 3.1 for 4 of 5 windows". */
  message: string;
}
