/**
 * Memory exhaustion is observable: /metrics splits resident memory into anonymous memory (V8 heap
 * and native allocations, what connections and state cost) and file-backed pages (mapped code),
 * which process_resident_memory_bytes lumps together. Linux only (/proc/self/status).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { sample, scrape } from './helpers.js';

const METRIC = 'smartops_process_resident_memory_by_kind_bytes';

describe.runIf(existsSync('/proc/self/status'))('resident memory by kind', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('anon + file + shmem is the RSS, and the code of node and the native modules is file-backed', async () => {
    const s = await scrape(gw.httpUrl);
    const anon = sample(s, METRIC, { kind: 'anon' });
    const file = sample(s, METRIC, { kind: 'file' });
    const shmem = sample(s, METRIC, { kind: 'shmem' });
    const rss = sample(s, 'smartops_process_resident_memory_bytes');
    expect(anon).toBeGreaterThan(0);
    // The node binary alone maps tens of MB of code.
    expect(file).toBeGreaterThan(10 * 1024 * 1024);
    // Read a moment apart, so not exactly equal.
    expect(Math.abs(anon + file + shmem - rss)).toBeLessThan(0.1 * rss);
  });

  it('native memory the process touches shows up as anon, not file', async () => {
    const before = await scrape(gw.httpUrl);
    // Outside the V8 heap and written to, so every page becomes resident.
    const block = Buffer.allocUnsafe(64 * 1024 * 1024).fill(0x5a);
    const after = await scrape(gw.httpUrl);
    expect(block[block.length - 1]).toBe(0x5a);
    const grew = (kind: string): number => sample(after, METRIC, { kind }) - sample(before, METRIC, { kind });
    expect(grew('anon')).toBeGreaterThan(56 * 1024 * 1024);
    expect(Math.abs(grew('file'))).toBeLessThan(16 * 1024 * 1024);
  });
});
