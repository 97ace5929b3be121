/**
 * Detection routes over the real gateway (MQTT in, HTTP out): the baseline reset takes no body, an
 * empty body or `{}` and still validates `{who, reason}`; the anomaly history returns the newest
 * windows when more match than `limit`, oldest first.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

const MACHINE = 'press-01';
const STEP_MS = 5000;
/** Readings span 20 min of event time ending 2 min ago: ~38 windows with the default 60 s / 30 s. */
const SPAN_MS = 20 * 60_000;

interface AnomalyWindow {
  windowStart: number;
  windowEnd: number;
  phase: 'learning' | 'scoring';
}
interface ErrorBody {
  error: { code: string; message: string };
}

describe('detection routes', () => {
  let gw: TestGateway;
  let all: AnomalyWindow[] = [];
  let cut = 0;

  beforeAll(async () => {
    // idleCloseMs at its minimum: the tail windows close a second after the last reading.
    gw = await startTestGateway({ detection: { idleCloseMs: 1000 } });
    const end = Math.floor((Date.now() - 2 * 60_000) / STEP_MS) * STEP_MS;
    const readings = [];
    for (let ts = end - SPAN_MS; ts <= end; ts += STEP_MS) readings.push({ ts, metrics: { force_kn: 120 + Math.sin(ts / 60_000), temp_c: 40 + (ts % 7) / 10 } });
    const client = await mqtt.connectAsync(gw.mqttUrl, { clientId: `http-detection-${process.pid}`, reconnectPeriod: 0 });
    try {
      await client.publishAsync(`machines/${MACHINE}/telemetry`, JSON.stringify({ readings }), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    // Compared below are windows ending 3 min before the last reading: those closed when the batch
    // was read (the tail ones close later, on idleCloseMs), so the set is settled once it stops growing.
    cut = end - 3 * 60_000;
    let prev = -1;
    all = await waitFor(
      async () => {
        const r = await getJson<{ windows: AnomalyWindow[] }>(`${gw.httpUrl}/api/v1/machines/${MACHINE}/anomaly?to=${cut}&limit=10000`);
        const n = r.body.windows.length;
        const settled = n > 20 && n === prev;
        prev = n;
        if (settled) return r.body.windows;
        await new Promise((res) => setTimeout(res, 500));
        return undefined;
      },
      30_000,
      'the windows of 20 min of readings',
    );
  });
  afterAll(async () => {
    await gw?.stop();
  });

  const reset = (init: RequestInit = {}): Promise<{ status: number; body: unknown }> =>
    getJson(`${gw.httpUrl}/api/v1/machines/${MACHINE}/baseline/reset`, { method: 'POST', ...init });

  it('POST baseline/reset works without a body, with an empty JSON body and with {}', async () => {
    const none = await reset();
    expect(none.status, JSON.stringify(none.body)).toBe(200);
    expect(none.body).toMatchObject({ machine: MACHINE, phase: 'learning' });

    const empty = await reset({ headers: { 'content-type': 'application/json' } });
    expect(empty.status, JSON.stringify(empty.body)).toBe(200);

    const emptyString = await reset({ headers: { 'content-type': 'application/json' }, body: '' });
    expect(emptyString.status, JSON.stringify(emptyString.body)).toBe(200);

    const obj = await reset({ headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(obj.status, JSON.stringify(obj.body)).toBe(200);

    const full = await reset({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ who: 'Dana', reason: 'spindle replaced' }) });
    expect(full.status, JSON.stringify(full.body)).toBe(200);
  });

  it('POST baseline/reset still validates its optional body', async () => {
    const json = { 'content-type': 'application/json' };
    const wrongType = await reset({ headers: json, body: JSON.stringify({ who: 42 }) });
    expect(wrongType.status).toBe(400);
    expect((wrongType.body as ErrorBody).error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/^body\.who: /) as unknown as string });

    const unknownKey = await reset({ headers: json, body: JSON.stringify({ who: 'Dana', bogus: 1 }) });
    expect(unknownKey.status).toBe(400);
    expect((unknownKey.body as ErrorBody).error.message).toMatch(/bogus/);

    const notJson = await reset({ headers: json, body: '{who:' });
    expect(notJson.status).toBe(400);
    expect((notJson.body as ErrorBody).error.code).toBe('BAD_REQUEST');

    const notObject = await reset({ headers: json, body: '[]' });
    expect(notObject.status).toBe(400);
    expect((notObject.body as ErrorBody).error.message).toMatch(/^body/);

    const unknown = await getJson<ErrorBody>(`${gw.httpUrl}/api/v1/machines/nobody-here/baseline/reset`, { method: 'POST' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('MACHINE_NOT_FOUND');
  });

  it('GET anomaly returns the newest `limit` windows, oldest first, when more match', async () => {
    const ends = (ws: AnomalyWindow[]): number[] => ws.map((w) => w.windowEnd);
    expect(ends(all)).toEqual([...ends(all)].sort((a, b) => a - b));
    const r = await getJson<{ windows: AnomalyWindow[] }>(`${gw.httpUrl}/api/v1/machines/${MACHINE}/anomaly?to=${cut}&limit=5`);
    expect(r.status).toBe(200);
    expect(ends(r.body.windows)).toEqual(ends(all.slice(-5)));

    // Older windows: the same call with `to` just before the first window returned.
    const first = r.body.windows[0] as AnomalyWindow;
    const older = await getJson<{ windows: AnomalyWindow[] }>(`${gw.httpUrl}/api/v1/machines/${MACHINE}/anomaly?to=${first.windowEnd - 1}&limit=5`);
    expect(ends(older.body.windows)).toEqual(ends(all.slice(-10, -5)));

    // Fewer matches than the limit: all of them.
    const few = await getJson<{ windows: AnomalyWindow[] }>(`${gw.httpUrl}/api/v1/machines/${MACHINE}/anomaly?from=${(all[2] as AnomalyWindow).windowEnd}&to=${(all[4] as AnomalyWindow).windowEnd}&limit=10`);
    expect(ends(few.body.windows)).toEqual(ends(all.slice(2, 5)));

    // The plain call (last 24 h): the newest windows, past the cut, still oldest first.
    const plain = await getJson<{ windows: AnomalyWindow[] }>(`${gw.httpUrl}/api/v1/machines/${MACHINE}/anomaly?limit=5`);
    expect(plain.body.windows).toHaveLength(5);
    expect(plain.body.windows.every((w) => w.windowEnd > cut)).toBe(true);
    expect(ends(plain.body.windows)).toEqual([...ends(plain.body.windows)].sort((a, b) => a - b));
  });

  it('documents the order and the default limit of GET anomaly in the OpenAPI document', async () => {
    const doc = await getJson<{ paths: Record<string, { get?: { summary?: string; description?: string; parameters?: { name: string; in: string; description?: string; schema?: { default?: unknown } }[] } }> }>(`${gw.httpUrl}/docs/json`);
    const op = doc.body.paths['/api/v1/machines/{id}/anomaly']?.get;
    expect(op?.summary).toMatch(/oldest first/);
    expect(`${op?.summary} ${op?.description ?? ''}`).toMatch(/newest/);
    const limit = op?.parameters?.find((p) => p.name === 'limit' && p.in === 'query');
    expect(limit?.schema?.default).toBe(1000);
    expect(limit?.description).toMatch(/newest/);
  });
});
