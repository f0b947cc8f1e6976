/**
 * Refusals (EAUTH, EACCES) are logged, but at most authLimits.refusalLinesPerSecond lines a
 * second per server, so a flood of bad requests cannot flood the log too.
 */
import { authLimits } from '../limits.js';

export function refusalLog(log: (line: string) => void): (line: string) => void {
  let windowStartMs = 0;
  let lines = 0;
  return (line) => {
    const now = Date.now();
    if (now - windowStartMs >= 1000) (windowStartMs = now, lines = 0);
    if (++lines <= authLimits.refusalLinesPerSecond) log(line);
  };
}
