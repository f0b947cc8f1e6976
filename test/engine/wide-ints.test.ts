/**
 * Integers wider than a double through the engine's Parquet files (issue 9): HUGEINT and
 * UHUGEINT (sum(BIGINT) is a HUGEINT) come back exact, as bigints, the way @duckdb/node-api
 * gives them, after a plain task, a shuffle, a filter and a limit. Real DuckDB, real workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init, type Session } from '../../src/engine/index.js';
import { tempDir } from '../support/tmp.js';
import { bag } from './support.js';

const HUGE_MAX = 170141183460469231731687303715884105727n;
const UHUGE_MAX = 340282366920938463463374607431768211455n;
const BIG_MAX = 9223372036854775807n;

let sp: Session;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  tmp = tempDir('engine-wide');
  sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/root` }, workers: 2, memoryLimitPerTask: '256MB', progress: false });
});

afterAll(async () => {
  await sp?.shutdown();
  tmp?.cleanup();
});

describe('wide integers', () => {
  const items = () => sp.fromItems(Array.from({ length: 6 }, (_, i) => ({ k: BigInt(i % 3), v: BIG_MAX - BigInt(i) })));

  it('HUGEINT and UHUGEINT literals and sum(BIGINT) come back exactly, as bigints', async () => {
    const rows = await sp.partialSql(
      `SELECT ${HUGE_MAX}::HUGEINT AS h, ${UHUGE_MAX}::UHUGEINT AS u, sum(v) AS s, -${HUGE_MAX}::HUGEINT - 1 AS low FROM {0}`, items(),
    ).takeAll();
    expect(rows).toEqual([{ h: HUGE_MAX, u: UHUGE_MAX, s: 6n * BIG_MAX - 15n, low: -HUGE_MAX - 1n }]);
  });

  it('fromItems widens bigints past BIGINT to HUGEINT or UHUGEINT, exactly; a map\'s rows need a schema for them', async () => {
    const rows = [{ h: HUGE_MAX, u: 1n }, { h: -HUGE_MAX - 1n, u: UHUGE_MAX }, { h: BIG_MAX + 1n, u: 0n }];
    expect(bag(await sp.fromItems(rows).repartition(2, { byRows: true }).takeAll())).toEqual(bag(rows));
    expect(() => sp.fromItems([{ x: UHUGE_MAX + 1n }])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => sp.fromItems([{ x: -HUGE_MAX - 2n }])).toThrow(/column x: integers from -170141183460469231731687303715884105729 to 0 fit no 128-bit integer type/);
    // A map's partitions type their rows alone, so they never widen (two could disagree): past
    // BIGINT needs a schema, and the job fails at once, not after retries.
    const wide = sp.fromItems([{ k: 1n }, { k: 2n }]).repartition(2, { byRows: true });
    const failed = await wide.map((r: Record<string, unknown>) => ({ k: (r.k as bigint) << 70n })).takeAll().catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/^task failed \(js node [^)]*\): column k: integers from .* do not fit BIGINT; pass a schema/) });
    const typed = await wide.map((r: Record<string, unknown>) => ({ k: (r.k as bigint) << 70n }), { schema: { k: 'HUGEINT' } }).takeAll();
    expect(bag(typed)).toEqual(bag([{ k: 1n << 70n }, { k: 2n << 70n }]));
  });

  it('through a shuffle, a filter and a limit', async () => {
    const sums = sp.partialSql('SELECT k, sum(v) AS s FROM {0} GROUP BY k', items().repartition(2, { hashBy: 'k' }));
    const rows = await sp.partialSql('SELECT * FROM {0}', sums.repartition(3, { hashBy: 'k' })).filter('s > 0').limit(10).takeAll();
    const byKey = Object.fromEntries(rows.map((r) => [String(r.k), r.s]));
    expect(byKey).toEqual({ 0: 2n * BIG_MAX - 3n, 1: 2n * BIG_MAX - 5n, 2: 2n * BIG_MAX - 7n });
  });
});
