/**
 * Readers for the fields of a request's params. Each returns the field in its TS type or
 * throws a ProtocolError (EPROTO) naming the field: a peer that sent the wrong shape gets a
 * clear error, never a crash. Integers arrive as msgpack ints of any width (number or bigint).
 */
import { ProtocolError, type Params } from './envelope.js';

function bad(name: string, what: string): never {
  throw new ProtocolError('EPROTO', `param ${name} must be ${what}`);
}

function present(params: Params, name: string): unknown {
  return Object.hasOwn(params, name) ? params[name] : undefined;
}

export function str(params: Params, name: string): string {
  const v = present(params, name);
  return typeof v === 'string' ? v : bad(name, 'a string');
}

export function optStr(params: Params, name: string): string | undefined {
  const v = present(params, name);
  return v === undefined || v === null ? undefined : str(params, name);
}

export function bool(params: Params, name: string, fallback: boolean): boolean {
  const v = present(params, name);
  if (v === undefined || v === null) return fallback;
  return typeof v === 'boolean' ? v : bad(name, 'a boolean');
}

export function bin(params: Params, name: string): Buffer {
  const v = present(params, name);
  return Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v) : bad(name, 'binary');
}

/** A non-negative safe integer at most `max`. */
export function uint(params: Params, name: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = present(params, name);
  const n = typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max ? n : bad(name, `an integer in [0, ${max}]`);
}

export function optUint(params: Params, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = present(params, name);
  return v === undefined || v === null ? undefined : uint(params, name, max);
}

/** An unsigned 64-bit id (inode numbers) as bigint. */
export function u64(params: Params, name: string): bigint {
  const v = present(params, name);
  const n = typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : v;
  return typeof n === 'bigint' && n >= 0n && n < 1n << 64n ? n : bad(name, 'an unsigned 64-bit integer');
}

export function map(params: Params, name: string): Params {
  const v = present(params, name);
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v) ? (v as Params) : bad(name, 'a map');
}

export function optMap(params: Params, name: string): Params | undefined {
  const v = present(params, name);
  return v === undefined || v === null ? undefined : map(params, name);
}

export function list(params: Params, name: string, lengthMax: number): unknown[] {
  const v = present(params, name);
  if (!Array.isArray(v)) bad(name, 'an array');
  if (v.length > lengthMax) bad(name, `an array of at most ${lengthMax} elements`);
  return v;
}
