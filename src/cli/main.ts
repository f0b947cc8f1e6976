#!/usr/bin/env node
/**
 * The millpond command.
 *   millpond up        the embedded default in the foreground (Ctrl-C stops it cleanly)
 *   millpond status    health first (ceph -s), services, capacity, io, recovery, jobs; --json: the cluster view
 *   millpond fs ...    filesystem commands against the cluster
 *   millpond demo      the whole stack: embedded cluster, a dataset written into it, a
 *                      smallpond-style job, `millpond sql` over its output, figures against
 *                      plain DuckDB; then stops and removes everything (demo.ts)
 *   millpond sql Q     runs a DuckDB query with millpond:// on the cluster
 *   millpond run F     runs an engine script with the cluster's addresses in MILLPOND_*
 *                      (--cluster --redis URL: its tasks run on `millpond executor`s)
 *   millpond executor  runs tasks of cluster jobs on this host (executor.ts)
 *   millpond mount D   mounts the cluster at directory D (FUSE; see mount.ts); umount D
 *   millpond init      makes a multi-host cluster's secret, admin token and cluster.json
 *   millpond mgmtd | meta | storage   one server role of a cluster that spans hosts (roles.ts)
 *   millpond admin ...  chain tables while serving: list, create, grow, rebalance, replace, drain (admin.ts)
 *   millpond user ...  add | list | remove | token: the cluster's users (admin token)
 * Addresses, data directory and transport come from flags (--mgmtd, --meta, --data-dir,
 * --transport, --config), MILLPOND_* variables or a config file (see config.ts). The token
 * comes from --token-file, MILLPOND_TOKEN(_FILE), or the data directory `millpond up` made.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MgmtdClient } from '../cluster/mgmtd-client.js';
import { MillpondError } from '../errors.js';
import { logger } from '../log.js';
import { connect } from '../fs/index.js';
import { ensureClusterKeys } from '../auth/cluster-files.js';
import { ADMIN_TOKEN_FILE, KEYS_DIR } from '../auth/credentials.js';
import { MetaClient } from '../meta/meta-client.js';
import { CLUSTER_FILE, cliAuth, loadConfig, type CliConfig } from './config.js';
import { startEmbedded } from './embedded.js';
import { EXECUTOR_USAGE } from './executor-usage.js';
import { FS_USAGE, runFs } from './fs-commands.js';
import { MOUNT_BARE_FLAGS, MOUNT_USAGE, mount, umount } from './mount.js';
import { ROLES_USAGE, runMeta, runMgmtd, runStorage } from './roles.js';
import { status as clusterStatus } from './status.js';
import { CONSOLE_USAGE, runConsole, startConsoleFor } from './console.js';
import { consoleLimits } from '../limits.js';
import { ADMIN_BARE_FLAGS, ADMIN_USAGE, runAdmin } from './admin.js';
import type { S3Gateway } from '../s3/index.js';

// The S3 gateway's modules load only for the commands that use them (up, s3, user).
const s3Commands = () => import('./s3-commands.js');
// Loaded by the commands that use them: DuckDB, the engine and the executor take seconds to
// load on a busy machine, which every other command (admin, fs, status...) would pay.
const executorCommands = () => import('./executor.js');
const openTaskDb: typeof import('../engine/execution/duckdb.js').openTaskDb = async (...args) => (await import('../engine/execution/duckdb.js')).openTaskDb(...args);
const USER_USAGE = 'millpond user key add --uid N --gid N [--gids a,b] | user key list [--uid N] | user key remove ACCESS_KEY_ID';

const USAGE = `usage: millpond up [--s3 HOST:PORT|off] [--encrypt-data] [--metrics-listen HOST:PORT|off] [--console HOST:PORT|off] | status [--json] | ${CONSOLE_USAGE} | demo [--size-mib N] | sql "QUERY" | run job.ts [--cluster --redis URL] [args] | fs ... |
       mount ... | umount ... | s3 [--listen HOST:PORT] [--region R] [--s3-domain D] [--metrics-listen HOST:PORT --secret-file F] | user key ... | ${EXECUTOR_USAGE}
       millpond init --dir DIR [--mgmtd tcp://H:P[,..]] [--meta tcp://H:P[,..]] [--backend postgres|sqlite] [--encrypt-data]
       ${ROLES_USAGE}
       millpond user add NAME --uid N --gid N [--groups G1,G2] [--proxy] | user list | user remove NAME | user token NAME
  common flags: --data-dir DIR --mgmtd tcp://H:P[,..] --meta tcp://H:P --transport auto|tcp|rdma --config FILE
                --token-file FILE --server-key KEY
                --verbose (debug lines, as MILLPOND_LOG_LEVEL=debug: the transport chosen, ...)
  ${FS_USAGE}
  ${MOUNT_USAGE}
  ${USER_USAGE}
  ${ADMIN_USAGE}`;

/**
 * Splits `--name value` flags (and bare `--no-sync`, `--cluster`, `--verbose`) from positional
 * arguments; `targets` keeps every `--target` (a storage node has several).
 */
