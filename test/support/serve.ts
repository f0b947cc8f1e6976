// A data server in its own process, so tests can SIGKILL it: `serve.ts <dir>` prints
// "listening <address>" and serves until killed.
import { ChunkStore, DataServer } from '../../src/index.js';

const store = await ChunkStore.open(process.argv[2]!, { syncWrites: false });
const server = await DataServer.start(store, { transport: 'tcp' });
console.log(`listening ${server.address}`);
setInterval(() => {}, 1 << 30);
