/**
 * mgmtd's keys in the KV (beside meta's, which use single upper-case tags): a lower-case 'm',
 * a record tag, then a big-endian u32 id so a record kind is one range scan.
 *   'm' 'v'            -> { version }                 the routing version
 *   'm' 'l'            -> Lease                       who is primary, until when
 *   'm' 'n' nodeId     -> NodeRecord
 *   'm' 't' targetId   -> TargetRecord
 *   'm' 'c' chainId    -> ChainRecord
 *   'm' 'k' tableId    -> ChainTableRecord
 *   'm' 'a'            -> { tokens }                  the client tokens meta last listed (design §10)
 *   'm' 'o'            -> AdminState                  admin operations under way (admin-ops.ts)
 * Values are msgpack (src/protocol/codec.ts).
 */
const tag = (s: string) => Buffer.from(s, 'latin1');

function withId(kind: string, id: number): Buffer {
  const b = Buffer.alloc(6);
  b.write(`m${kind}`, 0, 'latin1');
  b.writeUInt32BE(id, 2);
  return b;
}

export type RecordKind = 'n' | 't' | 'c' | 'k';

export const clusterKeys = {
  version: tag('mv'),
  lease: tag('ml'),
  clientTokens: tag('ma'),
  adminOps: tag('mo'),
  record: withId,
  /** [start, end) of every record of one kind. */
  range: (kind: RecordKind): [Buffer, Buffer] => [tag(`m${kind}`), Buffer.concat([tag(`m${kind}`), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])])],
};
