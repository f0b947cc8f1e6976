/**
 * PostgreSQL for the tests: MILLPOND_PG_URL when set, else the local server on its unix socket
 * (started by scripts/pg-start.sh when it does not answer). Each test file gets its own
 * database, dropped at the end. If PostgreSQL can't be reached the tests fail, with the reason,
 * unless MILLPOND_SKIP_PG=1.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const skipPg = process.env.MILLPOND_SKIP_PG === '1';

const defaultUrl = () => `postgresql://${userInfo().username}@%2Fvar%2Frun%2Fpostgresql/postgres`;

async function canConnect(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

let serverUrl: Promise<string> | undefined;

/** The URL of a reachable server's maintenance database, starting the local one if needed. */
export function pgServerUrl(): Promise<string> {
  serverUrl ??= (async () => {
    const explicit = process.env.MILLPOND_PG_URL;
    const first = explicit ?? defaultUrl();
    const error = await canConnect(first);
    if (error === undefined) return first;
    if (explicit) throw new Error(`PostgreSQL at MILLPOND_PG_URL is unreachable: ${error} (MILLPOND_SKIP_PG=1 skips these tests)`);
    let started: string;
    try {
      const script = fileURLToPath(new URL('../../../scripts/pg-start.sh', import.meta.url));
      started = execFileSync('bash', [script], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
    } catch (err) {
      throw new Error(`PostgreSQL is not running and scripts/pg-start.sh failed: ${(err as Error).message} (MILLPOND_SKIP_PG=1 skips these tests)`);
    }
    const again = await canConnect(started);
    if (again !== undefined) throw new Error(`PostgreSQL started but unreachable at ${started}: ${again}`);
    return started;
  })();
  return serverUrl;
}

/** A fresh database; `drop` removes it (and disconnects whoever still uses it). */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = await pgServerUrl();
  const name = `millpond_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
