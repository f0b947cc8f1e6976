/**
 * Every DataFrame method against plain DuckDB over the same files: the same rows
 * (order-insensitive where smallpond's API is), for 1, 3 and 7 partitions, with a skewed key
 * that leaves some partitions empty. Real DuckDB, real worker processes. Run once per executor:
 * dataframe.test.ts (local), cluster-executor.test.ts (executors on Redis).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as arrow from 'apache-arrow';
import { init, type InitOptions, type Session } from '../../src/engine/index.js';
import { tempDir } from '../support/tmp.js';
import { bag, plainDuckDb, writeInputs } from './support.js';

/**
 * mapBatches' function: on a cluster it travels as source text, so it names apache-arrow as
 * `arrow` (provided on executors) and not as this module's import, whose name the test runner
 * rewrites. Made from text so both executors see the same function.
 */
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const twiceBatches = new Function('arrow', `return (t) => {
  const ids = t.getChild('id').toArray();
  return arrow.tableFromArrays({ id: ids, twice: BigInt64Array.from(ids, (x) => x * 2n) });
}`)(arrow) as (t: arrow.Table) => arrow.Table;

export function dataframeSuite(options: () => Promise<Partial<InitOptions>>): void {
  let sp: Session;
  let db: Awaited<ReturnType<typeof plainDuckDb>>;
  let tmp: ReturnType<typeof tempDir>;
  let events: string;
  const allEvents = () => db.rows(`SELECT * FROM read_parquet('${tmp.dir}/events-*.parquet')`);

  beforeAll(async () => {
    tmp = tempDir('engine-df');
    await writeInputs(tmp.dir);
    events = `${tmp.dir}/events-*.parquet`;
    db = await plainDuckDb();
    sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/root` }, workers: 2, memoryLimitPerTask: '256MB', progress: false, ...(await options()) });
  });

  afterAll(async () => {
    await sp?.shutdown();
    db?.close();
    tmp?.cleanup();
  });

  describe('sources', () => {
    it('readParquet over a glob and a list', async () => {
      expect(bag(await sp.readParquet(events).takeAll())).toEqual(bag(await allEvents()));
      const two = [`${tmp.dir}/events-0.parquet`, `${tmp.dir}/events-1.parquet`];
      expect(await sp.readParquet(two).count()).toBe(400);
      expect(bag(await sp.readParquet(events, { columns: ['id', 'k'] }).takeAll())).toEqual(bag(await db.rows(`SELECT id, k FROM read_parquet('${events}')`)));
    });

    it('readCsv and readJson, detected and with a schema', async () => {
      const expected = bag(await db.rows(`SELECT id, k, name, v FROM read_parquet('${events}')`));
      expect(bag(await sp.readCsv(`${tmp.dir}/events.csv`).takeAll())).toEqual(expected);
      const schema = { id: 'BIGINT', k: 'BIGINT', name: 'VARCHAR', v: 'DOUBLE' };
      expect(bag(await sp.readCsv(`${tmp.dir}/events.csv`, { schema }).repartition(3).takeAll())).toEqual(expected);
      expect(bag(await sp.readJson(`${tmp.dir}/events.json`, { schema }).takeAll())).toEqual(expected);
    });

    it('fromItems (objects and scalars) and fromArrow', async () => {
      // JS numbers are DOUBLE, bigints BIGINT (apache-arrow's inference).
      const items = [{ a: 1n, b: 'x', c: 2.5 }, { a: 2n, b: null, c: 1 }, { a: 3n, b: 'z', c: null }];
      expect(bag(await sp.fromItems(items).takeAll())).toEqual(bag(items));
      const typed = await sp.fromItems([{ n: 1 }]).toArrow();
      expect(String(typed.schema.fields[0]!.type)).toBe('Float64');
      expect(bag(await sp.fromItems(['p', 'q']).takeAll())).toEqual(bag([{ item: 'p' }, { item: 'q' }]));
      const table = arrow.tableFromArrays({ x: Int32Array.from([1, 2, 3]), y: ['a', 'b', 'c'] });
      const back = await sp.fromArrow(table).repartition(2).toArrow();
      expect(back.numRows).toBe(3);
      expect(bag(back.toArray().map((r) => r.toJSON()))).toEqual(bag([{ x: 1, y: 'a' }, { x: 2, y: 'b' }, { x: 3, y: 'c' }]));
    });
  });

  it('partialSql takes every form of query: its own WITH (RECURSIVE, after comments), FROM first, PIVOT, set operations, an input read twice', async () => {
    // One partition, so each answer is plain DuckDB's over all the files.
    const one = sp.readParquet(events).repartition(1);
    const queries = [
      'WITH big AS (SELECT id, k FROM {0} WHERE k > 3) SELECT k, count(*) AS c FROM big GROUP BY k',
      '-- per n\n/* a block comment */ with recursive r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n, count(*) AS c FROM r, {0} GROUP BY n',
      'FROM {0} SELECT k, max(id) AS m GROUP BY k',
      'PIVOT (SELECT k % 2 AS odd, k FROM {0}) ON odd IN (0, 1) USING count(*) GROUP BY k',
      '(SELECT id FROM {0} WHERE k = 1) UNION ALL (SELECT id FROM {0} WHERE k = 2)',
      'SELECT a.id, b.k FROM {0} a JOIN {0} b USING (id) WHERE a.k < 3',
    ];
    for (const sql of queries) {
      expect(bag(await sp.partialSql(sql, one).takeAll()), sql).toEqual(bag(await db.rows(sql.replaceAll('{0}', `read_parquet('${events}')`))));
    }
  });

  it('empty inputs: every partition empty keeps its columns (SQL) or takes the given schema (functions)', async () => {
    const empty = sp.readParquet(events).filter('k < 0').repartition(3, { hashBy: 'k' });
    expect(await empty.count()).toBe(0);
    expect((await empty.toArrow()).schema.fields.map((f) => f.name)).toEqual(['id', 'k', 'name', 'v', 'xs']);
    const mapped = await empty.map((r) => ({ a: r.id }), { schema: { a: 'BIGINT' } }).toArrow();
    expect(mapped.numRows).toBe(0);
    expect(String(mapped.schema.fields[0]!.type)).toBe('Int64');
    expect(await empty.limit(5).takeAll()).toEqual([]);
  });

  it('terminal calls at once on one session run one after another', async () => {
    const df = sp.readParquet(events).repartition(3, { hashBy: 'name' });
    const [a, b, c] = await Promise.all([df.count(), df.filter('k = 0').count(), df.map('id').take(5)]);
    expect([a, b, c.length]).toEqual([600, 327, 5]);
  });

  describe('repartition by files (the default)', () => {
    /** Per partition of `df`: its row count and the set of `id % 3` in it (which input file / producer partition). */
    const perPartition = async (df: ReturnType<Session['readParquet']>) =>
      (await sp.partialSql('SELECT count(*) AS c, coalesce(list(DISTINCT id % 3 ORDER BY id % 3), []) AS f FROM {0}', df).takeAll())
        .map((r) => [Number(r.c), (r.f as bigint[]).map(Number)]);

    it('more files than partitions: contiguous groups of whole files, the larger groups first', async () => {
      const df = sp.readParquet(events).repartition(2);
      expect(await perPartition(df)).toEqual([[400, [0, 1]], [200, [2]]]);
      // Only the 2 SQL tasks: the by-files node runs none.
      expect(sp.lastSummary).toMatchObject({ tasksTotal: 2, tasksRun: 2 });
      expect(await df.count()).toBe(600);
    });

    it('fewer files than partitions: the rest are empty partitions with the input schema', async () => {
      const df = sp.readParquet(events).repartition(5);
      expect(await perPartition(df)).toEqual([[200, [0]], [200, [1]], [200, [2]], [0, []], [0, []]]);
      expect(await df.count()).toBe(600);
      const table = await df.filter('id < 0').toArrow();
      expect(table.numRows).toBe(0);
      expect(table.schema.fields.map((f) => f.name)).toEqual(['id', 'k', 'name', 'v', 'xs']);
      // Tasks over the empty partitions see the columns: SQL, functions, a write.
      expect(bag(await df.map('id, v').takeAll())).toEqual(bag(await db.rows(`SELECT id, v FROM read_parquet('${events}')`)));
      expect(bag(await df.map((r) => ({ id: r.id })).takeAll())).toEqual(bag(await db.rows(`SELECT id FROM read_parquet('${events}')`)));
      await df.writeParquet(`${tmp.dir}/out-files-5`);
      expect(bag(await db.rows(`SELECT * FROM read_parquet('${tmp.dir}/out-files-5/*.parquet')`))).toEqual(bag(await allEvents()));
      // A CSV scan's one file into 3 partitions: read as CSV, two partitions empty.
      const csv = sp.readCsv(`${tmp.dir}/events.csv`).repartition(3);
      expect((await sp.partialSql('SELECT count(*) AS c FROM {0}', csv).takeAll()).map((r) => Number(r.c))).toEqual([600, 0, 0]);
      expect(await csv.take(3)).toHaveLength(3);
    });

    it('over a non-scan input: its output files in partition order, grouped', async () => {
      // 3 partitions of one producer: partition p holds id % 3 = p.
      const shuffled = sp.readParquet(events).repartition(3, { by: 'id % 3' });
      expect(await perPartition(shuffled.repartition(2))).toEqual([[400, [0, 1]], [200, [2]]]);
      // The shuffle's 1 producer and the 2 SQL tasks; the by-files node adds none.
      expect(sp.lastSummary).toMatchObject({ tasksTotal: 3, tasksRun: 3 });
      expect(await perPartition(shuffled.repartition(4))).toEqual([[200, [0]], [200, [1]], [200, [2]], [0, []]]);
      // By files over by files, and a limit over empty partitions.
      expect(await perPartition(sp.readParquet(events).repartition(3).repartition(2))).toEqual([[400, [0, 1]], [200, [2]]]);
      expect(await shuffled.repartition(6).limit(1000).count()).toBe(600);
      const fromItems = sp.fromItems([{ a: 1n }, { a: 2n }]).repartition(3);
      expect((await fromItems.toArrow()).schema.fields.map((f) => f.name)).toEqual(['a']);
      expect(bag(await fromItems.map('a * 2 AS b').takeAll())).toEqual(bag([{ b: 2n }, { b: 4n }]));
    });
  });

  describe.each([1, 3, 7])('%i partitions', (n) => {
    it('repartition(n) splits the 3 input files into n groups; every row kept, no task runs for it', async () => {
      const df = sp.readParquet(events).repartition(n);
      expect(df.partitions).toBe(n);
      expect(bag(await df.takeAll())).toEqual(bag(await allEvents()));
      expect(sp.lastSummary).toMatchObject({ tasksTotal: 0, tasksRun: 0 });
      // events-f holds the rows with id % 3 = f (200 each): groups of whole files, the larger first.
      const sizes = (await sp.partialSql('SELECT count(*) AS c FROM {0}', df).takeAll()).map((r) => Number(r.c));
      expect(sizes).toEqual({ 1: [600], 3: [200, 200, 200], 7: [200, 200, 200, 0, 0, 0, 0] }[n]);
      expect(sp.lastSummary).toMatchObject({ tasksTotal: n });
    });

    it('repartition(n, { byRows: true }) deals rows round-robin through a shuffle', async () => {
      const df = sp.readParquet(events).repartition(n, { byRows: true });
      expect(bag(await df.takeAll())).toEqual(bag(await allEvents()));
      // Round-robin: partition sizes differ by at most the number of producers (1: a scan).
      const sizes = (await sp.partialSql('SELECT count(*) AS c FROM {0}', df).takeAll()).map((r) => Number(r.c));
      expect(sizes).toHaveLength(n);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      expect(sp.lastSummary).toMatchObject({ tasksTotal: 1 + n });
    });

    it('repartition(n, { hashBy }) puts each key in one partition (skewed, some empty)', async () => {
      const df = sp.readParquet(events).repartition(n, { hashBy: 'k' });
      const perPartition = await sp.partialSql('SELECT k, count(*) AS c FROM {0} GROUP BY k', df).takeAll();
      // Grouping within partitions gives exactly the global groups only if no key is split.
      expect(bag(perPartition)).toEqual(bag(await db.rows(`SELECT k, count(*) AS c FROM read_parquet('${events}') GROUP BY k`)));
      const twoKeys = sp.readParquet(events).repartition(n, { hashBy: ['k', 'name'] });
      expect(bag(await twoKeys.takeAll())).toEqual(bag(await allEvents()));
    });

    it('repartition(n, { by }) uses the value as the partition index', async () => {
      const df = sp.readParquet(events).repartition(n, { by: `k % ${n}` });
      const parts = await sp.partialSql(`SELECT min(k % ${n}) AS lo, max(k % ${n}) AS hi, count(*) AS c FROM {0}`, df).takeAll();
      expect(parts).toHaveLength(n);
      parts.forEach((p, i) => {
        if (Number(p.c) > 0) expect([Number(p.lo), Number(p.hi)]).toEqual([i, i]);
      });
      expect(parts.reduce((a, p) => a + Number(p.c), 0)).toBe(600);
    });

    it('partialSql join of co-partitioned inputs equals the DuckDB join', async () => {
      const a = sp.readParquet(events).repartition(n, { hashBy: 'name' });
      const b = sp.readParquet(`${tmp.dir}/users.parquet`).repartition(n, { hashBy: 'name' });
      const joined = sp.partialSql('SELECT e.id, u.score FROM {0} e JOIN {1} u ON e.name = u.name WHERE e.k > 3', a, b);
      expect(bag(await joined.takeAll())).toEqual(bag(await db.rows(
        `SELECT e.id, u.score FROM read_parquet('${events}') e JOIN read_parquet('${tmp.dir}/users.parquet') u ON e.name = u.name WHERE e.k > 3`)));
    });

    it('filter, map, flatMap with SQL and with functions', async () => {
      const df = sp.readParquet(events).repartition(n, { hashBy: 'k' });
      const want = await db.rows(`SELECT * FROM read_parquet('${events}') WHERE k = 5 OR id < 10`);
      expect(bag(await df.filter('k = 5 OR id < 10').takeAll())).toEqual(bag(want));
      expect(bag(await df.filter((r) => r.k === 5n || (r.id as bigint) < 10n).takeAll())).toEqual(bag(want));

      expect(bag(await df.map('id, v * 2 AS w').takeAll())).toEqual(bag(await db.rows(`SELECT id, v * 2 AS w FROM read_parquet('${events}')`)));
      expect(bag(await df.map((r) => ({ id: r.id, w: (r.v as number) * 2 })).takeAll()))
        .toEqual(bag(await db.rows(`SELECT id, v * 2 AS w FROM read_parquet('${events}')`)));

      expect(bag(await df.flatMap('id, unnest(xs) AS x').takeAll())).toEqual(bag(await db.rows(`SELECT id, unnest(xs) AS x FROM read_parquet('${events}')`)));
      expect(bag(await df.flatMap((r) => (r.xs as bigint[]).map((x) => ({ id: r.id, x }))).takeAll()))
        .toEqual(bag(await db.rows(`SELECT id, unnest(xs) AS x FROM read_parquet('${events}')`)));
    });

    it('mapBatches over Arrow tables', async () => {
      const df = sp.readParquet(events).repartition(n, { hashBy: 'k' }).mapBatches(twiceBatches, { batchRows: 50 });
      expect(bag(await df.takeAll())).toEqual(bag(await db.rows(`SELECT id, id * 2 AS twice FROM read_parquet('${events}')`)));
    });

    it('limit is global; take; partialSort sorts within partitions; randomShuffle keeps rows', async () => {
      const df = sp.readParquet(events).repartition(n, { hashBy: 'k' });
      const limited = await df.limit(25).takeAll();
      expect(limited).toHaveLength(25);
      const all = new Set(bag(await allEvents()));
      for (const r of bag(limited)) expect(all.has(r)).toBe(true);
      expect(await df.limit(1000).count()).toBe(600);
      expect(await df.take(7)).toHaveLength(7);

      const sorted = df.partialSort(['k', 'id DESC']);
      const perPartition = await sp.partialSql('SELECT list(k) AS ks, list(id) AS ids FROM {0}', sorted.map('k, id')).takeAll();
      expect(perPartition.length).toBe(n);
      const rows = await sorted.takeAll();
      expect(bag(rows)).toEqual(bag(await allEvents()));
      if (n === 1) {
        expect(rows.map((r) => r.id)).toEqual((await db.rows(`SELECT id FROM read_parquet('${events}') ORDER BY k, id DESC`)).map((r) => r.id));
      }
      expect(bag(await df.randomShuffle().takeAll())).toEqual(bag(await allEvents()));
    });

    it('writeParquet, count and toArrow', async () => {
      const df = sp.readParquet(events).repartition(n, { hashBy: 'k' }).filter('v > 100');
      const out = `${tmp.dir}/out-${n}`;
      await df.writeParquet(out);
      const want = await db.rows(`SELECT * FROM read_parquet('${events}') WHERE v > 100`);
      expect(bag(await db.rows(`SELECT * FROM read_parquet('${out}/*.parquet')`))).toEqual(bag(want));
      expect(await df.count()).toBe(want.length);
      const table = await df.toArrow();
      expect(table.numRows).toBe(want.length);
      expect(table.schema.fields.map((f) => f.name)).toEqual(['id', 'k', 'name', 'v', 'xs']);
    });
  });
}
