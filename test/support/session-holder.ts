// Opens files for write through a MetaClient and holds the sessions until killed:
// `session-holder.ts <meta endpoint> <heartbeat ms> <path>...`. Prints "open <inode>" per file.
// Its token: MILLPOND_TOKEN_FILE and MILLPOND_SERVER_KEY (never argv).
import { findClientAuth } from '../../src/auth/credentials.js';
import { MetaClient } from '../../src/meta/meta-client.js';

const [endpoint, heartbeatMs, ...paths] = process.argv.slice(2);
const client = new MetaClient(endpoint!, { sessionHeartbeatMs: Number(heartbeatMs), auth: findClientAuth() });
for (const path of paths) {
  const { inode } = await client.open(path, { flags: { create: true, write: true } });
  console.log(`open ${inode.id}`);
}
setInterval(() => {}, 1 << 30); // held until SIGKILL
