/**
 * The data server of the network benches (dataplane, randread) as its own process, so the
 * client's event loop and the server's threads do not share a process (as in a deployment;
 * iperf3 also runs its two ends apart). Usage: server-process.ts <storeDir> <transport> <ioThreads>;
 * with MILLPOND_BENCH_SECRET (64 hex digits, in the environment: never in argv) the server
 * authenticates connections and checks capabilities; with MILLPOND_BENCH_ENCRYPT=1 too, it
 * encrypts every TCP connection (encryptData). Its target is the head and tail of chain 1
 * (version 1), so clients write with chain writes, as they must to a server with a secret.
 * Prints one JSON line {address}, serves until stdin closes, then prints {stats} and exits.
 */
import { ChunkStore, DataServer, type TransportChoice } from '../src/index.js';

const [storeDir, transport, ioThreads] = process.argv.slice(2);
// Buffered and unsynced: the bench measures the network path, with the chunks hot in cache.
const store = await ChunkStore.open(storeDir, { directIo: false, syncWrites: false });
const secretHex = process.env.MILLPOND_BENCH_SECRET;
const server = await DataServer.start(store, {
  host: '127.0.0.1', transport: transport as TransportChoice, ioThreads: Number(ioThreads),
  ...(secretHex ? { clusterSecret: Buffer.from(secretHex, 'hex') } : {}),
  encryptData: process.env.MILLPOND_BENCH_ENCRYPT === '1',
});
server.setChain(1, { chainVersion: 1, head: true });
console.log(JSON.stringify({ address: server.address }));
process.stdin.resume();
process.stdin.on('end', async () => {
  const stats = server.stats();
  await server.stop();
  store.close();
  console.log(JSON.stringify({ stats }));
  process.exit(0);
});
