/** Both KV backends behind one opener, so a test body runs against each. */
import { join } from 'node:path';
import type { KvBackend } from '../../../src/kv/kv.js';
import { PostgresKv } from '../../../src/kv/postgres-kv.js';
import { SqliteKv } from '../../../src/kv/sqlite-kv.js';
import { tempDir } from '../../support/tmp.js';
import { createTestDatabase, skipPg } from './pg.js';

export interface OpenedBackend {
  kv: KvBackend;
  /** Another backend on the same store (another server's view of the namespace). */
  reopen: () => Promise<KvBackend>;
  cleanup: () => Promise<void>;
}

export interface BackendCase {
  name: 'sqlite' | 'postgres';
  skip: boolean;
  open: () => Promise<OpenedBackend>;
}

export const backends: BackendCase[] = [
  {
    name: 'sqlite',
    skip: false,
    open: async () => {
      const { dir, cleanup } = tempDir('meta');
      const path = join(dir, 'meta.db');
      const opened: KvBackend[] = [new SqliteKv(path, { synchronous: 'normal' })];
      return {
        kv: opened[0]!,
        reopen: async () => {
          const kv = new SqliteKv(path, { synchronous: 'normal' });
          opened.push(kv);
          return kv;
        },
        cleanup: async () => {
          for (const kv of opened) await kv.close();
          cleanup();
        },
      };
    },
  },
  {
    name: 'postgres',
    skip: skipPg,
    open: async () => {
      const db = await createTestDatabase();
      const opened: KvBackend[] = [await PostgresKv.open({ connectionString: db.url })];
      return {
        kv: opened[0]!,
        reopen: async () => {
          const kv = await PostgresKv.open({ connectionString: db.url });
          opened.push(kv);
          return kv;
        },
        cleanup: async () => {
          for (const kv of opened) await kv.close();
          await db.drop();
        },
      };
    },
  },
];
