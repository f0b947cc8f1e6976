/**
 * Hands out inode ids from batches reserved in the KV counter 'C' "inode-next". One server
 * touches the counter once per metaLimits.inodeIdBatch ids, so concurrent creates (and
 * several servers) rarely conflict on it. Ids of a batch lost in a crash are never reused.
 * REQUIRES: call outside any transaction of the same backend (it runs its own).
 */
import { metaLimits } from '../limits.js';
import { pack, unpack } from '../protocol/codec.js';
import { keys, ROOT_INODE } from './keys.js';
import type { KvBackend } from '../kv/kv.js';

const COUNTER = keys.counter('inode-next');

export class InodeAllocator {
  private next = 0n;
  private end = 0n;
  private refill: Promise<void> | undefined;

  constructor(private readonly kv: KvBackend, private readonly batch = metaLimits.inodeIdBatch) {}

  async take(count: number): Promise<bigint[]> {
    const ids: bigint[] = [];
    while (ids.length < count) {
      if (this.next < this.end) {
        ids.push(this.next++);
        continue;
      }
      this.refill ??= this.reserve().finally(() => (this.refill = undefined));
      await this.refill;
    }
    return ids;
  }

  private async reserve(): Promise<void> {
    const batch = BigInt(this.batch);
    const start = await this.kv.transact(async (tx) => {
      const raw = await tx.get(COUNTER);
      const first = raw ? BigInt(unpack(raw) as number | bigint) : ROOT_INODE + 1n;
      await tx.put(COUNTER, pack(first + batch));
      return first;
    });
    this.next = start;
    this.end = start + batch;
  }
}
