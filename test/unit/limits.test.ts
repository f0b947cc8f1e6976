// Nested waits (issue 9 item 8): every timeout is shorter than the retry window or request
// around it, so one stuck step (a paused server) never uses up the whole window. The native
// pairs are static_asserts in native/common/limits.h; these are the TypeScript ones, and the
// numbers both sides share must agree.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clusterLimits, limits, metaLimits, protocolLimits } from '../../src/limits.js';

const header = readFileSync(new URL('../../native/common/limits.h', import.meta.url), 'utf8');
function native(name: string): number {
  const m = header.match(new RegExp(`k${name} = ([^;]+);`));
  if (!m) throw new Error(`k${name} not in limits.h`);
  return Function(`return ${m[1]!.replace(/size_t\{(\d+)\}/g, '$1').replace(/(\d+)u/g, '$1')}`)() as number;
}

/** [inner timeout, outer window, what the inner one waits for inside the outer one] */
const nested: Array<[string, number, string, number]> = [
  ['limits.clientTimeoutMsDefault', limits.clientTimeoutMsDefault, 'clusterLimits.writeRetryMsDefault', clusterLimits.writeRetryMsDefault],
  ['clusterLimits.mgmtdCallTimeoutMsDefault', clusterLimits.mgmtdCallTimeoutMsDefault, 'clusterLimits.writeRetryMsDefault', clusterLimits.writeRetryMsDefault],
  ['clusterLimits.readHedgeDelayMsMax', clusterLimits.readHedgeDelayMsMax, 'limits.clientTimeoutMsDefault', limits.clientTimeoutMsDefault],
  ['clusterLimits.routingWatchMs', clusterLimits.routingWatchMs, 'clusterLimits.readHedgeDelayMsMax', clusterLimits.readHedgeDelayMsMax],
  ['clusterLimits.routingPollMsDefault', clusterLimits.routingPollMsDefault, 'clusterLimits.heartbeatTimeoutMsDefault', clusterLimits.heartbeatTimeoutMsDefault],
  ['clusterLimits.heartbeatIntervalMsDefault', clusterLimits.heartbeatIntervalMsDefault, 'clusterLimits.heartbeatTimeoutMsDefault', clusterLimits.heartbeatTimeoutMsDefault],
  ['clusterLimits.leasePollMsDefault', clusterLimits.leasePollMsDefault, 'clusterLimits.leaseMsDefault', clusterLimits.leaseMsDefault],
  ['metaLimits.sessionHeartbeatMs', metaLimits.sessionHeartbeatMs, 'metaLimits.sessionTimeoutMs', metaLimits.sessionTimeoutMs],
  ['protocolLimits.clientTimeoutMsDefault', protocolLimits.clientTimeoutMsDefault, 'metaLimits.sessionHeartbeatMs', metaLimits.sessionHeartbeatMs],
];

describe('limits', () => {
  for (const [inner, innerMs, outer, outerMs] of nested) {
    it(`${inner} (${innerMs} ms) < ${outer} (${outerMs} ms)`, () => {
      expect(innerMs).toBeLessThan(outerMs);
    });
  }

  it('the TypeScript and native clients agree on request timeouts, windows and hedging', () => {
    expect(limits.clientTimeoutMsDefault).toBe(native('ClientTimeoutMsDefault'));
    expect(clusterLimits.writeRetryMsDefault).toBe(native('WriteRetryMsDefault'));
    expect(clusterLimits.readHedgeMedianFactor).toBe(native('ReadHedgeMedianFactor'));
    expect(clusterLimits.readHedgeDelayMsMin).toBe(native('ReadHedgeDelayMsMin'));
    expect(clusterLimits.readHedgeDelayMsMax).toBe(native('ReadHedgeDelayMsMax'));
    expect(clusterLimits.readHedgeSamplesMax).toBe(native('ReadHedgeSamplesMax'));
    expect(clusterLimits.readHedgeSamplesMin).toBe(native('ReadHedgeSamplesMin'));
    expect(clusterLimits.routingWatchMs).toBe(native('TimerTickMs'));
  });
});
