/**
 * Command line: `smartops-gateway [options]` runs the gateway; `user add` and `token add` manage
 * credentials. Option parsing by commander; every value still goes through the config schema.
 */
import { Command, Option } from 'commander';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { stringify as toYaml, parse as parseYaml } from 'yaml';
import { hashPassword, hashToken, newToken } from './auth/passwords.js';
import { loadConfig, redactConfig, type PlainObject } from './config/load.js';
import { ErrorCodes, GatewayError } from './errors.js';
import { packageVersion, startGateway } from './main.js';
import { NAME_PATTERN } from './contract/reading.js';

interface RunOptions {
  config?: string;
  printConfig?: boolean;
  dataDir?: string;
  mqttHost?: string;
  mqttPort?: number;
  allowAnonymous?: boolean;
  httpHost?: string;
  httpPort?: number;
  influxUrl?: string;
  influxDatabase?: string;
  sink?: string;
  logLevel?: string;
  set?: string[];
}

/**
 * Typed flags name the flag and the key path in their errors, as `--set` and SMARTOPS_* do, so the
 * message says which argument to fix and which setting it is.
 */
function flagError(o: Option, path: string, problem: string): GatewayError {
  return new GatewayError(ErrorCodes.CONFIG_FLAG, `${o.long ?? o.flags} (${path}): ${problem}`);
}

function intOption(flags: string, description: string, path: string): Option {
  const o = new Option(flags, `${description} (${path})`);
  return o.argParser((v: string): number => {
    const n = Number(v);
    // Number('') is 0: an empty value is a mistake, not port 0.
    if (v.trim() === '' || !Number.isInteger(n)) throw flagError(o, path, `expected an integer, got "${v}"`);
    return n;
  });
}

function choiceOption(flags: string, description: string, path: string, choices: readonly string[]): Option {
  // choices() lists them in --help; the parser set after it replaces commander's own check, which
  // exits 1 without our code or the key path.
  const o = new Option(flags, `${description} (${path})`).choices(choices);
  return o.argParser((v: string): string => {
    if (!choices.includes(v)) throw flagError(o, path, `expected one of ${choices.join(', ')}, got "${v}"`);
    return v;
  });
}

function flagsToConfig(o: RunOptions): PlainObject {
  const c: PlainObject = {};
  const put = (path: string[], v: unknown): void => {
    if (v === undefined) return;
    let cur = c;
    for (const k of path.slice(0, -1)) cur = (cur[k] ??= {}) as PlainObject;
    cur[path[path.length - 1] as string] = v;
  };
  put(['dataDir'], o.dataDir);
  put(['mqtt', 'host'], o.mqttHost);
  put(['mqtt', 'port'], o.mqttPort);
  put(['mqtt', 'allowAnonymous'], o.allowAnonymous);
  put(['http', 'host'], o.httpHost);
  put(['http', 'port'], o.httpPort);
  put(['influx', 'url'], o.influxUrl);
  put(['influx', 'database'], o.influxDatabase);
  put(['sink', 'type'], o.sink);
  put(['log', 'level'], o.logLevel);
  return c;
}

/**
 * V8 lets the old generation grow to up to 4x the live set before the next full GC: at 1,000 machines
 * ~60 MB live became ~230 MB of heap and a ~400 MB RSS peak. A fixed 30 % growth keeps the heap near
 * 1.3x live (RSS peak ~240 MB) for more, short mark-compacts: 2-4 % of the main thread (bench/README
 * "Memory"). V8 reads the flag at every full GC, so setting it when the gateway starts takes effect;
 * NODE_OPTIONS does not accept it. Set here, in the run command, so every launcher (bin/, Docker,
 * systemd, the benchmark) gets it; a --heap-growing-percent given to node on the command line wins.
 */
const HEAP_GROWING_PERCENT = 30;

