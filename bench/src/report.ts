/**
 * Render a bench results JSON as the markdown tables of bench/README.md ("Latest figures").
 * Usage: `npx tsx bench/src/report.ts bench/results/bench-<time>-full.json`
 */
import { readFileSync } from 'node:fs';

interface Step {
  target: number;
  achieved: number;
  stored: number;
  latP50Ms: number | null;
  latP99Ms: number | null;
  ackP99Ms: number | null;
  gwCpuPct: number | null;
  influxCpuPct: number | null;
  genCpuPct: number | null;
  otherCpuPct: number | null;
  behind: boolean;
}
interface Scenario {
  name: string;
  machines: number;
  sustainedMax: number | null;
  confirm: Step | null;
  atHalf: Step | null;
  steps: Step[];
  published: number;
  stored: number;
  loss: number;
  gatewayRssPeakMB: number | null;
  gatewayLiveHeapMaxMB?: number | null;
  gatewayCpuSeconds: number | null;
  inference: { meanLatencyMs: number; inferenceRuns: number; windowsScored: number } | null;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: tsx bench/src/report.ts <results.json>\n');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
const f = (n: number | null | undefined): string => (n == null ? '-' : Math.round(n).toLocaleString('en-US'));
const out: string[] = [];
const host = r.host as Record<string, unknown>;
out.push(
  `Run ${String(r.startedAt)} (${String(r.mode)}, ${String(r.durationMin)} min), \`${String(r.command)}\`; gateway: ${String(r.gateway)}; ` +
    `${String(host.nproc)} cores ${String(host.cpuModel)}, ${String(host.memoryGiB)} GiB, disk ${String(host.disk)}, ${String(host.kernel)}, Node ${String(host.node)}, ${String(r.influxd)}, ${String(host.mosquitto)}; ` +
    `load average at start ${JSON.stringify(host.loadAverageAtStart)}, at end ${JSON.stringify(r.loadAverageAtEnd)}.`,
  '',
);
const ic = r.influxCeiling as { concurrency: number; pointsPerSec: number; influxCpuPct: number | null; otherCpuPct?: number }[] | undefined;
const influxBest = ic ? Math.max(...ic.map((x) => x.pointsPerSec)) : null;
const mq = r.mosquitto as { subscriberReceivedPerSec?: number; mosquittoCpuPct?: number; otherCpuPct?: number } | null | undefined;
out.push('| reference | figure | CPU (% of one core) |', '|---|---|---|');
for (const x of ic ?? []) out.push(`| InfluxDB 1.x raw line protocol, 5000-point POSTs, ${x.concurrency} in flight | ${f(x.pointsPerSec)} points/s | influxd ${x.influxCpuPct}%, other processes ${x.otherCpuPct ?? '-'}% |`);
if (mq?.subscriberReceivedPerSec) out.push(`| Mosquitto alone, 100 publishers -> 1 subscriber, QoS 1 | ${f(mq.subscriberReceivedPerSec)} msg/s | mosquitto ${mq.mosquittoCpuPct}%, other processes ${mq.otherCpuPct ?? '-'}% |`);
out.push('');
out.push(
  '| scenario (1000 machines, 4 metrics per reading) | sustained readings/s in InfluxDB | vs Mosquitto | vs InfluxDB | loss | publish->stored p50 / p99 at half | gateway CPU at max (other) | readings per gateway CPU-second | RSS peak | inference / batch |',
  '|---|---|---|---|---|---|---|---|---|---|',
);
for (const s of Object.values((r.scenarios ?? {}) as Record<string, Scenario>)) {
  const at = s.confirm && !s.confirm.behind ? s.confirm : [...s.steps].reverse().find((x) => !x.behind) ?? null;
  const eff = at && at.gwCpuPct ? (at.stored / at.gwCpuPct) * 100 : null;
  out.push(
    `| ${s.name} | ${f(s.sustainedMax)}${s.confirm?.behind ? ' (a short ladder step: the confirmation fell behind)' : ''} | ${mq?.subscriberReceivedPerSec && s.sustainedMax ? (s.sustainedMax / mq.subscriberReceivedPerSec).toFixed(2) : '-'} | ${influxBest && s.sustainedMax ? (s.sustainedMax / influxBest).toFixed(2) : '-'} | ${f(s.loss)} of ${f(s.published)} | ${s.atHalf?.latP50Ms ?? '-'} / ${s.atHalf?.latP99Ms ?? '-'} ms | ${at?.gwCpuPct ?? '-'}% (${at?.otherCpuPct ?? '-'}%) | ${f(eff)} | ${s.gatewayRssPeakMB} MB | ${s.inference?.meanLatencyMs ?? '-'} ms |`,
  );
}
out.push('');
const sc = r.scaling as
  | { machines: number; sustainedMax: number | null; reachedCeiling: boolean; rssConnectedMB: number | null; rssAfterWarmUpMB: number | null; heapUsedAfterWarmUpMB?: number | null; liveHeapAfterWarmUpMB?: number | null; rssPeakMB: number | null; loss: number; inference: { meanLatencyMs: number } | null; steps: Step[] }[]
  | undefined;
if (sc?.length) {
  out.push('| machines | readings/s (QoS 1 single) | gateway CPU at that rate (other) | RSS connected | RSS after warm-up | JS heap used after warm-up | RSS peak under load | inference / batch | loss |', '|---|---|---|---|---|---|---|---|---|');
  for (const x of sc) {
    const at = [...x.steps].reverse().find((s) => !s.behind);
    out.push(
      `| ${f(x.machines)} | ${f(x.sustainedMax)}${x.reachedCeiling ? '' : ' (not saturated)'} | ${at?.gwCpuPct ?? '-'}% (${at?.otherCpuPct ?? '-'}%) | ${x.rssConnectedMB} MB | ${x.rssAfterWarmUpMB} MB | ${x.heapUsedAfterWarmUpMB ?? '-'} MB | ${x.rssPeakMB} MB | ${x.inference?.meanLatencyMs ?? '-'} ms | ${x.loss} |`,
    );
  }
  out.push('');
}
const ob = r.outbox as Record<string, unknown> | undefined;
if (ob) {
  out.push(
    `Outbox: InfluxDB stopped while ${f(ob.machines as number)} machines published ${f(ob.rate as number)} readings/s: ${f(ob.peakDepth as number)} readings waiting, RSS ${String(ob.rssAtStartMB)} -> ${String(ob.rssAtPeakDepthMB)} MB (${String(ob.rssPer100kWaitingMB ?? '-')} MB per 100k waiting); after InfluxDB restarted the outbox drained in ${String(ob.drainSeconds ?? '>120')} s (${f(ob.catchUpReadingsPerSec as number)} readings/s, including InfluxDB's restart); loss ${String(ob.loss)}.`,
    '',
  );
}
const al = r.alert as { latencyMs: (number | null)[]; falseAlertsBeforeFault: number; inference: { meanLatencyMs: number } | null; config: unknown } | undefined;
if (al) out.push(`Reading-to-alert: ${al.latencyMs.map((x) => (x === null ? 'none' : `${f(x)} ms`)).join(', ')} (3 pumps; detection ${JSON.stringify(al.config)}; false alerts before the fault: ${al.falseAlertsBeforeFault}).`, '');
const pr = r.profile as { rate: number; machines: number; text: string } | null | undefined;
if (pr) out.push(`Profile (${f(pr.machines)} machines, QoS 1 single readings at ${f(pr.rate)} readings/s):`, '', '```', pr.text, '```');
process.stdout.write(`${out.join('\n')}\n`);
