/**
 * Test clusters run with authentication on (design §10): a cluster secret and an admin token
 * in a temporary keys directory, as `millpond up` makes them.
 */
import { ensureClusterKeys, type ClusterKeyFiles } from '../../src/auth/cluster-files.js';
import type { ClientAuth } from '../../src/auth/credentials.js';
import { parseToken } from '../../src/auth/keys.js';
import type { KvBackend } from '../../src/kv/kv.js';
import { ensureAdmin } from '../../src/meta/users.js';
import { tempDir } from './tmp.js';

export interface TestKeys extends ClusterKeyFiles {
  /** The admin's credentials, for clients. */
  admin: ClientAuth;
  cleanup(): void;
}

export function testKeys(): TestKeys {
  const tmp = tempDir('keys');
  const files = ensureClusterKeys(tmp.dir);
  return { ...files, admin: { token: files.adminToken, serverKey: files.cluster.server.publicKey }, cleanup: tmp.cleanup };
}

/** Lists the admin token in a meta KV's users table (what `up` and meta --admin-token-file do). */
export function listAdmin(kv: KvBackend, keys: TestKeys): Promise<void> {
  return ensureAdmin(kv, parseToken(keys.adminToken).tokenId);
}