function limitHeapGrowth(): void {
  if (process.execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

async function run(o: RunOptions): Promise<void> {
  limitHeapGrowth();
  const config = loadConfig({ file: o.config, env: process.env, flags: flagsToConfig(o), sets: o.set ?? [] });
  if (o.printConfig) {
    process.stdout.write(toYaml(redactConfig(config)));
    return;
  }
  let gw: Awaited<ReturnType<typeof startGateway>>;
  try {
    gw = await startGateway(config);
  } catch (e) {
    // The outbox writer thread failed while starting (logged fatal): exit 1 like a failure later,
    // so the supervisor restarts the gateway; other start errors are reported by main() (exit 2).
    if ((e as GatewayError).code === ErrorCodes.OUTBOX_WORKER) fatalExit(e as GatewayError);
    throw e;
  }
  // The gateway stopped itself (outbox writer thread failed, logged fatal): exit 1 for systemd/Docker to restart it.
  gw.failed.catch((e: unknown) => fatalExit(e as GatewayError));
  let signals = 0;
  const onSignal = (sig: string): void => {
    signals++;
    if (signals > 1) {
      gw.logger.warn({ signal: sig }, 'second signal: exiting now (unsent readings stay in the outbox)');
      process.exit(1);
    }
    gw.logger.info({ signal: sig, timeoutMs: config.shutdownTimeoutMs }, 'graceful stop requested');
    // Hard deadline so a stuck dependency can never keep the process alive.
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 5000).unref();
    gw.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

function fatalExit(err: GatewayError): never {
  process.stderr.write(`smartops-gateway: [${err.code}] ${err.message}\n`);
  process.exit(1);
}

async function readSecret(prompt: string, fromStdin: boolean): Promise<string> {
  if (fromStdin || !process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  process.stderr.write(prompt);
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: process.stdin, terminal: true });
  const line = await new Promise<string>((resolve) => rl.once('line', resolve));
  rl.close();
  return line;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('smartops-gateway')
    .description('Shop-floor edge gateway: embedded MQTT broker -> validated readings -> InfluxDB or embedded store -> anomaly alerts over HTTP.')
    .version(packageVersion())
    .option('-c, --config <file>', 'YAML or JSON config file (also SMARTOPS_CONFIG)')
    .option('--print-config', 'print the effective configuration (secrets redacted) and exit')
    .option('--data-dir <dir>', 'data directory (dataDir)')
    .option('--mqtt-host <host>', 'MQTT listener address (mqtt.host)')
    .addOption(intOption('--mqtt-port <port>', 'MQTT listener port', 'mqtt.port'))
    .option('--allow-anonymous', 'accept MQTT clients without credentials (mqtt.allowAnonymous)')
    .option('--http-host <host>', 'HTTP API address (http.host)')
    .addOption(intOption('--http-port <port>', 'HTTP API port', 'http.port'))
    .option('--influx-url <url>', 'InfluxDB URL; readings go to InfluxDB instead of the embedded store (influx.url)')
    .option('--influx-database <db>', 'InfluxDB 1.x database (influx.database)')
    .addOption(choiceOption('--sink <type>', 'sink', 'sink.type', ['auto', 'embedded', 'influxdb-v1', 'influxdb-v2']))
    .addOption(choiceOption('--log-level <level>', 'log level', 'log.level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .option('--set <key=value>', 'set any setting by its key path, e.g. --set outbox.fsync=os (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addHelpText('after', '\nPrecedence: defaults < --config file < SMARTOPS_* environment < flags. Every setting: README "Configuration reference".')
    .action(async (o: RunOptions) => run(o));

  const user = program.command('user').description('manage MQTT device users (hashed passwords, per-device ACL)');
  user
    .command('add <username>')
    .description('add or replace a user in a users file (mqtt.usersFile); the password is read from stdin or prompted')
    .requiredOption('--users-file <file>', 'YAML users file to update (created if missing)')
    .option('--machines <ids>', 'comma-separated machine ids this device may publish for (default: the username)')
    .option('--subscribe <filters>', 'comma-separated topic filters this user may subscribe to')
    .option('--password-stdin', 'read the password from stdin')
    .action(async (username: string, o: { usersFile: string; machines?: string; subscribe?: string; passwordStdin?: boolean }) => {
      const machines = o.machines ? o.machines.split(',').map((s) => s.trim()).filter(Boolean) : [];
      for (const m of machines.length ? machines : [username]) {
        if (!NAME_PATTERN.test(m)) throw new GatewayError('SMARTOPS_CONFIG_FLAG', `machine id "${m}" must match [A-Za-z0-9_.-]{1,64}`);
      }
      const password = await readSecret(`password for ${username}: `, o.passwordStdin === true);
      if (password.length < 8) throw new GatewayError('SMARTOPS_CONFIG_FLAG', 'password must be at least 8 characters');
      const doc = (existsSync(o.usersFile) ? (parseYaml(readFileSync(o.usersFile, 'utf8')) as { users?: { username: string }[] } | null) : null) ?? {};
      const users = (doc.users ?? []).filter((u) => u.username !== username);
      users.push({
        username,
        passwordHash: await hashPassword(password),
        ...(machines.length ? { machines } : {}),
        ...(o.subscribe ? { subscribe: o.subscribe.split(',').map((s) => s.trim()) } : {}),
      } as { username: string });
      writeFileSync(o.usersFile, toYaml({ users }), { mode: 0o600 });
      process.stderr.write(`user ${username} written to ${o.usersFile} (set mqtt.usersFile to this path)\n`);
    });

  const token = program.command('token').description('manage HTTP API bearer tokens');
  token
    .command('add <name>')
    .description('create a bearer token; prints the token once and the config entry (with its hash) to add under http.tokens')
    .requiredOption('--scopes <scopes>', 'comma-separated: read, ack, admin')
    .action((name: string, o: { scopes: string }) => {
      const scopes = o.scopes.split(',').map((s) => s.trim());
      for (const s of scopes) if (!['read', 'ack', 'admin'].includes(s)) throw new GatewayError('SMARTOPS_CONFIG_FLAG', `unknown scope "${s}" (read, ack, admin)`);
      const t = newToken();
      process.stderr.write(`token (shown once, give it to ${name}): ${t}\n`);
      process.stdout.write(toYaml({ http: { auth: 'token', tokens: [{ name, tokenHash: hashToken(t), scopes }] } }));
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    const err = e as GatewayError;
    process.stderr.write(`smartops-gateway: ${err.code ? `[${err.code}] ` : ''}${err.message}\n`);
    process.exit(2);
  }
}

await main(process.argv);