function parse(args: string[]): { flags: Map<string, string>; rest: string[]; targets: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  const targets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--no-sync' || arg === '--cluster' || arg === '--proxy' || arg === '--verbose' || arg === '--insecure' || arg === '--encrypt-data') flags.set(arg.slice(2), '1');
    else if (arg === '--target') {
      if (i + 1 >= args.length) throw new TypeError(`--target needs a value\n${USAGE}`);
      targets.push(args[++i]!);
    }
    else if (arg.startsWith('--') && [...MOUNT_BARE_FLAGS, ...ADMIN_BARE_FLAGS].includes(arg.slice(2))) flags.set(arg.slice(2), '1');
    else if (arg.startsWith('--')) {
      if (i + 1 >= args.length) throw new TypeError(`${arg} needs a value\n${USAGE}`);
      flags.set(arg.slice(2), args[++i]!);
    } else rest.push(arg);
  }
  return { flags, rest, targets };
}

async function up(config: CliConfig, flags: Map<string, string>): Promise<void> {
  const { ensureAdminKey, S3_ADMIN_FILE, S3_LISTEN_DEFAULT, startGateway } = await s3Commands();
  const encryptData = flags.has('encrypt-data');
  const cluster = await startEmbedded({ ...config, mgmtdListen: config.mgmtd[0]!, metaListen: config.meta, encryptData, metricsListen: flags.get('metrics-listen') });
  const s3Listen = flags.get('s3') ?? S3_LISTEN_DEFAULT;
  let gateway: S3Gateway | undefined;
  try {
    if (s3Listen !== 'off') gateway = await startGateway({ ...config, mgmtd: [cluster.mgmtd], meta: cluster.meta }, s3Listen, flags, { token: cluster.adminToken, serverKey: cluster.serverKey });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  // The web console, on 127.0.0.1 and any free port unless --console says otherwise ('off': none).
  const consoleListen = flags.get('console') ?? consoleLimits.embeddedListenDefault;
  let webConsole: Awaited<ReturnType<typeof startConsoleFor>> | undefined;
  try {
    if (consoleListen !== 'off' && cluster.adminToken) {
      const secret = ensureClusterKeys(config.dataDir).cluster.secret;
      webConsole = await startConsoleFor(consoleListen, [cluster.mgmtd], cluster.meta, { token: cluster.adminToken, serverKey: cluster.serverKey }, secret);
    }
  } catch (err) {
    await gateway?.close();
    await cluster.stop();
    throw err;
  }
  // The server key is public; the admin token stays in keys/admin.token (0600).
  writeFileSync(join(config.dataDir, CLUSTER_FILE), `${JSON.stringify({ mgmtd: [cluster.mgmtd], meta: cluster.meta, transport: config.transport, serverKey: cluster.serverKey, ...(encryptData ? { encryptData } : {}), ...(gateway ? { s3: gateway.endpoint } : {}), ...(cluster.metrics ? { metrics: cluster.metrics } : {}), ...(webConsole ? { console: webConsole.url } : {}) }, null, 2)}\n`);
  console.log(`millpond is up: mgmtd ${cluster.mgmtd}, meta ${cluster.meta}, 3 storage targets under ${config.dataDir}`);
  console.log(`admin token in ${join(config.dataDir, KEYS_DIR, ADMIN_TOKEN_FILE)} (commands run with --data-dir ${config.dataDir} use it)`);
  if (gateway) {
    const admin = await ensureAdminKey(cluster.meta, config.dataDir, { token: cluster.adminToken, serverKey: cluster.serverKey });
    console.log(`s3: ${gateway.endpoint} access key ${admin.accessKeyId} (admin; its secret is in ${join(config.dataDir, S3_ADMIN_FILE)})`);
  }
  if (cluster.metrics) console.log(`metrics: ${cluster.metrics} (Authorization: Bearer <admin token>)`);
  if (webConsole) console.log(`console: ${webConsole.url} (open ${webConsole.url}?token=<admin token> once)`);
  console.log('Ctrl-C stops it.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log('stopping...');
  await webConsole?.close();
  await gateway?.close();
  await cluster.stop();
  console.log('stopped');
}

async function status(config: CliConfig, flags: Map<string, string>): Promise<void> {
  const redis = flags.get('redis') ?? process.env.MILLPOND_REDIS;
  if (redis) await (await executorCommands()).printExecutors(redis, flags.get('queue'));
  await clusterStatus(config, flags.has('json'));
}

/** Runs one query in DuckDB with millpond:// pointed at the cluster; prints the rows as a table. */
async function sql(config: CliConfig, query: string | undefined): Promise<void> {
  if (!query) throw new TypeError(`millpond sql needs a query\n${USAGE}`);
  const auth = cliAuth(config);
  const db = await openTaskDb({ threads: 2, memoryLimitBytes: 1 << 30, millpond: { meta: config.meta, mgmtd: config.mgmtd.join(','), token: auth?.token, serverKey: auth?.serverKey } });
  try {
    const reader = await db.conn.runAndReadAll(query);
    const names = reader.columnNames();
    const rows = reader.getRowsJS().map((r) => r.map((v) => (v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) : String(v))));
    const widths = names.map((n, i) => Math.max(n.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
    console.log(line(names));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of rows) console.log(line(r));
    console.log(`\n(${rows.length} row${rows.length === 1 ? '' : 's'})`);
  } catch (err) {
    throw new MillpondError('ESQL', err instanceof Error ? err.message : String(err));
  } finally {
    db.close();
  }
}

/**
 * Runs an engine script with the cluster's addresses in MILLPOND_META / MILLPOND_MGMTD; with
 * --cluster, MILLPOND_EXECUTOR=cluster and MILLPOND_REDIS make init() use the cluster executor.
 */
async function run(config: CliConfig, flags: Map<string, string>, script: string | undefined, args: string[]): Promise<void> {
  if (!script) throw new TypeError(`millpond run needs a script\n${USAGE}`);
  const redis = flags.get('redis') ?? process.env.MILLPOND_REDIS;
  if (flags.has('cluster') && !redis) throw new TypeError('millpond run --cluster needs --redis redis://host:port (or MILLPOND_REDIS)');
  const cluster = flags.has('cluster') ? { MILLPOND_EXECUTOR: 'cluster', MILLPOND_REDIS: redis! } : {};
  const tsx = createRequire(import.meta.url).resolve('tsx');
  // The token goes in the environment (readable by this user only), never in argv.
  const auth = cliAuth(config);
  const child = spawn(process.execPath, ['--import', pathToFileURL(tsx).href, script, ...args], {
    stdio: 'inherit',
    env: {
      ...process.env, MILLPOND_META: config.meta, MILLPOND_MGMTD: config.mgmtd.join(','), MILLPOND_TRANSPORT: config.transport, ...cluster,
      ...(auth ? { MILLPOND_TOKEN: auth.token, MILLPOND_SERVER_KEY: auth.serverKey } : {}),
    },
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  process.exitCode = code ?? (signal ? 128 : 1);
}

/** `millpond init --dir DIR`: the key files and cluster.json of a cluster that spans hosts. */
function init(config: CliConfig, flags: Map<string, string>): void {
  const dir = flags.get('dir');
  if (!dir) throw new TypeError(`millpond init needs --dir DIR\n${USAGE}`);
  const keys = ensureClusterKeys(dir);
  const clusterFile = join(dir, CLUSTER_FILE);
  const backend = flags.get('backend');
  if (backend !== undefined && backend !== 'postgres' && backend !== 'sqlite') throw new TypeError(`--backend must be postgres or sqlite, not ${backend}`);
  const meta = config.meta.split(',').filter(Boolean);
  const encryptData = flags.has('encrypt-data');
  writeFileSync(clusterFile, `${JSON.stringify({
    mgmtd: config.mgmtd, meta: meta.length === 1 ? meta[0] : meta, transport: config.transport, serverKey: keys.cluster.server.publicKey, ...(backend ? { backend } : {}),
    ...(encryptData ? { encryptData } : {}),
  }, null, 2)}\n`);
  console.log(`cluster secret: ${keys.secretFile} (copy to every server host, mode 0600; daemons take --secret-file)`);
  console.log(`admin token:    ${keys.adminTokenFile} (meta takes --admin-token-file; the CLI --token-file)`);
  console.log(`cluster file:   ${clusterFile} (public: addresses and the CURVE server key; clients take --config)`);
  console.log(`copy ${dir} to every host; roles take --data-dir ${dir} (millpond mgmtd | meta | storage)`);
  if (encryptData) console.log('encryptData: storage daemons given this cluster.json encrypt every TCP data connection (clients learn it in the handshake)');
}

/** `millpond user add|list|remove|token`: the users table, through meta (admin token). */
async function user(config: CliConfig, flags: Map<string, string>, rest: string[]): Promise<void> {
  const [sub, name] = rest;
  const auth = cliAuth(config);
  if (!auth) throw new MillpondError('EAUTH', 'no token: --token-file FILE, MILLPOND_TOKEN(_FILE), or --data-dir of a cluster made by millpond up');
  const meta = new MetaClient(config.meta, { auth });
  const id = (flag: string) => {
    const v = Number(flags.get(flag));
    if (!flags.has(flag) || !Number.isSafeInteger(v) || v < 0 || v > 0xffffffff) throw new TypeError(`--${flag} N is required (0..4294967295)`);
    return v;
  };
  try {
    if (sub === 'add' && name) {
      const groups = flags.get('groups')?.split(',').filter(Boolean).map(Number) ?? [];
      if (groups.some((g) => !Number.isSafeInteger(g) || g < 0)) throw new TypeError('--groups is a list of numeric group ids');
      const { user: u, token } = await meta.userAdd({ name, uid: id('uid'), gid: id('gid'), groups, proxy: flags.has('proxy') });
      console.error(`user ${u.name} uid ${u.uid} gid ${u.gid}${u.proxy ? ' (proxy)' : ''} added; its token (shown once; keep it in a 0600 file):`);
      console.log(token);
    } else if (sub === 'list') {
      for (const u of await meta.userList()) {
        console.log(`${u.name}\tuid ${u.uid}\tgid ${u.gid}\tgroups ${u.groups.join(',') || '-'}\t${u.uid === 0 ? 'admin' : u.proxy ? 'proxy' : '-'}\ttokens ${u.tokenIds.join(',')}`);
      }
    } else if (sub === 'remove' && name) {
      await meta.userRemove(name);
      console.log(`user ${name} removed; its tokens are refused from now on`);
    } else if (sub === 'token' && name) {
      const { token } = await meta.userToken(name);
      console.error(`a new token of ${name} (shown once):`);
      console.log(token);
    } else {
      throw new TypeError(`millpond user add NAME --uid N --gid N [--groups G,..] [--proxy] | list | remove NAME | token NAME\n${USAGE}`);
    }
  } finally {
    meta.disconnect();
  }
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const { flags, rest, targets } = parse(args);
  // Before anything logs: the native core and src/log.ts read MILLPOND_LOG_LEVEL.
  if (flags.has('verbose')) process.env.MILLPOND_LOG_LEVEL = 'debug';
  const config = loadConfig(flags);
  switch (command) {
    case 'up': return up(config, flags);
    case 's3': return (await s3Commands()).runS3(config, flags);
    // `user key ...` is S3 access keys (s3-commands.ts); the rest is users and tokens.
    case 'user': return rest[0] === 'key' ? (await s3Commands()).runUser(config, rest, flags) : user(config, flags, rest);
    case 'status': return status(config, flags);
    case 'console': return runConsole(config, flags);
    case 'demo': return (await import('./demo.js')).demo(config, flags);
    case 'fs': return runFs(config, rest);
    case 'sql': return sql(config, rest[0]);
    case 'run': return run(config, flags, rest[0], rest.slice(1));
    case 'executor': return (await executorCommands()).runExecutor(flags);
    case 'mount': return mount(config, rest[0], flags);
    case 'umount': return umount(rest[0], flags);
    case 'init': return init(config, flags);
    case 'mgmtd': return runMgmtd(config, flags);
    case 'meta': return runMeta(config, flags);
    case 'storage': return runStorage(config, flags, targets);
    case 'admin': return runAdmin(config, rest, flags);
    default:
      console.error(USAGE);
      process.exitCode = 2;
  }
}

/** The commands that run a daemon: their fatal error is a log line (src/log.ts), like the rest of their stderr. */
const DAEMONS = new Set(['up', 's3', 'executor', 'mgmtd', 'meta', 'storage']);

main().then(() => {
  process.exit(process.exitCode ?? 0); // everything is closed; lingering sockets must not hold the exit
}, (error: unknown) => {
  const code = error instanceof MillpondError ? `${error.code}: ` : '';
  const text = `${code}${error instanceof Error ? error.message : String(error)}`;
  const command = process.argv[2] ?? '';
  if (DAEMONS.has(command)) logger(command).error(`millpond ${command} failed: ${text}`, error instanceof MillpondError ? { code: error.code } : {});
  else console.error(`millpond: ${text}`);
  process.exit(1);
});
