/**
 * The metrics the TS daemons count themselves (design §14), one place for their names:
 * meta (ops by method and outcome, latency, transaction retries), mgmtd (heartbeats; routing
 * version and targets by state read from the primary at scrape time), storage (resync copies,
 * stray-sweep removals; per-target capacity and free space read at scrape time), the S3
 * gateway (requests by operation and status, bytes) and the cluster executor (tasks by
 * outcome, attempts, bytes).
 * Code that counts imports the metric it needs; no metric is counted in two places.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { metricsLimits } from '../limits.js';
import { registry, snapshotMetric, type SampleValue } from './registry.js';

const secondsBuckets = metricsLimits.latencyBucketsMs.map((ms) => ms / 1000);
const registers = [registry];

// ---- meta
export const metaOps = new Counter({ name: 'millpond_meta_ops_total', help: 'Meta requests answered, by method and outcome (ok or the error code)', labelNames: ['method', 'outcome'] as const, registers });
export const metaOpSeconds = new Histogram({ name: 'millpond_meta_op_duration_seconds', help: 'Meta request latency, by method', labelNames: ['method'] as const, buckets: secondsBuckets, registers });
export const metaTxRetries = new Counter({ name: 'millpond_meta_transaction_retries_total', help: 'Meta transactions retried after a serialization conflict (PostgreSQL)', registers });

/**
 * Counts one meta request under `name`: the RPC method without its `meta.` prefix, except that
 * an open with the create flag counts as `create` (it makes the file when absent).
 */
export function metaOpName(method: string, createFlag: () => boolean): string {
  const name = method.replace(/^meta\./, '');
  if (name !== 'open') return name;
  try {
    return createFlag() ? 'create' : 'open';
  } catch {
    return 'open'; // malformed flags: the handler refuses it
  }
}

export async function meteredMetaOp<T>(name: string, run: () => Promise<T>): Promise<T> {
  const end = metaOpSeconds.startTimer({ method: name });
  try {
    const out = await run();
    metaOps.inc({ method: name, outcome: 'ok' });
    return out;
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    metaOps.inc({ method: name, outcome: typeof code === 'string' && /^E[A-Z_]+$/.test(code) ? code : 'error' });
    throw err;
  } finally {
    end();
  }
}

// ---- mgmtd
export const mgmtdHeartbeats = new Counter({ name: 'millpond_mgmtd_heartbeats_total', help: 'Storage heartbeats accepted by this mgmtd', registers });

export interface MgmtdView {
  primary: boolean;
  routingVersion: number;
  targets: Array<{ targetId: number; state: string; capacityBytes?: number; freeBytes?: number }>;
  nodesAlive: number;
  nodes: number;
}
const mgmtdViews = new Set<() => MgmtdView>();

/** Adds an mgmtd's state to the scrape; returns the function that removes it (at stop). */
export function trackMgmtd(view: () => MgmtdView): () => void {
  mgmtdViews.add(view);
  const primary = () => [...mgmtdViews].map((v) => v()).find((v) => v.primary);
  snapshotMetric('millpond_mgmtd_primary', '1 when an mgmtd in this process holds the lease', 'gauge', () => [{ value: primary() ? 1 : 0 }]);
  snapshotMetric('millpond_mgmtd_routing_version', 'The routing version of the primary mgmtd', 'gauge', () => {
    const p = primary();
    return p ? [{ value: p.routingVersion }] : [];
  });
  snapshotMetric('millpond_mgmtd_targets', 'Targets by public state, as the primary mgmtd sees them', 'gauge', () => {
    const p = primary();
    if (!p) return [];
    const by = new Map<string, number>();
    for (const t of p.targets) by.set(t.state, (by.get(t.state) ?? 0) + 1);
    return [...by].map(([state, value]) => ({ labels: { state }, value }));
  });
  snapshotMetric('millpond_mgmtd_nodes', 'Storage nodes registered (alive: heartbeat within the timeout)', 'gauge', () => {
    const p = primary();
    return p ? [{ labels: { alive: 'true' }, value: p.nodesAlive }, { labels: { alive: 'false' }, value: p.nodes - p.nodesAlive }] : [];
  });
  return () => void mgmtdViews.delete(view);
}

// ---- storage
export const resyncChunksCopied = new Counter({ name: 'millpond_resync_copied_chunks_total', help: 'Chunks copied to a resyncing target', registers });
export const resyncBytesCopied = new Counter({ name: 'millpond_resync_copied_bytes_total', help: 'Chunk bytes copied to a resyncing target', registers });
export const strayChunksRemoved = new Counter({ name: 'millpond_stray_removed_chunks_total', help: 'Chunks of chains their target left removed by the stray sweep', registers });
export const strayBytesRemoved = new Counter({ name: 'millpond_stray_removed_bytes_total', help: 'Chunk bytes of chains their target left removed by the stray sweep', registers });

