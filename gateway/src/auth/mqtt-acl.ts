/**
 * MQTT authentication and per-device ACLs.
 * - A device may publish only under its own `machines/<id>/` (its username, or its `machines` list),
 *   plus any extra `publish` filters; nobody but the gateway publishes `machines/<id>/alerts`.
 * - Subscriptions only where `subscribe` filters allow.
 * - Anonymous clients only when `allowAnonymous` is on; they may publish telemetry for any machine.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { mqttUserSchema } from '../config/schema.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import { verifyPassword } from './passwords.js';

export type MqttUser = z.infer<typeof mqttUserSchema>;

export interface DeviceIdentity {
  username: string | null;
  anonymous: boolean;
  machines: Set<string>;
  publish: string[];
  subscribe: string[];
}

export type AuthResult = { ok: true; identity: DeviceIdentity } | { ok: false; reason: 'bad_credentials' | 'anonymous_not_allowed' };

/** MQTT topic filter match (MQTT-4.7: `+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const fl = f[i];
    if (fl === '#') return true;
    if (i >= t.length) return false;
    if (fl !== '+' && fl !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Does a subscription filter stay within an allowed filter? (conservative: wildcards must be allowed there too) */
export function filterWithin(requested: string, allowed: string): boolean {
  const r = requested.split('/');
  const a = allowed.split('/');
  for (let i = 0; i < r.length; i++) {
    const al = a[i];
    const rl = r[i];
    if (al === '#') return true;
    if (al === undefined) return false;
    if (rl === '#') return false;
    if (al === '+') continue;
    if (rl !== al) return false;
  }
  return r.length === a.length;
}

export function loadUsersFile(file: string): MqttUser[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new GatewayError(ErrorCodes.CONFIG_FILE, `cannot read mqtt.usersFile ${file}: ${(e as Error).message}`);
  }
  const data: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  const r = z.strictObject({ users: z.array(mqttUserSchema).default([]) }).safeParse(data ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new GatewayError(ErrorCodes.CONFIG_FILE, `mqtt.usersFile ${file}: ${i ? `${i.path.join('.')}: ${i.message}` : 'invalid'}`);
  }
  return r.data.users;
}

const MACHINES_PREFIX = 'machines/';
const ALERTS_LEVEL = 'alerts';
const SLASH = 0x2f;

export class MqttAcl {
  private readonly users = new Map<string, MqttUser>();
  constructor(
    users: MqttUser[],
    private readonly allowAnonymous: boolean,
  ) {
    for (const u of users) this.users.set(u.username, u);
  }

  get anonymousAllowed(): boolean {
    return this.allowAnonymous;
  }

  async authenticate(username: string | undefined, password: Buffer | undefined): Promise<AuthResult> {
    if (username === undefined || username === '') {
      if (!this.allowAnonymous) return { ok: false, reason: 'anonymous_not_allowed' };
      return { ok: true, identity: { username: null, anonymous: true, machines: new Set(), publish: [], subscribe: ['#'] } };
    }
    const u = this.users.get(username);
    // Verify against a dummy hash for unknown users too, so timing does not reveal which usernames exist.
    const ok = await verifyPassword(password ?? Buffer.alloc(0), u?.passwordHash ?? DUMMY_HASH);
    if (!u || !ok) return { ok: false, reason: 'bad_credentials' };
    const machines = new Set(u.machines.length > 0 ? u.machines : [u.username]);
    return { ok: true, identity: { username, anonymous: false, machines, publish: u.publish, subscribe: u.subscribe } };
  }

  canPublish(id: DeviceIdentity, topic: string): boolean {
    // `$` topics ($SYS/...) belong to the broker (MQTT-4.7.2-1); aedes acts on some of them.
    if (topic.startsWith('$')) return false;
    // machines/<id>/<rest> found by hand: this runs for every message, and topic.split made an array each time.
    let machine: string | undefined;
    if (topic.startsWith(MACHINES_PREFIX)) {
      const slash = topic.indexOf('/', MACHINES_PREFIX.length);
      if (slash >= 0) {
        const third = slash + 1;
        const end = third + ALERTS_LEVEL.length;
        // The gateway's own alert topics (machines/<id>/alerts and below) are published only by it.
        if (topic.startsWith(ALERTS_LEVEL, third) && (topic.length === end || topic.charCodeAt(end) === SLASH)) return false;
        machine = topic.slice(MACHINES_PREFIX.length, slash);
      }
    }
    if (id.anonymous) return true;
    if (machine !== undefined && id.machines.has(machine)) return true;
    return id.publish.some((f) => topicMatches(f, topic));
  }

  canSubscribe(id: DeviceIdentity, filter: string): boolean {
    return id.subscribe.some((a) => filterWithin(filter, a));
  }
}

// A valid scrypt hash of a random string: unknown users cost the same time as known ones.
const DUMMY_HASH = 'scrypt$16384$8$1$c21hcnRvcHMtZHVtbXk=$2Jn3QlK3m1pH7a6uUq2y4c8W0m8e2Qv9oY5cX1z3b7I=';
