/**
 * Synthetic InfluxDB contents in the schema the gateway writes (docs: dashboards/README.md "Data
 * model"), as line protocol. Used to develop the dashboard queries and as the fallback data source
 * of test/dashboards/queries.test.ts; the end-to-end source is the gateway fed by the simulators.
 *
 * Deterministic (fixed PRNG seed); timestamps are relative to `now` so the data sits in the
 * dashboards' default range.
 */

export interface SyntheticOptions {
  now: number;
  /** How far back the data starts, ms. */
  spanMs: number;
  host?: string;
}

export interface SyntheticData {
  lines: string[];
  machines: string[];
  /** The machine with a developing fault and an open alert. */
  faultyMachine: string;
  from: number;
  to: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Line-protocol string field value (quotes and backslashes escaped). */
function str(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function fields(f: Record<string, number | string | { int: number }>): string {
  return Object.entries(f)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? str(v) : typeof v === 'number' ? String(v) : `${Math.round(v.int)}i`}`)
    .join(',');
}

export function syntheticData(opts: SyntheticOptions): SyntheticData {
  const rnd = mulberry32(42);
  const host = opts.host ?? 'gw-test';
  const to = Math.floor(opts.now / 1000) * 1000;
  const from = to - opts.spanMs;
  const lines: string[] = [];
  const machines = [
    { id: 'press-01', kind: 'press', line: 'L1', metrics: { vibration_rms_mm_s: 2.1, temperature_c: 41, current_a: 12.5 }, state: 'healthy' as const },
    { id: 'press-02', kind: 'press', line: 'L1', metrics: { vibration_rms_mm_s: 2.3, temperature_c: 43, current_a: 12.9 }, state: 'fault' as const },
    { id: 'mill-01', kind: 'mill', line: 'L2', metrics: { spindle_speed_rpm: 8000, spindle_load_pct: 35, coolant_temp_c: 22 }, state: 'learning' as const },
  ];
  const threshold = 3.2;

  // telemetry: 1 Hz per machine; press-02's vibration grows over the last third.
  for (const m of machines) {
    for (let t = from; t <= to; t += 1000) {
      const progress = Math.max(0, (t - (to - opts.spanMs / 3)) / (opts.spanMs / 3));
      const f: Record<string, number> = {};
      for (const [name, base] of Object.entries(m.metrics)) {
        let v = base * (1 + (rnd() - 0.5) * 0.04);
        if (m.state === 'fault' && name === 'vibration_rms_mm_s') v *= 1 + 3 * progress;
        f[name] = Math.round(v * 1000) / 1000;
      }
      lines.push(`telemetry,kind=${m.kind},line=${m.line},machine=${m.id},site=plant-a ${fields(f)} ${t}`);
    }
  }

  // anomaly windows and machine_status, every 10 s.
  for (const m of machines) {
    for (let t = from + 10_000; t <= to; t += 10_000) {
      const progress = Math.max(0, (t - (to - opts.spanMs / 3)) / (opts.spanMs / 3));
      const learning = m.state === 'learning';
      const score = learning ? 0 : m.state === 'fault' ? 1 + 5 * progress + rnd() * 0.3 : 0.8 + rnd() * 0.6;
      const above = !learning && score > threshold;
      const top = m.state === 'fault' ? `vibration_rms_mm_s rms ${(1 + 3 * progress).toFixed(1)}x baseline; temperature_c mean z=1.2` : 'current_a std 1.1x baseline';
      const af: Record<string, number | string | { int: number }> = {
        score: Math.round(score * 1000) / 1000,
        above: { int: above ? 1 : 0 },
        learning: { int: learning ? 1 : 0 },
        top: learning ? '' : top,
      };
      if (!learning) af.threshold = threshold;
      lines.push(`anomaly,machine=${m.id} ${fields(af)} ${t}`);
      const alertOpen = m.state === 'fault' && t >= to - opts.spanMs / 6;
      const status = learning ? 'learning' : alertOpen ? 'alert' : above ? 'anomaly' : 'healthy';
      const sf: Record<string, number | string | { int: number }> = {
        status,
        score: af.score as number,
        baseline_progress: learning ? Math.min(0.99, (t - from) / opts.spanMs) : 1,
        last_seen_age_s: Math.round(rnd() * 1000) / 1000,
      };
      if (!learning) sf.threshold = threshold;
      lines.push(`machine_status,machine=${m.id} ${fields(sf)} ${t}`);
    }
  }

  // alerts: press-01 had a limit alert that resolved; press-02 has an open anomaly alert.
  const alert = (t: number, machine: string, kind: string, severity: string, f: Record<string, number | string>) =>
    lines.push(`alerts,kind=${kind},machine=${machine},severity=${severity} ${fields(f)} ${t}`);
  const a1 = 'a-press-01-limit-1';
  alert(from + 60_000, 'press-01', 'limit', 'warning', { id: a1, state: 'open', event: 'opened', message: 'temperature_c 81.2 above limit 80', score: 81.2, threshold: 80, contributors: 'temperature_c max 81.2 (limit 80)' });
  alert(from + 180_000, 'press-01', 'limit', 'warning', { id: a1, state: 'resolved', event: 'resolved', message: 'temperature_c back below limit 80', score: 76.1, threshold: 80, contributors: '' });
  const a2 = 'a-press-02-anomaly-1';
  const contributors = 'vibration_rms_mm_s rms 3.1x baseline; temperature_c mean z=1.2';
  alert(to - opts.spanMs / 6, 'press-02', 'anomaly', 'warning', { id: a2, state: 'open', event: 'opened', message: 'Anomaly score 4.1 above threshold 3.2 for 4 of 5 windows', score: 4.1, threshold, contributors });
  alert(to - opts.spanMs / 12, 'press-02', 'anomaly', 'critical', { id: a2, state: 'open', event: 'updated', message: 'Anomaly score 5.6 above threshold 3.2 for 5 of 5 windows', score: 5.6, threshold, contributors });

  // gateway health every 10 s: monotonically increasing counters.
  let accepted = 0;
  let rejected = 0;
  let messages = 0;
  let cpu = 0;
  let writeErrors = 0;
  let dropped = 0;
  let overwritten = 0;
  const rejects: Record<string, number> = { invalid_json: 0, timestamp_in_future: 0 };
  for (let t = from; t <= to; t += 10_000) {
    accepted += machines.length * 10;
    messages += machines.length * 10 + 1;
    rejected += 1;
    if (rnd() < 0.1) dropped += 1;
    if (rnd() < 0.1) overwritten += 1;
    rejects.invalid_json = (rejects.invalid_json ?? 0) + 1;
    if (rnd() < 0.3) rejects.timestamp_in_future = (rejects.timestamp_in_future ?? 0) + 1;
    if (rnd() < 0.05) writeErrors += 1;
    cpu += 0.4 + rnd() * 0.2;
    lines.push(
      `gateway,host=${host} ${fields({
        readings_accepted: { int: accepted },
        readings_rejected: { int: rejected },
        readings_dropped: { int: dropped },
        readings_overwritten: { int: overwritten },
        messages_received: { int: messages },
        outbox_depth: { int: Math.floor(rnd() * 50) },
        outbox_oldest_age_s: Math.round(rnd() * 2000) / 1000,
        outbox_bytes: { int: 4096 + Math.floor(rnd() * 8192) },
        write_errors: { int: writeErrors },
        write_latency_ms: Math.round((5 + rnd() * 20) * 100) / 100,
        inference_latency_ms: Math.round((0.5 + rnd()) * 100) / 100,
        clients_connected: { int: machines.length },
        rss_bytes: { int: 90e6 + rnd() * 10e6 },
        heap_used_bytes: { int: 30e6 + rnd() * 5e6 },
        cpu_seconds: Math.round(cpu * 1000) / 1000,
        open_alerts: { int: t >= to - opts.spanMs / 6 ? 1 : 0 },
      })} ${t}`,
    );
    for (const [reason, count] of Object.entries(rejects)) {
      if (count > 0) lines.push(`gateway_rejects,host=${host},reason=${reason} count=${count}i ${t}`);
    }
  }
  return { lines, machines: machines.map((m) => m.id), faultyMachine: 'press-02', from, to };
}
