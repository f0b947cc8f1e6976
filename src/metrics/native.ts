/**
 * The native core's data-plane metrics (native/common/metrics.h), read from the addon at
 * scrape time: nothing here counts, so the figures are the core's own. Registered by a process
 * that runs data servers (storage daemons, `millpond up`).
 */
import { addon } from '../native/binding.js';
import { histogramSeries, snapshotMetric, type SampleValue } from './registry.js';

export function registerNativeMetrics(): void {
  let cached: { atMs: number; snap: ReturnType<typeof addon.metricsSnapshot> } | undefined;
  // One snapshot serves every metric of one scrape (they are read within a few ms).
  const snap = () => {
    const now = Date.now();
    if (!cached || now - cached.atMs > 50) cached = { atMs: now, snap: addon.metricsSnapshot() };
    return cached.snap;
  };
  const byOpTransport = (pick: (s: ReturnType<typeof snap>) => number[][]) => (): SampleValue[] => {
    const s = snap();
    const out: SampleValue[] = [];
    pick(s).forEach((row, o) => row.forEach((value, t) => {
      if (value > 0) out.push({ labels: { op: s.ops[o]!, transport: s.transports[t]! }, value });
    }));
    return out;
  };
  snapshotMetric('millpond_data_requests_total', 'Data-plane requests answered, by operation and transport', 'counter', byOpTransport((s) => s.requests));
  snapshotMetric('millpond_data_request_errors_total', 'Data-plane requests answered with an error, by operation and transport', 'counter', byOpTransport((s) => s.errors));
  snapshotMetric('millpond_data_request_duration_seconds', 'Data-plane request latency from arrival to reply, by operation', 'histogram', () => {
    const s = snap();
    const bounds = s.latencyBucketsUs.map((us) => us / 1e6);
    return s.latency.flatMap((h, o) => histogramSeries('millpond_data_request_duration_seconds', { op: s.ops[o]! }, bounds, h.buckets, h.sumUs / 1e6));
  });
  const scalar = (name: string, help: string, type: 'counter' | 'gauge', pick: (s: ReturnType<typeof snap>) => number) =>
    snapshotMetric(name, help, type, () => [{ value: pick(snap()) }]);
  scalar('millpond_data_read_bytes_total', 'Chunk bytes served to readers by data servers (short-circuit reads not included)', 'counter', (s) => s.bytesRead);
  scalar('millpond_data_written_bytes_total', 'Chunk bytes stored by data-server writes (every replica)', 'counter', (s) => s.bytesWritten);
  scalar('millpond_data_requests_in_flight', 'Data-plane requests arrived and not yet answered', 'gauge', (s) => s.inFlight);
  scalar('millpond_data_requests_queued', 'Data-plane requests waiting for an I/O thread', 'gauge', (s) => s.queued);
  scalar('millpond_data_busy_rejections_total', 'Data-plane requests refused because the queue was full', 'counter', (s) => s.busyRejections);
  scalar('millpond_data_crc_failures_total', 'Checksum mismatches and damaged chunks found by data servers', 'counter', (s) => s.crcFailures);
  scalar('millpond_data_chain_forwards_total', 'Writes forwarded to a chain successor', 'counter', (s) => s.chainForwards);
  scalar('millpond_data_local_read_hits_total', 'Chunk descriptors handed out for short-circuit local reads', 'counter', (s) => s.localReadHits);
}
