/** A meta server as a real process (src/meta/main.ts), so tests can SIGKILL it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitForLine } from '../../support/child.js';

const main = fileURLToPath(new URL('../../../src/meta/main.ts', import.meta.url));

export async function startMetaProcess(args: string[]): Promise<{ child: ChildProcess; endpoint: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const m = await waitForLine(child, /^listening (\S+)$/, 30_000);
  return { child, endpoint: m[1]! };
}
