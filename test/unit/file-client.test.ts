// The addon's FileClientHandle under the FileSystem: bad arguments are TypeErrors thrown at the
// call (never a crash in native code), a closed handle refuses I/O with ECLOSED, and a closed
// handle closes again quietly. No bytes move here: the mgmtd address is never dialled.
import { describe, expect, it } from 'vitest';
import { MillpondError } from '../../src/errors.js';
import { addon, type NativeFileInode } from '../../src/native/binding.js';

const inode: NativeFileInode = {
  id: 7n, length: 10, mtimeMs: 1,
  layout: { chunkSizeBytes: 64 * 1024, stripeSize: 1, chainTableId: 1, chainTableVersion: 1, seed: 3 },
};

describe('FileClientHandle', () => {
  it('refuses malformed options, inodes, positions and capabilities with TypeErrors', async () => {
    expect(() => new addon.FileClientHandle({} as never)).toThrow(TypeError);
    expect(() => new addon.FileClientHandle({ mgmtd: [], transport: 'tcp' })).toThrow(/no mgmtd endpoints/);
    expect(() => new addon.FileClientHandle({ mgmtd: ['tcp://127.0.0.1:1'], transport: 'carrier-pigeon' as never })).toThrow();
    const client = new addon.FileClientHandle({ mgmtd: ['tcp://127.0.0.1:1'], transport: 'tcp' });
    try {
      for (const bad of [{ ...inode, id: 7 }, { ...inode, length: -1 }, { ...inode, layout: undefined }, null]) {
        expect(() => client.attach(bad as never, '/f', false)).toThrow(TypeError);
      }
      expect(() => client.attach(inode, '/f', false, Buffer.alloc(5))).toThrow(TypeError); // a capability is 36 bytes
      // A layout no file can have: refused with EPROTO, like a bad layout from meta.
      const err = (() => { try { client.attach({ ...inode, layout: { ...inode.layout, chunkSizeBytes: 3 } }, '/f', false); } catch (e) { return e; } })();
      expect(err).toBeInstanceOf(MillpondError);
      expect((err as MillpondError).code).toBe('EPROTO');
      expect(() => client.installCapability(Buffer.alloc(3))).toThrow(TypeError);

      const h = client.attach(inode, '/f', true);
      expect(() => h.read(-1, Buffer.alloc(1))).toThrow(TypeError);
      expect(() => h.read(0.5, Buffer.alloc(1))).toThrow(TypeError);
      expect(() => h.write(2 ** 60, Buffer.alloc(1))).toThrow(TypeError);
      expect(() => h.readBatch(new Float64Array([0]), new Uint32Array([1, 2]), Buffer.alloc(3))).toThrow(TypeError);
      expect(() => h.readBatch(new Float64Array([0, 1]), new Uint32Array([4, 4]), Buffer.alloc(3))).toThrow(/shorter/);
      await h.close();
      await h.close(); // again: quietly
      const after = await h.read(0, Buffer.alloc(1)).then(() => null, (e: unknown) => e);
      expect(after).toBeInstanceOf(MillpondError);
      expect((after as MillpondError).code).toBe('ECLOSED');
    } finally {
      client.close();
    }
    const attachAfterClose = (() => { try { client.attach(inode, '/f', false); } catch (e) { return e; } })();
    expect(attachAfterClose).toBeInstanceOf(MillpondError);
    expect((attachAfterClose as MillpondError).code).toBe('ECLOSED');
  });
});
