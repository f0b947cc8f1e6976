// The CLI's progress bar (src/cli/progress.ts): rate over a recent window, ETA from it, nothing
// drawn off a terminal.
import { afterEach, expect, it, vi } from 'vitest';
import { Progress, formatSeconds } from '../../src/cli/progress.js';

afterEach(() => vi.useRealTimers());

function terminal(isTTY = true) {
  const written: string[] = [];
  return { written, out: { isTTY, write: (text: string) => written.push(text) } };
}

it('shows done of total, the rate of the last seconds and the ETA at that rate', () => {
  vi.useFakeTimers({ now: 1_000_000 });
  const t = terminal();
  const p = new Progress('drain node 3', 100, { unit: 'count', unitName: 'replicas', out: t.out });
  p.update(0);
  for (let s = 1; s <= 10; s++) {
    vi.advanceTimersByTime(1_000);
    p.update(s * 4); // 4 replicas a second
  }
  expect(p.rate()).toBeCloseTo(4, 5);
  expect(p.text()).toBe('drain node 3 [############..................]  40% 40/100 replicas 4.00 replicas/s ETA 15s');
  // It slows to 1 a second: the window forgets the fast start within its 5 s.
  for (let s = 1; s <= 10; s++) {
    vi.advanceTimersByTime(1_000);
    p.update(40 + s);
  }
  expect(p.rate()).toBeGreaterThan(0.9);
  expect(p.rate()).toBeLessThan(1.3);
  expect(p.text()).toMatch(/ 50% 50\/100 replicas 1\.\d\d replicas\/s ETA (4[5-9]|5\d)s$/);
  p.finish();
  expect(t.written.every((w, i) => i === t.written.length - 1 ? w === '\n' : w.startsWith('\r\x1b[K'))).toBe(true);
});

it('bytes: sizes and MiB/s; the total may change (a rebalance re-estimates)', () => {
  vi.useFakeTimers({ now: 5_000_000 });
  const t = terminal();
  const p = new Progress('put /x', 64 << 20, { out: t.out });
  p.update(0);
  vi.advanceTimersByTime(2_000);
  p.update(32 << 20);
  expect(p.text()).toBe('put /x [###############...............]  50% 32.0 MiB/64.0 MiB 16.0 MiB/s ETA 2s');
  p.update(32 << 20, 32 << 20);
  expect(p.text()).toMatch(/100% 32\.0 MiB\/32\.0 MiB .* ETA 0s$/);
});

it('draws nothing off a terminal, nor on one below minTotal; no ETA before anything moved', () => {
  const pipe = terminal(false);
  const p = new Progress('get /x', 100 << 20, { out: pipe.out });
  p.add(1 << 20);
  p.finish();
  expect(pipe.written).toEqual([]);
  const small = terminal();
  const q = new Progress('get /y', 1 << 20, { out: small.out, minTotal: 8 << 20 });
  q.add(1 << 20);
  q.finish();
  expect(small.written).toEqual([]);
  expect(new Progress('x', 10, { unit: 'count' }).text()).toMatch(/ETA -$/);
  expect([formatSeconds(5), formatSeconds(185), formatSeconds(7620)]).toEqual(['5s', '3m05s', '2h07m']);
});
