/**
 * `millpond console --listen HOST:PORT`: serves the web console (src/console/server.ts) for the
 * cluster the CLI config names, gathering the view with the CLI's admin credentials. The cluster
 * secret (to check visitors' tokens) comes from --secret-file or <dataDir>/keys/cluster.secret.
 * `millpond up` starts one too (startConsoleFor) unless `--console off`.
 */
import { join } from 'node:path';
import { KEYS_DIR, SECRET_FILE, type ClientAuth } from '../auth/credentials.js';
import { loadClusterSecret } from '../auth/keys.js';
import { ClusterViewer } from '../cluster/cluster-view.js';
import { startConsole, type ConsoleServer } from '../console/server.js';
import { consoleLimits } from '../limits.js';
import { cliAuth, type CliConfig } from './config.js';

export const CONSOLE_USAGE = 'console [--listen HOST:PORT] [--secret-file FILE]';

/** Starts a console for the cluster at `mgmtd`/`meta`; close() stops the server and the viewer. */
export async function startConsoleFor(listen: string, mgmtd: string[], meta: string, auth: ClientAuth | undefined, secret: Buffer | undefined): Promise<ConsoleServer> {
  const viewer = new ClusterViewer(mgmtd, meta.split(',').filter(Boolean), auth);
  try {
    const server = await startConsole({ listen, secret, gather: () => viewer.gather() });
    return { url: server.url, close: async () => { await server.close(); viewer.close(); } };
  } catch (err) {
    viewer.close();
    throw err;
  }
}

export async function runConsole(config: CliConfig, flags: Map<string, string>): Promise<void> {
  const secret = loadClusterSecret(flags.get('secret-file') ?? join(config.dataDir, KEYS_DIR, SECRET_FILE));
  const server = await startConsoleFor(flags.get('listen') ?? consoleLimits.embeddedListenDefault, config.mgmtd, config.meta, cliAuth(config), secret);
  console.log(`console ${server.url} (open ${server.url}?token=<admin token> once; API: Authorization: Bearer <admin token>)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
}
