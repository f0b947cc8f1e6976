// Two holes of issue 9, against a real cluster (mgmtd and three storage daemons as processes,
// a meta server on SQLite with storage attached, as `millpond meta --mgmtd` runs it):
//  - a shrink cuts the file's chunks when it commits: growing the file again (truncate up,
//    a write past the end, writeFile over a longer file then a write past its end) reads
//    zeros in the gap, never the old bytes (POSIX);
//  - a writer whose session the meta service ended (it was cut off from meta past the session
//    timeout) gets EBADF on its next write and on close, instead of acknowledgements for
//    bytes that will never be published.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { RoutingClient } from '../../src/cluster/routing-client.js';
import { MillpondError } from '../../src/errors.js';
import { FileClient } from '../../src/fs/file-data.js';
import { FileSystem } from '../../src/fs/file-system.js';
import { MetaServer, MetaService, SqliteKv } from '../../src/meta/index.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { trimChunks } from '../../src/storage/garbage.js';
import { Cluster } from '../cluster/support/cluster.js';
import { sleep } from '../cluster/support/processes.js';
import { tempDir } from '../support/tmp.js';

const CHUNK = 64 * 1024; // the smallest chunk: files of several chunks stay small
const SESSION_TIMEOUT_MS = 1_500;

describe('faults: shrinks and ended sessions', () => {
  const t = tempDir('fs-faults');
  let cluster: Cluster;
  let service: MetaService;
  let server: MetaServer;
  let storage: RoutingClient;
  const clients: FileSystem[] = [];

  /** A FileSystem whose meta client heartbeats every 200 ms (well inside the session timeout). */
  async function client(): Promise<FileSystem> {
    const meta = new MetaClient(server.endpoint, { sessionHeartbeatMs: 200 });
    const routing = new RoutingClient({ mgmtd: cluster.mgmtdEndpoints, cluster: cluster.keys.cluster });
    await routing.refresh();
    const files = new FileClient({ mgmtd: cluster.mgmtdEndpoints, cluster: cluster.keys.cluster, credentials: cluster.dataCredentials, transport: 'tcp' });
    const fs = new FileSystem(meta, meta.as({ uid: 0, gid: 0 }), routing, files);
    clients.push(fs);
    return fs;
  }

  beforeAll(async () => {
    cluster = await Cluster.start(1);
    storage = new RoutingClient({ mgmtd: cluster.mgmtdEndpoints, cluster: cluster.keys.cluster });
    service = await MetaService.open(new SqliteKv(join(t.dir, 'meta.db')), {
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
      clusterSecret: cluster.keys.cluster.secret,
      storage: { trim: (inode, layout, length) => trimChunks(storage, inode, layout, length) },
    });
    server = await MetaServer.start(service, 'tcp://127.0.0.1:0');
    const fs = await client();
    await fs.mkdir('/d');
    await fs.setLayout('/d', { chunkSizeBytes: CHUNK, stripeSize: 4 });
  }, 60_000);

  afterAll(async () => {
    for (const fs of clients) fs.close();
    storage?.close();
    await server?.close();
    service?.stop();
    await cluster?.stop();
    t.cleanup();
  });

  /** Expects `back` to be `data` up to `keep`, then zeros to `back.length`. */
  function expectCut(back: Buffer, data: Buffer, keep: number, what: string) {
    expect(back.subarray(0, keep).equals(data.subarray(0, keep)), `${what}: the kept bytes`).toBe(true);
    const firstNonZero = back.subarray(keep).findIndex((b) => b !== 0);
    expect(firstNonZero, `${what}: the first old byte after the cut (-1: all zeros)`).toBe(-1);
  }

  it('truncate down then up: the gap reads as zeros', async () => {
    const fs = clients[0]!;
    const data = randomBytes(3 * CHUNK + 500); // 4 chunks, the last partial
    await fs.writeFile('/d/up', data);
    await fs.truncate('/d/up', 1000);
    expect((await fs.stat('/d/up')).size).toBe(1000);
    await fs.truncate('/d/up', data.length);
    const back = await fs.readFile('/d/up');
    expect(back.length).toBe(data.length);
    expectCut(back, data, 1000, 'truncate up');
  });

  it('truncate down then a write past the end: the gap reads as zeros', async () => {
    const fs = clients[0]!;
    const data = randomBytes(3 * CHUNK);
    await fs.writeFile('/d/past', data);
    await fs.truncate('/d/past', CHUNK + 10); // cuts inside chunk 1, removes 2
    const h = await fs.open('/d/past', 'r+');
    await h.write(Buffer.from('end'), 3 * CHUNK - 3);
    await h.close();
    const back = await fs.readFile('/d/past');
    expect(back.length).toBe(3 * CHUNK);
    expectCut(back.subarray(0, 3 * CHUNK - 3), data, CHUNK + 10, 'write past the end');
    expect(back.subarray(3 * CHUNK - 3).toString()).toBe('end');
  });

  it('writeFile over a longer file, then a write past its end: zeros between', async () => {
    const fs = clients[0]!;
    const data = randomBytes(2 * CHUNK + 77);
    await fs.writeFile('/d/over', data);
    await fs.writeFile('/d/over', 'short');
    expect(await fs.readFile('/d/over', 'utf8')).toBe('short');
    const h = await fs.open('/d/over', 'r+');
    await h.write(Buffer.from('!'), 2 * CHUNK + 76);
    await h.close();
    const back = await fs.readFile('/d/over');
    expect(back.length).toBe(2 * CHUNK + 77);
    expect(back.subarray(0, 5).toString()).toBe('short');
    expect(back.subarray(5, 2 * CHUNK + 76).findIndex((b) => b !== 0), 'first old byte (-1: none)').toBe(-1);
  });

  it('a writer cut off from meta past the session timeout gets EBADF on its next write and on close', async () => {
    const fs = await client();
    const h = await fs.open('/d/quiet', 'w');
    await h.write(Buffer.from('before'));
    await sleep(3 * SESSION_TIMEOUT_MS); // still connected: its heartbeats keep the session
    await h.write(Buffer.from(' still'));
    // A write stream (several writes in flight) opened before the cut.
    const stream = fs.createWriteStream('/d/quiet-stream');
    await once(stream, 'ready');
    stream.write(Buffer.alloc(3 * CHUNK, 1));

    // Cut the client off: the server goes, the service stays and ends quiet clients' sessions.
    const endpoint = server.endpoint;
    await server.close();
    await sleep(3 * SESSION_TIMEOUT_MS);
    server = await MetaServer.start(service, endpoint);

    // A file opened now is fine, and confirms only its own session, not the ended one.
    const other = await fs.open('/d/quiet-2', 'w');
    const write = await h.write(Buffer.from(' after')).then(() => 'acknowledged', (e: unknown) => e);
    expect(write).toBeInstanceOf(MillpondError);
    expect((write as MillpondError).code).toBe('EBADF');
    const close = await h.close().then(() => 'closed', (e: unknown) => e);
    expect(close).toBeInstanceOf(MillpondError);
    expect((close as MillpondError).code).toBe('EBADF');
    await other.write(Buffer.from('fine'));
    await other.close();
    expect(await fs.readFile('/d/quiet-2', 'utf8')).toBe('fine');
    expect((await fs.stat('/d/quiet')).size).toBe(0); // nothing was published: the session ended before close
    // The stream errors instead of finishing: its writes after the cut were never acknowledged.
    const ended = await new Promise<unknown>((resolve) => {
      stream.once('finish', () => resolve('finished'));
      stream.once('error', resolve);
      for (let i = 0; i < 4; i++) stream.write(Buffer.alloc(CHUNK, 2));
      stream.end();
    });
    expect(ended).toBeInstanceOf(MillpondError);
    expect((ended as MillpondError).code).toBe('EBADF');
    expect((await fs.stat('/d/quiet-stream')).size).toBe(0);
  }, 60_000);
});
