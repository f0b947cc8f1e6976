/**
 * The plan rewrites before a job runs, against plain DuckDB's answers. Column pruning through
 * shuffles: a shuffle whose consumers are SQL that names its columns writes those columns only
 * (read back from the shuffle's files in the job directory); queries that may read unnamed
 * columns (a star, a row as a struct, positional references and aliases, NATURAL joins), JS
 * consumers and a shuffle that is itself the result keep every column. SQL over SQL runs as
 * one task per partition (tasks counted), except where fusing would change what runs or how
 * rows are ordered. Real DuckDB, real worker processes.
 */
import { existsSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, type Session } from '../../src/engine/index.js';
import { namesIn } from '../../src/engine/plan/sql-names.js';
import { tempDir } from '../support/tmp.js';
import { bag, plainDuckDb, writeInputs } from './support.js';

const ALL = ['id', 'k', 'name', 'v', 'xs'];

let sp: Session;
let db: Awaited<ReturnType<typeof plainDuckDb>>;
let tmp: ReturnType<typeof tempDir>;
let events: string;
let jobDir: string;

beforeAll(async () => {
  tmp = tempDir('engine-prune');
  await writeInputs(tmp.dir);
  events = `${tmp.dir}/events-*.parquet`;
  db = await plainDuckDb();
  sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/root` }, jobId: 'prune', workers: 2, memoryLimitPerTask: '256MB', progress: false });
  jobDir = `${tmp.dir}/root/prune`;
});

afterAll(async () => {
  await sp?.shutdown();
  db?.close();
  tmp?.cleanup();
});

/** The shuffle directories of the job, by name. */
const shuffleDirs = () => new Set(readdirSync(jobDir).filter((n) => n.startsWith('shuffle-')));

/** The columns of a shuffle's files (every file of it, producers and partitions, agree). */
async function columnsOf(dir: string): Promise<string[]> {
  const files = readdirSync(`${jobDir}/${dir}`).filter((n) => n.endsWith('.parquet'));
  expect(files.length).toBeGreaterThan(0);
  const schemas = new Set<string>();
  for (const f of files) {
    // Top-level columns: the children of the root schema element (a list's own elements are deeper).
    const rows = await db.rows(`SELECT name FROM parquet_schema('${jobDir}/${dir}/${f}') WHERE name IN (${ALL.concat('score').map((c) => `'${c}'`).join(', ')})`);
    schemas.add(JSON.stringify(rows.map((r) => String(r.name))));
  }
  expect(schemas.size).toBe(1);
  return JSON.parse([...schemas][0]!) as string[];
}

/** Runs `run` and returns the columns of each shuffle it computed, in sorted order. */
async function newShuffles(run: () => Promise<unknown>): Promise<string[][]> {
  const before = shuffleDirs();
  await run();
  const added = [...shuffleDirs()].filter((n) => !before.has(n));
  return (await Promise.all(added.map(columnsOf))).sort((a, b) => a.join().localeCompare(b.join()));
}

describe('column pruning through shuffles', () => {
  it('a shuffle read by SQL that names two columns writes those two, and the answer is plain DuckDB\'s', async () => {
    const sql = 'SELECT k, sum(v) AS s, count(*) AS n FROM {0} GROUP BY k';
    let rows: Record<string, unknown>[] = [];
    const shuffles = await newShuffles(async () => {
      rows = await sp.partialSql(sql, sp.readParquet(events).repartition(3, { hashBy: 'k' })).takeAll();
    });
    expect(shuffles).toEqual([['k', 'v']]);
    expect(bag(rows)).toEqual(bag(await db.rows(`SELECT k, sum(v) AS s, count(*) AS n FROM read_parquet('${events}') GROUP BY k`)));
  });

  it('names in WHERE, USING, lambdas and subqueries are kept; case does not matter; count(*) keeps one column', async () => {
    // k appears only in a subquery, xs only under a lambda, NAME (in capitals) only in USING.
    const body = `SELECT e.ID AS id, u.score, list_transform(e.xs, x -> x * 2) AS doubled
      FROM {0} e JOIN {1} u USING (NAME) WHERE EXISTS (SELECT 1 FROM {1} u2 WHERE u2.name = e.name AND e.k >= 1)`;
    let rows: Record<string, unknown>[] = [];
    const shuffles = await newShuffles(async () => {
      const byName = (df: ReturnType<Session['readParquet']>) => df.repartition(4, { hashBy: 'name' });
      rows = await sp.partialSql(body, byName(sp.readParquet(events)), byName(sp.readParquet(`${tmp.dir}/users.parquet`))).takeAll();
    });
    // Both inputs are shuffles read by this SQL alone: users' two columns are both named.
    expect(shuffles).toEqual([['id', 'k', 'name', 'xs'], ['name', 'score']]);
    // Equal names hash to the same partition, so the partition-wise join is the whole join.
    const plain = body.replaceAll('{0}', `read_parquet('${events}')`).replaceAll('{1}', `read_parquet('${tmp.dir}/users.parquet')`);
    expect(rows.length).toBeGreaterThan(0);
    expect(bag(rows)).toEqual(bag(await db.rows(plain)));
    const counted = await newShuffles(async () => {
      expect(await sp.partialSql('SELECT count(*) AS n FROM {0}', sp.readParquet(events).repartition(5, { byRows: true })).count()).toBe(5);
    });
    expect(counted).toEqual([['id']]);
  });

  it('a star, a row as a struct, positional references, column aliases and NATURAL joins keep every column', async () => {
    const cases: Array<[string, number]> = [
      ['SELECT * EXCLUDE (xs) FROM {0} WHERE k = 1', 6],
      ['SELECT e FROM {0} e WHERE e.k = 2', 7],
      ['SELECT #2 AS k2 FROM {0}', 8],
      ['SELECT a FROM {0} AS t(a, b)', 9],
      ['SELECT id FROM {0} NATURAL JOIN (SELECT 1 AS k) one', 10],
    ];
    for (const [sql, n] of cases) {
      let rows: Record<string, unknown>[] = [];
      const shuffles = await newShuffles(async () => {
        rows = await sp.partialSql(sql, sp.readParquet(events).repartition(n, { hashBy: 'k' })).takeAll();
      });
      expect(shuffles, sql).toEqual([ALL]);
      const plain = sql.replace('{0}', `read_parquet('${events}')`);
      expect(bag(rows), sql).toEqual(bag(await db.rows(plain)));
    }
  });

  it('DuckDB\'s parse tree: each construct that may read an unnamed column makes the names unknown', async () => {
    const names = async (sql: string) => namesIn(String((await db.rows(`SELECT json_serialize_sql('${sql.replaceAll("'", "''")}') AS t`))[0]!.t));
    for (const sql of ['SELECT * FROM t', 'SELECT t.* FROM t', 'SELECT COLUMNS(\'a.*\') FROM t', 'FROM t', 'SELECT t FROM t',
      'SELECT x FROM (SELECT a FROM t) x', 'WITH c AS (SELECT a FROM t) SELECT c FROM c', 'SELECT #1 FROM t', 'SELECT a FROM t AS x(a)',
      'SELECT a FROM t NATURAL JOIN u', 'SELECT * FROM (PIVOT t ON k USING sum(v))', 'PIVOT t ON k USING sum(v)', 'SELEC a', 'SELECT 1; SELECT 2',
      // A star in a subquery hides no column only when it passes rows on as they are.
      'SELECT a FROM (SELECT DISTINCT * FROM t)', 'SELECT a FROM (SELECT * FROM t GROUP BY ALL)', 'SELECT a FROM (SELECT * EXCLUDE (b) FROM t)',
      'SELECT c FROM (SELECT * REPLACE (c + 1 AS a) FROM t)', 'SELECT a FROM (SELECT * RENAME (b AS a) FROM t)',
      'SELECT a FROM (SELECT * FROM t UNION ALL SELECT * FROM u)', 'WITH c AS (SELECT * FROM t) SELECT a FROM c',
      'SELECT * FROM (SELECT * FROM t)', 'SELECT s FROM (SELECT * FROM t) s', 'SELECT a FROM t WHERE EXISTS (SELECT * FROM u)']) {
      expect(await names(sql), sql).toBeUndefined();
    }
    const window = 'SELECT A, sum(t.b) FILTER (WHERE c > 0) OVER (PARTITION BY d ORDER BY e) AS s, \'k\' AS lit FROM t JOIN u USING (f) WHERE g IN (SELECT h FROM u)';
    expect(await names(window)).toEqual(new Set(['a', 't', 'b', 'c', 'd', 'e', 'f', 'g', 'h']));
    expect(await names('SELECT list_transform(xs, x -> x + 1) AS y, s.f FROM t')).toEqual(new Set(['xs', 'x', 's', 'f']));
    expect(await names('SELECT a FROM (SELECT * FROM t WHERE b > 0 ORDER BY c LIMIT 9) s')).toEqual(new Set(['a', 'b', 'c']));
  });

  it('a JS consumer, a filter and a shuffle that is the result keep every column', async () => {
    const js = await newShuffles(() => sp.readParquet(events).repartition(11, { hashBy: 'k' }).map((r) => ({ id: r.id })).compute());
    expect(js).toEqual([ALL]);
    const filtered = await newShuffles(() => sp.readParquet(events).repartition(12, { hashBy: 'k' }).filter('k = 3').compute());
    expect(filtered).toEqual([ALL]);
    const itself = await newShuffles(() => sp.readParquet(events).repartition(13, { hashBy: 'k' }).compute());
    expect(itself).toEqual([ALL]);
  });

  it('a shuffle computed whole is reused by a later consumer, and a rerun of a pruned job runs nothing again', async () => {
    const shuffled = sp.readParquet(events).repartition(14, { hashBy: 'k' });
    await shuffled.compute();
    const whole = shuffleDirs();
    const summary = await sp.partialSql('SELECT id FROM {0}', shuffled).compute();
    expect(shuffleDirs()).toEqual(whole);  // no second shuffle: the whole one serves
    expect(summary.tasksRun).toBe(14);     // the consumer's tasks only

    const job = () => sp.partialSql('SELECT name, count(*) AS n FROM {0} GROUP BY name', sp.readParquet(events).repartition(15, { hashBy: 'name' }));
    await job().compute();
    const rerun = await init({ root: { kind: 'local', dir: `${tmp.dir}/root` }, jobId: 'prune', workers: 1, progress: false });
    try {
      const again = await rerun.partialSql('SELECT name, count(*) AS n FROM {0} GROUP BY name', rerun.readParquet(events).repartition(15, { hashBy: 'name' })).compute();
      expect(again.tasksRun).toBe(0);
      expect(again.tasksSkipped).toBeGreaterThan(0);
    } finally {
      await rerun.shutdown();
    }
  });
});

