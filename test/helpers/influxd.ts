/**
 * InfluxDB 1.x for the tests: the server itself is started by ./influxd-server.ts (shared with the
 * benchmark). Where influxd is not installed, tests are skipped with a loud notice; under CI=true
 * that is a failure.
 */
import { describe } from 'vitest';
import { influxdVersion, startInfluxdServer, type Influxd } from './influxd-server.js';

export { INFLUXD_BIN, type Influxd, type Row } from './influxd-server.js';

export function influxdAvailable(): boolean {
  return influxdVersion() !== null;
}

const available = influxdAvailable();
if (!available) {
  const msg = `\n*** influxd not found: InfluxDB integration tests are ${process.env.CI ? 'FAILING (CI=true)' : 'SKIPPED'}. Install it with: sudo apt-get install influxdb ***\n`;
  process.stderr.write(msg);
}

/** `describe` when influxd is installed; otherwise `describe.skip` locally and a failing suite in CI. */
export const describeWithInfluxd: typeof describe = (available || process.env.CI
  ? describe
  : describe.skip) as typeof describe;

export function requireInfluxdInCi(): void {
  if (!available && process.env.CI) throw new Error('influxd is required in CI: apt-get install -y influxdb');
}

export async function startInfluxd(): Promise<Influxd> {
  requireInfluxdInCi();
  return startInfluxdServer();
}
