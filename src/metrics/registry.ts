/**
 * The process's metrics registry (design §14): one prom-client Registry per process, served by
 * src/metrics/server.ts. A daemon's parts register their metrics here when first loaded; the
 * embedded `millpond up` runs every daemon in one process, so one scrape shows them all.
 * Metric names start with `millpond_`; units are the last word (`_bytes`, `_seconds`).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'millpond_' });

export type Labels = Record<string, string | number>;

export interface SampleValue {
  labels?: Labels;
  value: number;
  /** For histogram series: `<name>_bucket`, `_sum`, `_count`. */
  metricName?: string;
}

/**
 * A metric whose values are read from elsewhere at scrape time (the addon's counters, a
 * service's state), never counted here. `read` is called once per scrape.
 */
export function snapshotMetric(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', read: () => SampleValue[]): void {
  if (registry.getSingleMetric(name)) return; // a second daemon in the same process: one is enough
  const metric = {
    name, help, type,
    get: async () => ({ name, help, type, values: read(), aggregator: 'sum' as const }),
    reset: () => {},
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}

/**
 * Histogram series from bucket counts that are not cumulative (the last is +Inf) with upper
 * bounds `bounds` (in the unit of the metric); `_count` is the bucket total, so it always equals
 * the +Inf bucket even when a snapshot was read while requests were recorded.
 */
export function histogramSeries(name: string, labels: Labels, bounds: readonly number[], buckets: readonly number[], sum: number): SampleValue[] {
  const out: SampleValue[] = [];
  let cumulative = 0;
  for (let i = 0; i < buckets.length; i++) {
    cumulative += buckets[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: i < bounds.length ? bounds[i]! : '+Inf' }, value: cumulative });
  }
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: cumulative });
  return out;
}
