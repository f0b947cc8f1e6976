/**
 * The data server of the network benches (dataplane, randread) as its own process, so the
 * client's event loop and the server's threads do not share a process (as in a deployment;
 * iperf3 also runs its two ends apart). Usage: server-process.ts <storeDir> <transport> <ioThreads>.
 * Prints one JSON line {address}, serves until stdin closes, then prints {stats} and exits.
 */
import { ChunkStore, DataServer, type TransportChoice } from '../src/index.js';

const [storeDir, transport, ioThreads] = process.argv.slice(2);
// Buffered and unsynced: the bench measures the network path, with the chunks hot in cache.
const store = await ChunkStore.open(storeDir, { directIo: false, syncWrites: false });
const server = await DataServer.start(store, {
  host: '127.0.0.1', transport: transport as TransportChoice, ioThreads: Number(ioThreads),
});
console.log(JSON.stringify({ address: server.address }));
process.stdin.resume();
process.stdin.on('end', async () => {
  const stats = server.stats();
  await server.stop();
  store.close();
  console.log(JSON.stringify({ stats }));
  process.exit(0);
});
