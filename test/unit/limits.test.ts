// Nested waits (issue 9 item 8): every timeout is shorter than the retry window or request
// around it, so one stuck step (a paused server) never uses up the whole window. The native
// pairs are static_asserts in native/common/limits.h; these are the TypeScript ones (the numbers
// both sides share are compared in cross-language.test.ts).
import { describe, expect, it } from 'vitest';
import { clusterLimits, limits, metaLimits, protocolLimits } from '../../src/limits.js';


/** [inner timeout, outer window, what the inner one waits for inside the outer one] */
const nested: Array<[string, number, string, number]> = [
  ['limits.clientTimeoutMsDefault', limits.clientTimeoutMsDefault, 'clusterLimits.writeRetryMsDefault', clusterLimits.writeRetryMsDefault],
  ['clusterLimits.mgmtdCallTimeoutMsDefault', clusterLimits.mgmtdCallTimeoutMsDefault, 'clusterLimits.writeRetryMsDefault', clusterLimits.writeRetryMsDefault],
  ['clusterLimits.routingPollMsDefault', clusterLimits.routingPollMsDefault, 'clusterLimits.heartbeatTimeoutMsDefault', clusterLimits.heartbeatTimeoutMsDefault],
  ['clusterLimits.heartbeatIntervalMsDefault', clusterLimits.heartbeatIntervalMsDefault, 'clusterLimits.heartbeatTimeoutMsDefault', clusterLimits.heartbeatTimeoutMsDefault],
  ['clusterLimits.leasePollMsDefault', clusterLimits.leasePollMsDefault, 'clusterLimits.leaseMsDefault', clusterLimits.leaseMsDefault],
  ['metaLimits.sessionHeartbeatMs', metaLimits.sessionHeartbeatMs, 'metaLimits.sessionTimeoutMs', metaLimits.sessionTimeoutMs],
  ['protocolLimits.rpcTimeoutMsDefault', protocolLimits.rpcTimeoutMsDefault, 'metaLimits.sessionHeartbeatMs', metaLimits.sessionHeartbeatMs],
  // A daemon sees a move back onto its target (a routing poll) well within the stray sweep's grace.
  ['clusterLimits.routingPollMsDefault', clusterLimits.routingPollMsDefault, 'clusterLimits.strayChainGraceSecDefault (ms)', clusterLimits.strayChainGraceSecDefault * 1000],
  ['clusterLimits.straySweepIntervalMsDefault', clusterLimits.straySweepIntervalMsDefault, 'clusterLimits.strayChainGraceSecDefault (ms)', clusterLimits.strayChainGraceSecDefault * 1000],
];

describe('limits', () => {
  for (const [inner, innerMs, outer, outerMs] of nested) {
    it(`${inner} (${innerMs} ms) < ${outer} (${outerMs} ms)`, () => {
      expect(innerMs).toBeLessThan(outerMs);
    });
  }
});
