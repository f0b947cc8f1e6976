// A writer on a test host (run inside its network namespace with node, against dist/):
//   node minority-writer.mjs META MGMTD DIR
// writes DIR/m-<i> (64 KiB) in a loop and prints "acked <i> <ms since epoch>" after each close
// returned; errors print "error <code>" and the loop goes on. Token: MILLPOND_TOKEN_FILE and
// MILLPOND_SERVER_KEY.
import { connect } from '../../../dist/fs/index.js';

const [meta, mgmtd, dir] = process.argv.slice(2);
const fs = await connect({ meta, mgmtd: mgmtd.split(','), transport: 'tcp' });
await fs.mkdir(dir, { recursive: true });
console.log('ready');
for (let i = 0; ; i++) {
  try {
    await fs.writeFile(`${dir}/m-${i}`, Buffer.alloc(64 * 1024, i & 0xff));
    console.log(`acked ${i} ${Date.now()}`);
  } catch (err) {
    console.log(`error ${err?.code ?? err}`);
  }
}
