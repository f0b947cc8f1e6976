/**
 * A storage daemon process:
 *   node --import tsx src/storage/main.ts --node-id 1 --mgmtd tcp://h:p[,tcp://h2:p2] \
 *     --target 101:/ssd0/t101[:capacityBytes] [--target 102:/ssd1/t102] [--host 127.0.0.1]
 * Options: --heartbeat-ms, --routing-poll-ms, --mgmtd-timeout-ms, --scrub-interval-ms,
 * --stray-sweep-interval-ms (0: no sweep), --stray-grace-ms (the sweep's grace; tests shorten it),
 * --transport auto|tcp|rdma, --no-sync (no fdatasync; tests only), --secret-file <cluster.secret> (the
 * cluster secret: registration proofs, CURVE, and the data plane then authenticates every
 * connection and checks capabilities), --encrypt-data (the cluster's encryptData flag: every TCP
 * data connection encrypted; needs --secret-file).
 * Prints "target <id> <dataAddress> <dir>" per target and "listening <control endpoint>" once it
 * serves and registered. SIGTERM/SIGINT stop it cleanly.
 */
import { parseArgs } from 'node:util';
import type { TransportChoice } from '../native/binding.js';
import { ClusterAuth } from '../auth/credentials.js';
import { roleFlags } from '../cli/role-flags.js';
import { startStorageRole } from '../cli/role-services.js';

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
    'stray-sweep-interval-ms': { type: 'string' },
    'stray-grace-ms': { type: 'string' },
    'no-sync': { type: 'boolean', default: false },
    'secret-file': { type: 'string' },
    'encrypt-data': { type: 'boolean', default: false },
    'metrics-listen': { type: 'string' },
  },
});
const flags = roleFlags('storage', values);
const { fail } = flags;

const nodeId = flags.positiveInt('node-id', 0) ?? fail('--node-id is required');
const mgmtd = values.mgmtd ?? fail('--mgmtd tcp://host:port[,...] is required');
const targets = (values.target ?? []).map((spec) => {
  // <id>:<dir>[:<capacity bytes>]
  const m = /^(\d+):([^:]+)(?::(\d+))?$/.exec(spec) ?? fail(`--target must be <id>:<dir>[:<capacityBytes>], got ${spec}`);
  return { targetId: Number(m[1]), dir: m[2]!, capacityBytes: m[3] === undefined ? 0 : Number(m[3]) };
});
if (targets.length === 0) fail('at least one --target <id>:<dir> is required');
if (!['auto', 'tcp', 'rdma'].includes(values.transport!)) fail('--transport must be auto, tcp or rdma');
if (values['encrypt-data'] && !values['secret-file']) fail('--encrypt-data needs --secret-file (the handshake derives the keys)');

await flags.run(() => startStorageRole({
  nodeId,
  mgmtd: mgmtd.split(',').filter(Boolean),
  targets,
  host: values.host,
  controlListen: values.control,
  transport: values.transport as TransportChoice,
  heartbeatIntervalMs: flags.positiveInt('heartbeat-ms'),
  routingPollMs: flags.positiveInt('routing-poll-ms'),
  mgmtdTimeoutMs: flags.positiveInt('mgmtd-timeout-ms'),
  scrubIntervalMs: flags.positiveInt('scrub-interval-ms', 0),
  straySweepIntervalMs: flags.positiveInt('stray-sweep-interval-ms', 0),
  strayGraceMs: flags.positiveInt('stray-grace-ms', 0),
  syncWrites: !values['no-sync'],
  auth: values['secret-file'] ? ClusterAuth.load(values['secret-file']) : undefined,
  encryptData: values['encrypt-data'],
  metricsListen: values['metrics-listen'],
}));
