// Child of test/security/zap-lifetime.test.ts: starts an authenticated embedded cluster, writes
// and reads a file through it, stops it, and does all of that once more in the same process
// (the ZAP handler binds again). Prints "stopped N; open: ..." after each stop, naming what still
// keeps the event loop alive but stdio (a timer, a socket), and then returns: the process must
// exit by itself, with nothing left open.
import { startEmbedded } from '../../src/cli/embedded.js';
import { connect } from '../../src/fs/index.js';

const dir = process.argv[2]!;
for (let round = 1; round <= 2; round++) {
  const cluster = await startEmbedded({
    dataDir: `${dir}/cluster-${round}`, mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0', host: '127.0.0.1',
    transport: 'tcp', chainCount: 3, syncWrites: false, metricsListen: 'off',
  });
  const fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
  await fs.writeFile('/f', Buffer.from(`round ${round}`));
  if ((await fs.readFile('/f')).toString() !== `round ${round}`) throw new Error('read back different bytes');
  fs.close();
  await cluster.stop();
  await new Promise((resolve) => setImmediate(resolve));
  const open = process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap');
  console.log(`stopped ${round}; open: ${open.join(', ') || 'nothing'}`);
}
