/**
 * Ingest back-pressure with real MQTT clients over TCP: with a tiny commit queue bound
 * (ingest.maxPendingReadings) and slow group commits, publishers that send faster than the outbox
 * commits are held (reads from their sockets stop), not refused or disconnected, and every
 * reading, QoS 0 and QoS 1, is stored exactly once.
 */
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { scrape, sample, total } from '../security/helpers.js';
import { freePort } from '../helpers/ports.js';
import { RecordingPublisher } from './helpers.js';

interface ReadingsBody {
  readings: { ts: number; metrics: Record<string, number> }[];
}

describe('ingest back-pressure', () => {
  let gw: TestGateway;
  const t0 = Date.now() - 3_600_000;

  beforeAll(async () => {
    gw = await startTestGateway({
      ingest: { maxPendingReadings: 20 },
      // Commits far apart: many messages arrive while one waits, so the bound is hit for sure.
      outbox: { commitIntervalMs: 20 },
      detection: { enabled: false },
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('holds fast publishers instead of dropping them; every QoS 0 and QoS 1 reading is stored once', async () => {
    const qos1 = await Promise.all(['bp-q1-a', 'bp-q1-b', 'bp-q1-c'].map((m) => RecordingPublisher.connect(gw.mqttUrl, m, t0, { window: 50, maxMessages: 300 })));
    // QoS 0: one client writes its whole burst at once (no window at all).
    const q0Machines = ['bp-q0-a', 'bp-q0-b'];
    const q0Clients = await Promise.all(q0Machines.map((m) => mqtt.connectAsync(gw.mqttUrl, { clientId: `bp-${m}`, reconnectPeriod: 0 })));
    const perQ0 = 400;
    for (const p of qos1) p.start();
    q0Clients.forEach((c, i) => {
      const m = q0Machines[i] as string;
      for (let s = 0; s < perQ0; s++) c.publish(`machines/${m}/telemetry`, JSON.stringify({ ts: t0 + s, seq: s, metrics: { v: s } }), { qos: 0 });
    });
    await Promise.all(qos1.map((p) => p.finished()));
    await Promise.all(qos1.map((p) => p.settle()));

    const expected = qos1.length * 300 + q0Machines.length * perQ0;
    const m = await waitFor(
      async () => {
        const s = await scrape(gw.httpUrl);
        return total(s, 'smartops_sink_readings_written_total') >= expected ? s : undefined;
      },
      30000,
      `${expected} readings written to the sink`,
    );
    expect(total(m, 'smartops_sink_readings_written_total')).toBe(expected);
    expect(sample(m, 'smartops_readings_accepted_total')).toBe(expected);
    // Held, not refused: the gate engaged, nothing was rejected, dropped or disconnected.
    expect(sample(m, 'smartops_ingest_backpressure_held_messages_total')).toBeGreaterThan(0);
    expect(sample(m, 'smartops_ingest_backpressure_seconds_total')).toBeGreaterThan(0);
    expect(sample(m, 'smartops_ingest_backpressure_waiting_messages')).toBe(0);
    expect(total(m, 'smartops_messages_rejected_total')).toBe(0);
    expect(total(m, 'smartops_readings_dropped_total')).toBe(0);
    expect(total(m, 'smartops_mqtt_clients_dropped_total')).toBe(0);
    expect(sample(m, 'smartops_mqtt_connection_events_total', { event: 'disconnect' })).toBe(0);
    for (const p of qos1) {
      expect(p.errors).toBe(0);
      expect(p.acked.size).toBe(300);
    }

    // Each machine's readings are all stored once (the store keys points by machine and ts).
    for (const p of qos1) {
      const r = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/${p.machine}/readings?order=asc&limit=10000`);
      expect(r.body.readings.map((x) => x.metrics.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    }
    for (const machine of q0Machines) {
      const r = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/${machine}/readings?order=asc&limit=10000`);
      expect(r.body.readings.map((x) => x.metrics.v)).toEqual(Array.from({ length: perQ0 }, (_, i) => i));
    }
    await Promise.all(qos1.map((p) => p.end()));
    await Promise.all(q0Clients.map((c) => c.endAsync()));
  });

  it('keeps each publisher\'s messages in the order they were sent while holding them', async () => {
    // Nothing listens on the sink's port, so every accepted reading stays in the outbox, in
    // acceptance order (AUTOINCREMENT ids): that order is what the forwarder will send.
    const deadPort = await freePort();
    const held = await startTestGateway({
      ingest: { maxPendingReadings: 5 },
      outbox: { commitIntervalMs: 20 },
      detection: { enabled: false },
      sink: { type: 'influxdb-v1', retryInitialMs: 10_000, retryMaxMs: 10_000 },
      influx: { url: `http://127.0.0.1:${deadPort}`, createDatabase: false },
    });
    try {
      const machines = ['ord-a', 'ord-b', 'ord-c'];
      const clients = await Promise.all(machines.map((m) => mqtt.connectAsync(held.mqttUrl, { clientId: `bp-${m}`, reconnectPeriod: 0 })));
      const per = 300;
      clients.forEach((c, i) => {
        for (let q = 0; q < per; q++) c.publish(`machines/${machines[i]}/telemetry`, JSON.stringify({ ts: t0 + q, seq: q, metrics: { v: q } }), { qos: (q % 2) as 0 | 1 });
      });
      const m = await waitFor(
        async () => {
          const x = await scrape(held.httpUrl);
          return sample(x, 'smartops_readings_accepted_total') >= machines.length * per ? x : undefined;
        },
        30000,
        'every reading accepted',
      );
      expect(sample(m, 'smartops_ingest_backpressure_held_messages_total')).toBeGreaterThan(0);
      const db = new Database(join(held.dataDir, 'outbox.sqlite'), { readonly: true });
      try {
        const rows = db.prepare('SELECT machine, data FROM outbox ORDER BY id').all() as { machine: string; data: string }[];
        for (const machine of machines) {
          const seqs = rows.filter((r) => r.machine === machine).map((r) => (JSON.parse(r.data) as { s: number }).s);
          expect(seqs).toEqual(Array.from({ length: per }, (_, i) => i));
        }
      } finally {
        db.close();
      }
      await Promise.all(clients.map((c) => c.endAsync(true)));
    } finally {
      await held.stop();
    }
  });
});
