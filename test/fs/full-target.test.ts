// A full target: writes beyond it fail with ENOSPC, nothing written before is lost, the
// cluster keeps serving, and space freed by removing files can be written again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { MillpondError } from '../../src/errors.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { tempDir } from '../support/tmp.js';

const MiB = 1024 * 1024;

describe('a full target', () => {
  const t = tempDir('full');
  let cluster: Embedded;
  let fs: FileSystem;

  beforeAll(async () => {
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 3, syncWrites: false, capacityBytesPerTarget: 24 * MiB,
    });
    fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
  }, 60_000);

  afterAll(async () => {
    fs?.close();
    await cluster?.stop();
    t.cleanup();
  });

  it('refuses writes with ENOSPC and loses nothing', async () => {
    const kept = randomBytes(4 * MiB);
    await fs.writeFile('/kept', kept);
    const error = await fs.writeFile('/too-big', randomBytes(40 * MiB)).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(MillpondError);
    expect((error as MillpondError).code).toBe('ENOSPC');
    expect((error as MillpondError).message).toMatch(/full/);
    expect((await fs.readFile('/kept')).equals(kept)).toBe(true); // earlier data intact, reads go on

    await fs.rm('/too-big', { force: true }); // its chunks go in the background
    const again = randomBytes(8 * MiB);
    const deadlineMs = Date.now() + 20_000;
    for (;;) {
      try {
        await fs.writeFile('/after', again);
        break;
      } catch (e) {
        if (!(e instanceof MillpondError && e.code === 'ENOSPC') || Date.now() > deadlineMs) throw e;
        await new Promise((r) => setTimeout(r, 200)); // the collector has not run yet
      }
    }
    expect((await fs.readFile('/after')).equals(again)).toBe(true);
  }, 60_000);
});
