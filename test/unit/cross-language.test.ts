// The tables both languages keep (issue 10 item 3): status codes and the limits the TS and native
// clients share. Each side has its own file by design (one limits file per language); this test is
// what keeps them one table.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import * as tsLimits from '../../src/limits.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('status codes', () => {
  const header = read('native/common/status.h');
  const source = read('native/common/status.cc');
  const enumEntries = [...header.matchAll(/^[ \t]*k(\w+) = (\d+),[ \t]*(?:\/\/ (E[A-Z_]+))?/gm)]
    .map((m) => ({ name: m[1]!, value: Number(m[2]), comment: m[3] }));
  const names = [...source.match(/kCodeNames\[\] = \{([^}]*)\}/)![1]!.matchAll(/"([A-Z_]+)"/g)].map((m) => m[1]!);
  // Codes that only TypeScript raises, each with the reason it has no StatusCode.
  const tsOnly: Record<string, string> = {
    ESQL: 'the engine (TS) reports a task SQL error; no native code path produces it',
    ETASK: 'the engine (TS) reports a task that failed on every attempt',
  };

  it('numbers the enum 0..N-1 and names each in kCodeNames, as its comment says', () => {
    expect(enumEntries.map((e) => e.value)).toEqual(enumEntries.map((_, i) => i));
    expect(names).toHaveLength(enumEntries.length);
    for (const e of enumEntries.slice(1)) expect(`${e.name}: ${names[e.value]}`).toBe(`${e.name}: ${e.comment}`);
  });

  it('gives every native code a place in ERROR_CODES', () => {
    expect(names.slice(1).filter((n) => !(ERROR_CODES as readonly string[]).includes(n))).toEqual([]);
  });

  it('gives every ERROR_CODES entry a native code, or a reason it is TS-only', () => {
    expect(ERROR_CODES.filter((c) => !names.includes(c) && !(c in tsOnly))).toEqual([]);
    for (const c of Object.keys(tsOnly)) expect(names).not.toContain(c);
  });
});

describe('limits both languages keep', () => {
  const header = read('native/common/limits.h');
  const exprs = new Map([...header.matchAll(/constexpr [\w:]+ k(\w+) =\s*([^;]+);/g)].map((m) => [m[1]!, m[2]!]));
  const nativeValue = (name: string, depth = 0): number => {
    const expr = exprs.get(name);
    if (expr === undefined || depth > 8) throw new Error(`k${name} not in limits.h`);
    const js = expr
      .replace(/\/\/.*$/gm, '')
      .replace(/(?:size_t|uint64_t|uint32_t|int)\{(\d+)\}/g, '$1')
      .replace(/(\d+)u\b/g, '$1')
      .replace(/(\d+)\s*<<\s*(\d+)/g, '($1 * 2 ** $2)') // JS shifts are 32-bit
      .replace(/\bk(\w+)/g, (_, n: string) => String(nativeValue(n, depth + 1)));
    return Function(`return ${js}`)() as number;
  };
  const tsEntries = Object.entries(tsLimits).flatMap(([group, table]) =>
    Object.entries(table as Record<string, unknown>)
      .filter((e): e is [string, number] => typeof e[1] === 'number')
      .map(([name, value]) => ({ path: `${group}.${name}`, name, value })));
  const pascal = (name: string) => name[0]!.toUpperCase() + name.slice(1);

  // Same meaning, different names: the RPC layer is `protocolLimits` in TS and kRpc*/kMsg* in C++.
  // Any new shared limit should take the same name on both sides instead of a line here.
  const aliases: Array<[string, string]> = [
    ['protocolLimits.version', 'ProtocolVersion'],
    ['protocolLimits.messageBytesMax', 'MsgBytesMax'],
    ['protocolLimits.frameBytesHardMax', 'MsgFrameBytesHardMax'],
    ['protocolLimits.methodNameBytesMax', 'RpcMethodNameBytesMax'],
    ['protocolLimits.socketHighWaterMarkMessages', 'RpcSocketHighWaterMarkMessages'],
    ['metaLimits.pathBytesMax', 'MetaPathBytesMax'],
    ['metaLimits.readdirEntriesMax', 'MetaReaddirEntriesMax'],
    ['metaLimits.sessionHeartbeatMs', 'MetaSessionHeartbeatMsDefault'],
    ['metaLimits.heartbeatSessionsMax', 'MetaHeartbeatSessionsMax'],
    ['clusterLimits.targetsMax', 'RoutingTargetsMax'],
    ['clusterLimits.chainsMax', 'RoutingChainsMax'],
    ['clusterLimits.chainTablesMax', 'RoutingChainTablesMax'],
    ['clusterLimits.chainLengthMax', 'RoutingChainLengthMax'],
  ];

  it('agree on every limit with the same name on both sides', () => {
    const same = tsEntries.filter((e) => exprs.has(pascal(e.name)));
    expect(same.length).toBeGreaterThanOrEqual(20);
    for (const e of same) expect(`${e.path} = ${e.value}`).toBe(`${e.path} = ${nativeValue(pascal(e.name))}`);
  });

  it('agree on the limits that carry other names', () => {
    for (const [path, native] of aliases) {
      const e = tsEntries.find((t) => t.path === path);
      expect(e, path).toBeDefined();
      expect(`${path} = ${e!.value}`).toBe(`${path} = ${nativeValue(native)}`);
    }
  });

  it('give no name two meanings: a name in both files is in one TS group only', () => {
    const counts = new Map<string, string[]>();
    for (const e of tsEntries.filter((t) => exprs.has(pascal(t.name)))) counts.set(e.name, [...(counts.get(e.name) ?? []), e.path]);
    expect([...counts.values()].filter((paths) => paths.length > 1)).toEqual([]);
  });
});
