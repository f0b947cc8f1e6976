// SIGKILL in the middle of chunk writes, then reopen: every chunk is the last acknowledged
// version or the one in flight, whole, with a valid checksum; nothing torn, nothing lost.
import { afterEach, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore } from '../../src/index.js';
import { killHard, spawnScript, waitForLine } from '../support/child.js';
import { generationOf } from '../support/pattern.js';
import { tempDir } from '../support/tmp.js';

const CHUNKS = 6;

describe('chunk store crash safety', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));

  for (const killAfterMs of [700, 1500]) {
    it(`leaves old-or-new chunks after SIGKILL at ${killAfterMs} ms`, async () => {
      const { dir, cleanup } = tempDir('crash');
      cleanups.push(cleanup);
      const lastAck = new Map<number, number>();
      const child = spawnScript('crash-writer.ts', [dir, String(CHUNKS)], (line) => {
        const m = line.match(/^ack (\d+) (\d+)$/);
        if (m) lastAck.set(Number(m[1]), Number(m[2]));
      });
      await waitForLine(child, /^ready$/);
      await new Promise((r) => setTimeout(r, killAfterMs));
      await killHard(child);
      const acked = [...lastAck.values()].reduce((a, b) => a + b, 0);
      expect(acked).toBeGreaterThan(CHUNKS); // the writer really was mid-stream

      const store = await ChunkStore.open(dir);
      try {
        expect(readdirSync(join(dir, 'tmp'))).toEqual([]); // unfinished writes were cleared
        for (let index = 0; index < CHUNKS; index++) {
          const acknowledged = lastAck.get(index) ?? 0;
          const meta = await store.stat({ inode: 7n, index }).catch(() => null);
          if (meta === null) {
            expect(acknowledged).toBe(0); // never acknowledged, so absence is allowed
            continue;
          }
          const { data } = await store.read({ inode: 7n, index }, 0, meta.length);
          const generation = generationOf(index, data);
          // Old (last acknowledged) or new (the one in flight), never anything else.
          expect([acknowledged, acknowledged + 1]).toContain(generation);
          expect(meta.length).toBe(data.length);
        }
      } finally {
        store.close();
      }
    });
  }
});
