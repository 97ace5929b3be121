/**
 * k-of-n opening and hysteresis clearing of one machine's anomaly condition.
 *
 * Opens when at least k of the last n scored windows are above the threshold (one noisy window never
 * pages anyone). While open: an update when the score beats the last reported peak by updateRatio, the
 * severity rises, or an above-threshold window is led by a channel the last report did not name (a new
 * fault starting while an alert for something else is still open must not go unsaid). Clears after clearWindows consecutive windows below threshold x clearRatio, so a score
 * hovering at the threshold does not flap.
 */
export interface PolicyOptions {
  k: number;
  n: number;
  clearRatio: number;
  clearWindows: number;
  criticalRatio: number;
  updateRatio: number;
}

/**
 * Per-machine threshold from the machine's own out-of-sample baseline scores:
 * max(minThreshold, quantile(scores, q) x margin). Non-finite scores are ignored.
 */
export function calibrateThreshold(scores: readonly number[], t: { quantile: number; margin: number; minThreshold: number }): { threshold: number; qValue: number } {
  const s = scores.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { threshold: t.minThreshold, qValue: NaN };
  const pos = (s.length - 1) * t.quantile;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const qValue = (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
  return { threshold: Math.max(t.minThreshold, qValue * t.margin), qValue };
}

export interface PolicyState {
  open: boolean;
  /** Event time the open condition started (end of its first above-threshold window). */
  since: number | null;
  /** Highest score reported in an event while open. */
  reportedPeak: number;
  reportedSeverity: 'warning' | 'critical' | null;
  /** Last n above/below flags with the window end of each above flag. */
  history: Array<{ above: boolean; end: number }>;
  belowRun: number;
  /** Metrics named in any event (open or update) since the condition opened. */
  reportedMetrics: string[];
}

export type PolicyDecision =
  | { type: 'none' }
  | { type: 'open'; since: number; severity: 'warning' | 'critical'; aboveCount: number }
  | { type: 'update'; since: number; severity: 'warning' | 'critical'; aboveCount: number; reason: 'peak' | 'severity' | 'channel' }
  | { type: 'clear'; at: number };

export function initialPolicyState(): PolicyState {
  return { open: false, since: null, reportedPeak: 0, reportedSeverity: null, history: [], belowRun: 0, reportedMetrics: [] };
}

/** `named`: the metrics this window's contributors name, the dominant one first (empty when unknown). */
export function stepPolicy(st: PolicyState, opts: PolicyOptions, score: number, threshold: number, windowEnd: number, named: readonly string[] = []): PolicyDecision {
  const above = score > threshold;
  st.history.push({ above, end: windowEnd });
  while (st.history.length > opts.n) st.history.shift();
  const aboveCount = st.history.reduce((a, h) => a + (h.above ? 1 : 0), 0);
  const severity: 'warning' | 'critical' = score >= threshold * opts.criticalRatio ? 'critical' : 'warning';
  if (!st.open) {
    if (aboveCount >= opts.k) {
      const first = st.history.find((h) => h.above);
      st.open = true;
      st.since = first ? first.end : windowEnd;
      st.reportedPeak = score;
      st.reportedSeverity = severity;
      st.belowRun = 0;
      st.reportedMetrics = [...named];
      return { type: 'open', since: st.since, severity, aboveCount };
    }
    return { type: 'none' };
  }
  if (score < threshold * opts.clearRatio) st.belowRun += 1;
  else st.belowRun = 0;
  if (st.belowRun >= opts.clearWindows) {
    st.open = false;
    st.since = null;
    st.reportedPeak = 0;
    st.reportedSeverity = null;
    st.belowRun = 0;
    st.history = [];
    st.reportedMetrics = [];
    return { type: 'clear', at: windowEnd };
  }
  const severityUp = severity === 'critical' && st.reportedSeverity !== 'critical';
  const peak = score > st.reportedPeak * opts.updateRatio;
  const lead = named[0];
  const newChannel = above && lead !== undefined && !st.reportedMetrics.includes(lead);
  if (peak || severityUp || newChannel) {
    st.reportedPeak = Math.max(st.reportedPeak, score);
    st.reportedSeverity = severityUp ? 'critical' : (st.reportedSeverity ?? severity);
    // Every channel named since the condition opened: each can lead to at most one such update, so two
    // channels taking turns at the top cannot flood anyone.
    st.reportedMetrics = [...new Set([...st.reportedMetrics, ...named])];
    return { type: 'update', since: st.since ?? windowEnd, severity: st.reportedSeverity, aboveCount, reason: severityUp ? 'severity' : peak ? 'peak' : 'channel' };
  }
  return { type: 'none' };
}
