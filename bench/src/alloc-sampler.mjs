// Sampling allocation profile of a whole process, short-lived objects included:
//   node --import ./bench/src/alloc-sampler.mjs ...   (or via the benchmark: --node-flags="--import <abs path>")
// `node --heap-prof` keeps only the samples of objects still alive at exit, so it cannot show what
// the young generation collects; V8's sampler can keep collected ones too (the two include* flags).
// Writes <ALLOC_PROF_DIR or cwd>/alloc-<pid>.heapprofile at exit; summarise it with
// `npx tsx bench/src/allocprofile.ts <file>`. Plain JavaScript so that it loads without tsx.
// ALLOC_PROF_SURVIVORS=1 leaves out what the young generation collected: what is left is what
// survived it (promoted to the old generation, where marking and sweeping pay for it again).
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const session = new Session();
session.connect();
const interval = Number(process.env.ALLOC_PROF_INTERVAL ?? 32768);
const options = {
  samplingInterval: interval,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: process.env.ALLOC_PROF_SURVIVORS !== '1',
};
session.post('HeapProfiler.startSampling', options);
// Only the loaded part counts: the benchmark can send SIGUSR2 when its load starts (optional).
process.on('SIGUSR2', () => {
  session.post('HeapProfiler.stopSampling', () => {
    session.post('HeapProfiler.startSampling', options);
  });
});
process.on('exit', () => {
  // The in-thread inspector session answers synchronously, so this completes inside 'exit'.
  session.post('HeapProfiler.stopSampling', (err, res) => {
    if (err) return;
    const file = join(process.env.ALLOC_PROF_DIR ?? process.cwd(), `alloc-${process.pid}.heapprofile`);
    writeFileSync(file, JSON.stringify(res.profile));
  });
});
