// Opens files for write through a MetaClient and holds the sessions until killed:
// `session-holder.ts <meta endpoint> <heartbeat ms> <path>...`. Prints "open <inode>" per file.
import { MetaClient } from '../../src/meta/meta-client.js';

const [endpoint, heartbeatMs, ...paths] = process.argv.slice(2);
const client = new MetaClient(endpoint!, { sessionHeartbeatMs: Number(heartbeatMs) });
for (const path of paths) {
  const { inode } = await client.open(path, { flags: { create: true, write: true } });
  console.log(`open ${inode.id}`);
}
setInterval(() => {}, 1 << 30); // held until SIGKILL
