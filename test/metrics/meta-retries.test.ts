// millpond_meta_transaction_retries_total counts PostgreSQL serialization conflicts that meta
// retried: two transactions that read a key and then both write it conflict for certain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresKv } from '../../src/kv/postgres-kv.js';
import { registry } from '../../src/metrics/registry.js';
import '../../src/metrics/services.js';
import { createTestDatabase, skipPg } from '../meta/support/pg.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';

const retries = async () => sampleValue(parsePrometheusText(await registry.metrics()), 'millpond_meta_transaction_retries_total');

describe.skipIf(skipPg)('meta transaction retries on PostgreSQL', () => {
  let db: { url: string; drop: () => Promise<void> };
  let kv: PostgresKv;
  beforeAll(async () => {
    db = await createTestDatabase();
    kv = await PostgresKv.open({ connectionString: db.url, writersMax: 2 }); // two writers at once, so they can conflict
  }, 60_000);
  afterAll(async () => {
    await kv?.close();
    await db?.drop();
  });

  it('are counted once per retried conflict', async () => {
    const key = Buffer.from('counter');
    await kv.transact((tx) => tx.put(key, Buffer.from('0')));
    const before = await retries();
    const conflictsBefore = kv.conflicts;
    let read = 0;
    let bothRead!: () => void;
    const barrier = new Promise<void>((resolve) => (bothRead = resolve));
    const increment = () => kv.transact(async (tx) => {
      const value = Number((await tx.get(key))!.toString());
      if (++read === 2) bothRead();
      // First attempts wait until both have read, so they overlap; retries run alone.
      await Promise.race([barrier, new Promise((r) => setTimeout(r, 2_000))]);
      await tx.put(key, Buffer.from(String(value + 1)));
    });
    // Begun in different turns: each is a transaction of its own, not members of one group.
    const first = increment();
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.all([first, increment()]);
    expect((await kv.transact((tx) => tx.get(key)))!.toString()).toBe('2'); // the retry saw the other's write
    expect(kv.conflicts - conflictsBefore).toBeGreaterThanOrEqual(1);
    expect(await retries() - before).toBe(kv.conflicts - conflictsBefore);
  }, 60_000);
});
