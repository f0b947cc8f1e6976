// One replica for tests that drive resync against real data servers: a chunk store in a temporary
// directory with a TCP data server over it. Its stop is pushed onto `cleanups` (run in reverse).
import { ChunkStore, DataServer } from '../../src/index.js';
import { tempDir } from './tmp.js';

export async function startReplica(name: string, cleanups: Array<() => Promise<void> | void>): Promise<{ store: ChunkStore; server: DataServer }> {
  const t = tempDir(name);
  const store = await ChunkStore.open(t.dir, { syncWrites: false });
  const server = await DataServer.start(store, { transport: 'tcp' });
  cleanups.push(async () => { await server.stop(); store.close(); t.cleanup(); });
  return { store, server };
}
