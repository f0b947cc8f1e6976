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
    case 'object': {
      if (value === null || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
      if (Array.isArray(value)) return value.map(toWire);
      // A plain loop, not entries/filter/map: this runs for every field of every message.
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(value)) {
        const v = (value as Record<string, unknown>)[k];
        if (v !== undefined) out[k] = toWire(v);
      }
      return out;
    }
    default:
      return value;
  }
}

function asU64(value: unknown): unknown {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (Array.isArray(value)) return value.map(asU64);
  return value;
}

/** Converts in place: the decoder made `value` and no one else holds it. */
function fromWire(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value) || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = fromWire(value[i]);
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record)) {
    const v = record[k];
    if (typeof v === 'object' && v !== null) record[k] = U64_FIELDS.has(k) ? asU64(fromWire(v)) : fromWire(v);
    else if (typeof v === 'number' && U64_FIELDS.has(k)) record[k] = asU64(v);
  }
  return record;
}

export function pack(value: unknown): Buffer {
  return packr.pack(toWire(value));
}

/** Decodes one msgpack value; throws on anything else (msgpackr rejects trailing bytes). */
export function unpack(bytes: Buffer): unknown {
  if (bytes.length === 0) throw new Error('expected one msgpack value, got 0 bytes');
  return fromWire(packr.unpack(bytes));
}
