/**
 * The job directory, after smallpond's:
 *
 *   <root>/<jobId>/plan.json                         the nodes run so far (description only)
 *   <root>/<jobId>/<nodeId>/<partition>-<producer>.parquet
 *   <root>/<jobId>/<nodeId>/.completed/<task>.json   a task's marker: its outputs, rows, bytes
 *   <root>/<jobId>/<nodeId>/.completed/<task>.claim  the attempt that owns the task's outputs
 *                                                    (when attempts may overlap: cluster executor)
 *
 * A task with index i of a non-shuffle node is the producer of partition i alone
 * (`<i>-<i>.parquet`); producer j of a shuffle node writes `<p>-<j>.parquet` for every p, so a
 * consumer of partition p reads one file per producer. Outputs are written under temporary
 * names and renamed; the marker is written (atomically) only after every output is in place,
 * so a marker implies complete outputs. A scan and a by-files repartition have no directory:
 * their partitions are the user's files and their input's files.
 */
import { hostname } from 'node:os';
import type { DataRoot } from './root.js';

export class JobLayout {
  readonly jobDir: string;

  constructor(readonly root: DataRoot, readonly jobId: string) {
    this.jobDir = `${root.dir}/${jobId}`;
  }

  nodeDir(nodeId: string): string {
    return `${this.jobDir}/${nodeId}`;
  }

  output(nodeId: string, partition: number, producer: number): string {
    return `${this.nodeDir(nodeId)}/${partition}-${producer}.parquet`;
  }

  marker(nodeId: string, task: number): string {
    return `${this.nodeDir(nodeId)}/.completed/${task}.json`;
  }

  claim(nodeId: string, task: number): string {
    return `${this.nodeDir(nodeId)}/.completed/${task}.claim`;
  }

  planFile(): string {
    return `${this.jobDir}/plan.json`;
  }
}

/**
 * A temporary name beside `location`, unique per attempt and process (executors on several
 * hosts may run the same attempt when one was presumed dead), renamed over it when complete.
 */
export function temporaryName(location: string, attempt: number): string {
  return `${location}.tmp-${attempt}-${kProcessTag}`;
}

const kProcessTag = `${hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32)}-${process.pid}`;