describe('SQL over SQL fused into one task per partition', () => {
  const three = () => sp.readParquet(events).repartition(3);  // by files: no task of its own
  const perPartition = (sql: string) => db.rows(`SELECT * FROM (${sql.replaceAll('{0}', `read_parquet('${events}')`)})`);

  it('filter, map and partialSql run as one wave, with plain DuckDB\'s answer, and a rerun runs nothing', async () => {
    const chain = () => sp.partialSql('SELECT count(*) AS n, sum(w) AS s FROM {0}', three().filter('k > 0').map('id, v * 2 AS w'));
    const df = chain();
    const summary = await df.compute();
    expect(summary.tasksRun).toBe(3);  // not 9: the filter's and the map's partitions are never written
    const rows = await df.takeAll();
    const total = (rs: Record<string, unknown>[]) => rs.reduce((a, r) => ({ n: a.n + Number(r.n), s: a.s + Number(r.s) }), { n: 0, s: 0 });
    expect(total(rows)).toEqual(total(await perPartition('SELECT count(*) AS n, sum(v * 2) AS s FROM {0} WHERE k > 0')));
    // The filter's and the map's own nodes have no directory: only the fused query ran.
    expect(existsSync(`${jobDir}/${df.node.inputs[0]!.id}`)).toBe(false);
    expect((await chain().compute()).tasksRun).toBe(0);
  });

  it('a filter fused into the next step still lets the shuffle under it write only the columns read', async () => {
    let rows: Record<string, unknown>[] = [];
    const shuffles = await newShuffles(async () => {
      const filtered = sp.readParquet(events).repartition(16, { hashBy: 'k' }).filter('id % 2 = 0');
      rows = await sp.partialSql('SELECT k, sum(v) AS s FROM {0} GROUP BY k', filtered).takeAll();
    });
    expect(shuffles).toEqual([['id', 'k', 'v']]);
    expect(bag(rows)).toEqual(bag(await db.rows(`SELECT k, sum(v) AS s FROM read_parquet('${events}') WHERE id % 2 = 0 GROUP BY k`)));
  });

  it('an input read twice, shared, sorted or already computed is not fused', async () => {
    const filtered = three().filter('k > 1');
    const shared = sp.partialSql('SELECT a.id, a.v, b.k FROM {0} a JOIN {1} b USING (id)', filtered.map('id, v'), filtered.map('id, k'));
    expect((await shared.compute()).tasksRun).toBe(12);  // the filter once (two maps read it), each map, the join
    expect(bag(await shared.takeAll())).toEqual(bag(await perPartition('SELECT id, v, k FROM {0} WHERE k > 1')));

    const twice = sp.partialSql('SELECT a.id FROM {0} a JOIN {0} b USING (id)', three().filter('k > 2'));
    expect((await twice.compute()).tasksRun).toBe(6);
    expect(bag(await twice.takeAll())).toEqual(bag(await perPartition('SELECT id FROM {0} WHERE k > 2')));

    const sorted = three().partialSort('v').map('v');
    expect((await sorted.compute()).tasksRun).toBe(6);
    const values = (await sorted.takeAll()).map((r) => Number(r.v));
    // Each partition's rows stay in order (takeAll reads partitions one after another).
    expect(values.filter((v, i) => i > 0 && v < values[i - 1]!).length).toBeLessThan(3);

    const early = three().filter('k > 3');
    expect((await early.compute()).tasksRun).toBe(3);
    expect((await early.map('id').compute()).tasksRun).toBe(3);  // the map alone, over the filter's files
  });
});
