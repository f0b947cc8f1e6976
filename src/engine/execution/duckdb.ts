/**
 * DuckDB for tasks: an in-memory instance with the task's thread and memory limits and, for a
 * millpond root, the millpond extension loaded. `openTaskDb` makes a fresh instance (the
 * driver's own reads, tasks run in the driver); `openWarmTaskDb` reuses one instance per worker
 * process and settings, with a new connection per task, so a task pays neither an instance
 * start nor an extension load (a worker is a warm slot).
 */
import { DuckDBInstance, type DuckDBConnection, type DuckDBTypeId } from '@duckdb/node-api';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findClientAuth } from '../../auth/credentials.js';
import { MillpondError } from '../../errors.js';
import { loadLibzmq } from '../../native/libzmq.js';
import type { DuckDbSettings, TaskFailure } from './task-spec.js';

export interface TaskDb {
  conn: DuckDBConnection;
  /** Runs one statement; a failure carries the statement. */
  run(sql: string): Promise<unknown[][]>;
  /**
   * The columns `select` would return, bound but not run (a prepared statement: a third of
   * what DESCRIBE costs, which runs a query over the bound plan); a failure as run's.
   */
  columns(select: string): Promise<Array<{ name: string; typeId: DuckDBTypeId }>>;
  close(): void;
}

export class SqlFailure extends Error {
  constructor(message: string, readonly sql: string, readonly deterministic: boolean, readonly code?: string) {
    super(message);
  }

  toFailure(): TaskFailure {
    return { message: this.message, sql: this.sql, deterministic: this.deterministic, ...(this.code ? { code: this.code } : {}) };
  }
}

// Errors that the same SQL over the same input raises again; retrying them only wastes time.
const kDeterministic = /^(Parser|Binder|Catalog|Conversion|Invalid Input|Not implemented|Constraint|Out of Range|Invalid Type|Syntax|Dependency) Error/;

/**
 * Built by npm install in a checkout (scripts/build-duckdb-extension.sh), else the one the
 * package tarball carries (scripts/prebuild.sh); the same paths from src/ and dist/.
 */
const kBuiltExtension = fileURLToPath(new URL('../../../build/duckdb-ext/millpond.duckdb_extension', import.meta.url));
const kPrebuiltExtension = fileURLToPath(new URL(`../../../prebuilds/${process.platform}-${process.arch}/millpond.duckdb_extension`, import.meta.url));
export const kMillpondExtension = existsSync(kBuiltExtension) || !existsSync(kPrebuiltExtension) ? kBuiltExtension : kPrebuiltExtension;

const quoted = (text: string) => `'${text.replace(/'/g, "''")}'`;

async function createInstance(settings: DuckDbSettings): Promise<DuckDBInstance> {
  const options: Record<string, string> = {
    threads: String(settings.threads),
    memory_limit: `${Math.max(1, Math.floor(settings.memoryLimitBytes / (1024 * 1024)))}MB`,
  };
  if (settings.tempDirectory) options.temp_directory = settings.tempDirectory;
  if (settings.millpond) {
    if (!existsSync(kMillpondExtension)) {
      throw new MillpondError('ENOENT', `the DuckDB millpond extension is not built (${kMillpondExtension}): run npm run build:duckdb`);
    }
    options.allow_unsigned_extensions = 'true';
    loadLibzmq(); // the extension's meta client takes libzmq from the process
  }
  const instance = await DuckDBInstance.create(':memory:', options);
  if (settings.millpond) {
    const conn = await instance.connect();
    try {
      await conn.run(`LOAD ${quoted(kMillpondExtension)}`);
      await conn.run(`SET GLOBAL millpond_meta = ${quoted(settings.millpond.meta)}`);
      await conn.run(`SET GLOBAL millpond_mgmtd = ${quoted(settings.millpond.mgmtd)}`);
      // The token (else the extension reads MILLPOND_TOKEN / MILLPOND_TOKEN_FILE from the environment):
      // meta checks it, and the data servers (with a cluster secret) too.
      const auth = findClientAuth({ token: settings.millpond.token, serverKey: settings.millpond.serverKey });
      if (auth) {
        await conn.run(`SET GLOBAL millpond_token = ${quoted(auth.token)}`);
        await conn.run(`SET GLOBAL millpond_server_key = ${quoted(auth.serverKey)}`);
      }
    } finally {
      conn.closeSync();
    }
  }
  return instance;
}

/** A DuckDB error as a SqlFailure carrying `sql`. */
function sqlFailure(e: unknown, sql: string): SqlFailure {
  const message = e instanceof Error ? e.message : String(e);
  return new SqlFailure(message, sql, kDeterministic.test(message));
}

function taskDb(conn: DuckDBConnection, release: () => void): TaskDb {
  return {
    conn,
    async run(sql: string): Promise<unknown[][]> {
      try {
        const reader = await conn.runAndReadAll(sql);
        return reader.getRowsJS();
      } catch (e) {
        throw sqlFailure(e, sql);
      }
    },
    async columns(select: string) {
      let prepared;
      try {
        prepared = await conn.prepare(select);
      } catch (e) {
        throw sqlFailure(e, select);
      }
      try {
        return Array.from({ length: prepared.columnCount }, (_, i) => ({ name: prepared.columnName(i), typeId: prepared.columnTypeId(i) }));
      } finally {
        prepared.destroySync();
      }
    },
    close: release,
  };
}

export async function openTaskDb(settings: DuckDbSettings): Promise<TaskDb> {
  const instance = await createInstance(settings);
  const conn = await instance.connect();
  return taskDb(conn, () => {
    conn.closeSync();
    instance.closeSync();
  });
}

let warm: { key: string; instance: DuckDBInstance } | undefined;

/** A connection to this process's warm instance for `settings` (a new one when they change). */
export async function openWarmTaskDb(settings: DuckDbSettings): Promise<TaskDb> {
  const key = JSON.stringify(settings);
  if (warm?.key !== key) {
    warm?.instance.closeSync();
    warm = undefined;
    warm = { key, instance: await createInstance(settings) };
  }
  const conn = await warm.instance.connect();
  return taskDb(conn, () => conn.closeSync());
}
