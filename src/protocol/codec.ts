/**
 * The msgpack codec of the control plane (and of the meta service's stored values). Plain
 * msgpack only (no msgpackr records or extensions), so any msgpack library reads it: maps for
 * objects (keys in insertion order), bin for Buffers, nil for null/undefined, and every
 * integer as a msgpack int in its smallest encoding, as C++ msgpack encoders write them.
 * Integers never travel as floats: a number above 2^32 goes out as int64.
 *
 * In TS, 64-bit ids are bigint and other integers are numbers. The wire can't tell them
 * apart, so the schema does: the values of fields named in U64_FIELDS decode as bigint,
 * every other integer as a number (as bigint only beyond 2^53).
 */
import { Packr } from 'msgpackr';

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  mapsAsObjects: true,
  int64AsType: 'auto' as 'number',
  bundleStrings: false,
  encodeUndefinedAsNil: true,
  variableMapSize: true,
});

/** Fields whose integer values are u64 ids (bigint in TS): inode numbers. */
export const U64_FIELDS: ReadonlySet<string> = new Set(['id', 'inode', 'parent', 'inodes']);

const U32_MAX = 0xffffffff;

function toWire(value: unknown): unknown {
  switch (typeof value) {
    case 'bigint':
      return value >= -BigInt(Number.MAX_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? toWire(Number(value)) : value;
    case 'number':
      // msgpackr writes integers beyond 32 bits as float64; make them int64.
      return Number.isInteger(value) && (value > U32_MAX || value < -0x80000000) ? BigInt(value) : value;
    case 'object':
      if (value === null || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
      if (Array.isArray(value)) return value.map(toWire);
      return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, toWire(v)]));
    default:
      return value;
  }
}

function asU64(value: unknown): unknown {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (Array.isArray(value)) return value.map(asU64);
  return value;
}

function fromWire(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(fromWire);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = U64_FIELDS.has(k) ? asU64(fromWire(v)) : fromWire(v);
  return out;
}

export function pack(value: unknown): Buffer {
  return packr.pack(toWire(value));
}

/** Decodes one msgpack value; throws on anything else (including trailing bytes). */
export function unpack(bytes: Buffer): unknown {
  const values = packr.unpackMultiple(bytes) as unknown[] | undefined;
  if (!values || values.length !== 1) throw new Error(`expected one msgpack value, got ${values?.length ?? 0}`);
  return fromWire(values[0]);
}
