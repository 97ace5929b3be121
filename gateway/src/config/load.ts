/**
 * Configuration sources, lowest to highest precedence:
 *   schema defaults < file (--config, YAML or JSON) < environment (SMARTOPS_*) < CLI flags.
 * The merged object is validated once by the schema; errors name the key path and the source.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ErrorCodes, GatewayError } from '../errors.js';
import { configSchema, SECRET_PATHS, type Config } from './schema.js';

export type PlainObject = Record<string, unknown>;

export interface JsonSchemaNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchemaNode>;
  additionalProperties?: JsonSchemaNode | boolean;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  minimum?: number;
  maximum?: number;
  format?: string;
  pattern?: string;
}

export function configJsonSchema(): JsonSchemaNode {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
}

/** One settable leaf of the config: a scalar, an array or a free-form map (set as JSON). */
export interface ConfigLeaf {
  path: string[];
  node: JsonSchemaNode;
  env: string;
}

function isPlainObject(v: unknown): v is PlainObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function camelToUpperSnake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

export function envNameFor(path: string[]): string {
  return `SMARTOPS_${path.map(camelToUpperSnake).join('_')}`;
}

export function configLeaves(schema: JsonSchemaNode = configJsonSchema()): ConfigLeaf[] {
  const out: ConfigLeaf[] = [];
  const walk = (node: JsonSchemaNode, path: string[]): void => {
    if (node.properties && path.length < 8) {
      for (const [k, child] of Object.entries(node.properties)) walk(child, [...path, k]);
      return;
    }
    out.push({ path, node, env: envNameFor(path) });
  };
  walk(schema, []);
  return out;
}

function leafType(node: JsonSchemaNode): string {
  const t = node.type ?? node.anyOf?.find((a) => a.type !== 'null')?.type;
  return Array.isArray(t) ? (t.find((x) => x !== 'null') ?? 'string') : (t ?? 'string');
}

/** Turn a string from the environment or a flag into the leaf's type. */
export function coerceValue(raw: string, node: JsonSchemaNode, where: string, code: string): unknown {
  const t = leafType(node);
  if (t === 'integer' || t === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new GatewayError(code, `${where}: expected a number, got "${raw}"`);
    return n;
  }
  if (t === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(raw)) return true;
    if (/^(false|0|no|off)$/i.test(raw)) return false;
    throw new GatewayError(code, `${where}: expected true or false, got "${raw}"`);
  }
  if (t === 'array' || t === 'object') {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new GatewayError(code, `${where}: expected JSON (${t}), got "${raw.slice(0, 60)}"`);
    }
  }
  return raw;
}

export function setPath(obj: PlainObject, path: string[], value: unknown): void {
  let cur: PlainObject = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    const next = cur[k];
    if (!isPlainObject(next)) cur[k] = {};
    cur = cur[k] as PlainObject;
  }
  cur[path[path.length - 1] as string] = value;
}

/** Objects merge key by key; arrays and scalars from `over` replace. */
export function deepMerge(base: PlainObject, over: PlainObject): PlainObject {
  const out: PlainObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

export function readConfigFile(file: string): PlainObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new GatewayError(ErrorCodes.CONFIG_FILE, `cannot read config file ${file}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new GatewayError(ErrorCodes.CONFIG_FILE, `config file ${file} is not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (!isPlainObject(data)) throw new GatewayError(ErrorCodes.CONFIG_FILE, `config file ${file} must hold a mapping of settings at the top level`);
  return data;
}

/** Environment variables that are not config keys but are ours all the same. */
const NON_KEY_ENV = new Set(['SMARTOPS_CONFIG']);

export function configFromEnv(env: NodeJS.ProcessEnv, leaves: ConfigLeaf[] = configLeaves()): PlainObject {
  const byName = new Map(leaves.map((l) => [l.env, l]));
  const out: PlainObject = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('SMARTOPS_') || NON_KEY_ENV.has(name) || raw === undefined) continue;
    const leaf = byName.get(name);
    if (!leaf) {
      throw new GatewayError(ErrorCodes.CONFIG_ENV, `environment variable ${name} is not a setting (see README "Configuration reference" for the SMARTOPS_* names)`);
    }
    setPath(out, leaf.path, coerceValue(raw, leaf.node, `environment ${name} (${leaf.path.join('.')})`, ErrorCodes.CONFIG_ENV));
  }
  return out;
}

/** `--set a.b.c=value` flags: the value is typed like the key (JSON for arrays and maps). */
export function configFromSets(sets: string[], leaves: ConfigLeaf[] = configLeaves()): PlainObject {
  const byPath = new Map(leaves.map((l) => [l.path.join('.'), l]));
  const out: PlainObject = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new GatewayError(ErrorCodes.CONFIG_FLAG, `--set ${s}: expected key.path=value`);
    const key = s.slice(0, eq);
    const leaf = byPath.get(key);
    if (!leaf) throw new GatewayError(ErrorCodes.CONFIG_FLAG, `--set ${key}: unknown setting`);
    setPath(out, leaf.path, coerceValue(s.slice(eq + 1), leaf.node, `--set ${key}`, ErrorCodes.CONFIG_FLAG));
  }
  return out;
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    return `unknown setting${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`;
  }
  return `${path || '(root)'}: ${issue.message}`;
}

/** Validate a merged raw object into a Config, or throw one error listing every problem. */
export function validateConfig(raw: unknown): Config {
  const r = configSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map(formatIssue);
  throw new GatewayError(ErrorCodes.CONFIG_INVALID, `invalid configuration:\n  - ${lines.join('\n  - ')}`);
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from dedicated CLI flags, already shaped like the config. */
  flags?: PlainObject;
  /** Raw `--set key=value` strings. */
  sets?: string[];
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const leaves = configLeaves();
  let raw: PlainObject = {};
  const file = opts.file ?? opts.env?.SMARTOPS_CONFIG;
  if (file) raw = deepMerge(raw, readConfigFile(file));
  if (opts.env) raw = deepMerge(raw, configFromEnv(opts.env, leaves));
  if (opts.flags) raw = deepMerge(raw, opts.flags);
  if (opts.sets?.length) raw = deepMerge(raw, configFromSets(opts.sets, leaves));
  return validateConfig(raw);
}

function pathMatches(pattern: string[], path: string[]): boolean {
  return pattern.length === path.length && pattern.every((p, i) => p === '*' || p === path[i]);
}

/** A deep copy with every secret replaced by "<redacted>". */
export function redactConfig(cfg: unknown, secretPaths: string[] = SECRET_PATHS): unknown {
  const patterns = secretPaths.map((p) => p.split('.'));
  const walk = (v: unknown, path: string[]): unknown => {
    if (patterns.some((p) => pathMatches(p, path)) && v !== undefined) return '<redacted>';
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, String(i)]));
    if (isPlainObject(v)) {
      const out: PlainObject = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, [...path, k]);
      return out;
    }
    return v;
  };
  return walk(cfg, []);
}

/** Which sink `auto` resolves to. */
export function resolveSinkType(cfg: Config): 'embedded' | 'influxdb-v1' | 'influxdb-v2' {
  if (cfg.sink.type !== 'auto') return cfg.sink.type;
  if (cfg.influx.url && cfg.influx.token && cfg.influx.org && cfg.influx.bucket) return 'influxdb-v2';
  if (cfg.influx.url) return 'influxdb-v1';
  return 'embedded';
}
