/**
 * A storage daemon process:
 *   node --import tsx src/storage/main.ts --node-id 1 --mgmtd tcp://h:p[,tcp://h2:p2] \
 *     --target 101:/ssd0/t101[:capacityBytes] [--target 102:/ssd1/t102] [--host 127.0.0.1]
 * Options: --heartbeat-ms, --routing-poll-ms, --mgmtd-timeout-ms, --scrub-interval-ms,
 * --transport auto|tcp|rdma, --no-sync (no fdatasync; tests only), --secret-file <cluster.secret> (the
 * cluster secret: registration proofs, CURVE, and the data plane then authenticates every
 * connection and checks capabilities), --encrypt-data (the cluster's encryptData flag: every TCP
 * data connection encrypted; needs --secret-file).
 * Prints "target <id> <dataAddress>" per target and "listening <control endpoint>" once it
 * serves and registered. SIGTERM/SIGINT stop it cleanly.
 */
import { serveMetricsFlag } from '../metrics/server.js';
import { parseArgs } from 'node:util';
import type { TransportChoice } from '../native/binding.js';
import { ClusterAuth } from '../auth/credentials.js';
import { StorageDaemon } from './daemon.js';
import { logger } from '../log.js';

const { values } = parseArgs({
  options: {
    'node-id': { type: 'string' },
    mgmtd: { type: 'string' },
    target: { type: 'string', multiple: true },
    host: { type: 'string', default: '127.0.0.1' },
    control: { type: 'string' },
    transport: { type: 'string', default: 'auto' },
    'heartbeat-ms': { type: 'string' },
    'routing-poll-ms': { type: 'string' },
    'mgmtd-timeout-ms': { type: 'string' },
    'scrub-interval-ms': { type: 'string' },
    'no-sync': { type: 'boolean', default: false },
    // The cluster secret (0600 file): registration proofs, CURVE, data-plane authentication. Without it, none.
    'secret-file': { type: 'string' },
    // The cluster's encryptData flag (cluster.json): encrypt every TCP data connection. Needs --secret-file.
    'encrypt-data': { type: 'boolean', default: false },
    // Serve Prometheus metrics at http://HOST:PORT/metrics (admin token as bearer; needs --secret-file).
    'metrics-listen': { type: 'string' },
  },
});

function fail(message: string): never {
  logger('storage').error(message);
  process.exit(2);
}

function int(name: keyof typeof values, min = 1): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}`);
  return n;
}

const nodeId = int('node-id', 0);
if (nodeId === undefined) fail('--node-id is required');
if (!values.mgmtd) fail('--mgmtd tcp://host:port[,...] is required');
const targets = (values.target ?? []).map((spec) => {
  // <id>:<dir>[:<capacity bytes>]
  const m = /^(\d+):([^:]+)(?::(\d+))?$/.exec(spec);
  if (!m) fail(`--target must be <id>:<dir>[:<capacityBytes>], got ${spec}`);
  return { targetId: Number(m[1]), dir: m[2]!, capacityBytes: m[3] === undefined ? 0 : Number(m[3]) };
});
if (targets.length === 0) fail('at least one --target <id>:<dir> is required');
if (!['auto', 'tcp', 'rdma'].includes(values.transport!)) fail('--transport must be auto, tcp or rdma');
if (values['encrypt-data'] && !values['secret-file']) fail('--encrypt-data needs --secret-file (the handshake derives the keys)');

const daemon = await StorageDaemon.start({
  nodeId,
  mgmtd: values.mgmtd.split(',').filter(Boolean),
  targets,
  host: values.host,
  controlListen: values.control,
  transport: values.transport as TransportChoice,
  heartbeatIntervalMs: int('heartbeat-ms'),
  routingPollMs: int('routing-poll-ms'),
  mgmtdTimeoutMs: int('mgmtd-timeout-ms'),
  scrubIntervalMs: int('scrub-interval-ms', 0),
  syncWrites: !values['no-sync'],
  auth: values['secret-file'] ? ClusterAuth.load(values['secret-file']) : undefined,
  encryptData: values['encrypt-data'],
}).catch((err: Error & { code?: string }) => fail(`${err.code ?? 'EIO'}: ${err.message}`));
for (const t of targets) console.log(`target ${t.targetId} ${daemon.dataAddress(t.targetId)}`);
await serveMetricsFlag(values['metrics-listen'], values['secret-file'] ? ClusterAuth.load(values['secret-file']).secret : undefined).catch((err: Error) => fail(err.message));
console.log(`listening ${daemon.controlAddress}`);

const shutdown = async () => {
  await daemon.stop();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
