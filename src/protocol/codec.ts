/**
 * The msgpack codec of the control plane. Plain msgpack only (no msgpackr records or
 * extensions), so any msgpack decoder, including the future C++ one, reads it:
 * maps for objects (keys in insertion order), bin for Buffers, int64 for bigint.
 */
import { Packr } from 'msgpackr';

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  mapsAsObjects: true,
  int64AsType: 'bigint',
  bundleStrings: false,
  encodeUndefinedAsNil: true,
  variableMapSize: true,
});

export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

/** Decodes one msgpack value; throws on anything else (including trailing bytes). */
export function unpack(bytes: Buffer): unknown {
  const values = packr.unpackMultiple(bytes) as unknown[] | undefined;
  if (!values || values.length !== 1) throw new Error(`expected one msgpack value, got ${values?.length ?? 0}`);
  return values[0];
}