export interface TargetView { targetId: number; nodeId: number; capacityBytes: number; freeBytes: number; chunks: number }
const storageViews = new Set<() => TargetView[]>();

/** Adds a storage daemon's targets to the scrape; returns the function that removes them. */
export function trackStorage(view: () => TargetView[]): () => void {
  storageViews.add(view);
  const each = (pick: (t: TargetView) => number) => (): SampleValue[] =>
    [...storageViews].flatMap((v) => v()).map((t) => ({ labels: { target: t.targetId, node: t.nodeId }, value: pick(t) }));
  snapshotMetric('millpond_target_capacity_bytes', 'Bytes a target may hold (its limit, else its disk)', 'gauge', each((t) => t.capacityBytes));
  snapshotMetric('millpond_target_free_bytes', 'Bytes a target can still take', 'gauge', each((t) => t.freeBytes));
  snapshotMetric('millpond_target_chunks', 'Chunks stored on a target', 'gauge', each((t) => t.chunks));
  return () => void storageViews.delete(view);
}

// ---- S3 gateway
export const s3Requests = new Counter({ name: 'millpond_s3_requests_total', help: 'S3 requests answered, by operation and HTTP status', labelNames: ['operation', 'status'] as const, registers });
export const s3RequestSeconds = new Histogram({ name: 'millpond_s3_request_duration_seconds', help: 'S3 request latency, by operation', labelNames: ['operation'] as const, buckets: secondsBuckets, registers });
export const s3Bytes = new Counter({ name: 'millpond_s3_bytes_total', help: 'S3 body bytes by direction (in: request Content-Length; out: response Content-Length of successful answers)', labelNames: ['direction'] as const, registers });

/** A bounded operation name for a request: the S3 family of its method, bucket, key and subresources. */
export function s3OperationName(method: string, bucket: string, key: string, query: Map<string, string>): string {
  if (bucket === '') return 'ListBuckets';
  const verb = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(method) ? method : 'OTHER';
  if (key === '') return `${verb}Bucket`;
  return query.has('uploadId') || query.has('uploads') || query.has('partNumber') ? `${verb}Multipart` : `${verb}Object`;
}

// ---- cluster executor
export const engineTasks = new Counter({ name: 'millpond_engine_tasks_total', help: 'Task attempts finished on this executor, by outcome', labelNames: ['outcome'] as const, registers });
export const engineTasksRunning = new Gauge({ name: 'millpond_engine_tasks_running', help: 'Task attempts running on this executor', registers });
export const engineTaskAttempts = new Counter({ name: 'millpond_engine_task_attempts_total', help: 'Task attempts started on this executor (a retry is another attempt)', registers });
export const engineTaskRetries = new Counter({ name: 'millpond_engine_task_retries_total', help: 'Task attempts started here that were not a task\'s first', registers });
export const engineOutputBytes = new Counter({ name: 'millpond_engine_output_bytes_total', help: 'Bytes of task outputs written by tasks on this executor', registers });
export const engineTaskReadBytes = new Histogram({ name: 'millpond_engine_task_read_bytes', help: 'Bytes a succeeded task attempt on this executor read from millpond (DuckDB\'s reads and whole-file copies)', buckets: metricsLimits.taskBytesBuckets, registers });
export const engineTaskWrittenBytes = new Histogram({ name: 'millpond_engine_task_written_bytes', help: 'Bytes a succeeded task attempt on this executor wrote to millpond (its outputs and shuffle parts)', buckets: metricsLimits.taskBytesBuckets, registers });

/** Counts an S3 request when its response is done; `operation` is read then (routing names it late). */
export function meterS3Request(req: { method?: string; headers: Record<string, unknown> }, res: { statusCode: number; getHeader(name: string): unknown; once(event: 'close', fn: () => void): unknown }, operation: () => string): void {
  const end = s3RequestSeconds.startTimer();
  res.once('close', () => {
    const op = operation();
    end({ operation: op });
    s3Requests.inc({ operation: op, status: String(res.statusCode) });
    const bytesIn = Number(req.headers['x-amz-decoded-content-length'] ?? req.headers['content-length'] ?? 0);
    if (Number.isSafeInteger(bytesIn) && bytesIn > 0) s3Bytes.inc({ direction: 'in' }, bytesIn);
    const bytesOut = Number(res.getHeader('content-length') ?? 0);
    if (req.method !== 'HEAD' && res.statusCode < 300 && Number.isSafeInteger(bytesOut) && bytesOut > 0) s3Bytes.inc({ direction: 'out' }, bytesOut);
  });
}
