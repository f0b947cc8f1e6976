// The process's ZAP handler (src/auth/zap.ts) lives only while a CURVE server needs it: a process
// whose authenticated servers all stopped exits by itself, and servers started after that are
// authenticated again (the handler binds anew). Nothing else outlives a stop either: no timer
// (mgmtd's lease loop once left one of up to 3.3 s behind) and no socket.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { spawnScript } from '../support/child.js';
import { tempDir } from '../support/tmp.js';

describe('ZAP handler lifetime', () => {
  it('lets a process exit once its authenticated servers stopped, and binds again for new ones', async () => {
    const t = tempDir('zap-life');
    try {
      const lines: string[] = [];
      const child = spawnScript('./embedded-twice.ts', [t.dir], (line) => lines.push(line));
      const started = Date.now();
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const [code, signal] = await exited;
      clearTimeout(timer);
      expect(lines).toEqual(['stopped 1; open: nothing', 'stopped 2; open: nothing']);
      expect(signal).toBeNull(); // not killed: it ended on its own
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(60_000);
    } finally {
      t.cleanup();
    }
  }, 90_000);
});
