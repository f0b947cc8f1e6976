/**
 * The key files of a cluster (design §10), under <dir>/keys (mode 0700):
 *   cluster.secret   the cluster secret S, hex (0600); only daemons read it (--secret-file)
 *   admin.token      a token of uid 0 (0600); the CLI run against the cluster finds it
 * `millpond up` makes them in its data directory; `millpond init --dir DIR` for many hosts.
 * An existing file is kept (a restart keeps its keys and its users).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN_FILE, ClusterAuth, KEYS_DIR, readTokenFile, SECRET_FILE } from './credentials.js';
import { formatToken, loadClusterSecret, mintToken, parseToken, tokenValid, writePrivateFile } from './keys.js';
import { MillpondError } from '../errors.js';

export interface ClusterKeyFiles {
  cluster: ClusterAuth;
  adminToken: string;
  secretFile: string;
  adminTokenFile: string;
}

export function ensureClusterKeys(dir: string): ClusterKeyFiles {
  const secretFile = join(dir, KEYS_DIR, SECRET_FILE);
  const adminTokenFile = join(dir, KEYS_DIR, ADMIN_TOKEN_FILE);
  const cluster = new ClusterAuth(loadClusterSecret(secretFile, true));
  if (!existsSync(adminTokenFile)) writePrivateFile(adminTokenFile, `${formatToken(mintToken(cluster.secret, 0))}\n`);
  const adminToken = readTokenFile(adminTokenFile);
  const parsed = parseToken(adminToken);
  if (parsed.uid !== 0 || !tokenValid(cluster.secret, parsed)) throw new MillpondError('EAUTH', `${adminTokenFile} holds no admin token of the cluster in ${secretFile}`);
  return { cluster, adminToken, secretFile, adminTokenFile };
}
