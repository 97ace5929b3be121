/**
 * `npm run eval -- --jobs N`: the seeds run in N child processes and their runs are pooled. The pooled
 * summary must be exactly what one process running every seed prints (same runs, same order, same
 * figures): both are run here as real child processes, on a small scenario (short baseline, 10 s step,
 * stuck-sensor runs only) so the test takes seconds, not the hours of a real evaluation.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ARGS = ['models/src/eval.ts', '--seeds', '3', '--first-seed', '5', '--faults', 'sensor-stuck', '--days', '0.5', '--step-ms', '10000', '--set', 'baseline.durationMs=21600000', '--verbose'];

async function evalOut(extra: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', ...ARGS, ...extra], { cwd: process.cwd(), maxBuffer: 16 * 1024 * 1024 });
}

describe('eval --jobs', () => {
  it('pools the seeds of its child processes into the summary one process prints', async () => {
    const [one, jobs] = await Promise.all([evalOut([]), evalOut(['--jobs', '2'])]);
    // The summary has a row per fault type run and a verdict; the stuck-sensor runs of all three seeds are listed.
    expect(one.stdout).toMatch(/\| sensor-stuck \| 12 \|/);
    for (const seed of [5, 6, 7]) expect(one.stdout).toContain(`seed ${seed} pump-sensor-stuck:`);
    expect(one.stdout).toMatch(/Targets .*: (NOT )?MET/);
    expect(jobs.stdout).toBe(one.stdout);
    // Each job reported its own seeds' progress.
    for (const seed of [5, 6, 7]) expect(jobs.stderr).toMatch(new RegExp(`seed ${seed}: \\d+ machines`));
  }, 240_000);

  it('refuses a --jobs that is not a whole number of 1 or more', async () => {
    await expect(evalOut(['--jobs', '0'])).rejects.toThrow(/--jobs: "0" is not a whole number of 1 or more/);
  }, 60_000);
});
