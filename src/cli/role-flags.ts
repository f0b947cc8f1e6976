/**
 * The plain flags of the per-role process entry points (src/{cluster,meta,storage}/main.ts):
 * checked numbers (intFlag, which `millpond mgmtd|meta|storage` use too), the KV backend
 * choice, and a run that serves until a signal. A bad flag or a failed start is logged and
 * exits with 2.
 */
import { logger } from '../log.js';
import { serveUntilSignal, type KvChoice, type RunningRole } from './role-services.js';

type Values = Record<string, string | boolean | string[] | undefined>;

/** The integer text of flag --`name` (undefined when absent); a RangeError unless an integer >= min. */
export function intFlag(text: string | undefined, name: string, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`--${name} must be an integer >= ${min}, not ${text}`);
  return n;
}

export function roleFlags(role: string, values: Values) {
  const fail = (message: string): never => {
    logger(role).error(message);
    process.exit(2);
  };
  const str = (name: string) => {
    const v = values[name];
    return typeof v === 'string' ? v : undefined;
  };
  return {
    fail,
    /** --NAME as an integer >= min, or undefined when absent. */
    positiveInt(name: string, min = 1): number | undefined {
      try {
        return intFlag(str(name), name, min);
      } catch (err) {
        return fail((err as Error).message);
      }
    },
    /** --backend sqlite --db FILE [--synchronous full|normal], or --backend postgres --pg-url URL (or MILLPOND_PG_URL). */
    kvChoice(): KvChoice {
      const backend = str('backend') ?? 'sqlite';
      if (backend === 'sqlite') {
        const db = str('db') ?? fail('--db <file> is required with --backend sqlite');
        const synchronous = str('synchronous') ?? 'full';
        if (synchronous !== 'full' && synchronous !== 'normal') fail('--synchronous must be full or normal');
        return { backend, db, synchronous: synchronous as 'full' | 'normal' };
      }
      if (backend === 'postgres') {
        const pgUrl = str('pg-url') ?? process.env.MILLPOND_PG_URL ?? fail('--pg-url <url> (or MILLPOND_PG_URL) is required with --backend postgres');
        return { backend, pgUrl };
      }
      return fail(`unknown backend ${backend}`);
    },
    /** Starts the role, serves until SIGINT/SIGTERM, stops it and exits 0; a failed start exits 2. */
    async run(start: () => Promise<RunningRole>): Promise<void> {
      const running = await start().catch((err: Error & { code?: string }) => fail(`${err.code ?? 'EIO'}: ${err.message}`));
      await serveUntilSignal(running);
      process.exit(0);
    },
  };
}
