/**
 * The native control-plane client (native/client/zmq_api.cc) takes libzmq from whatever is
 * already loaded in the process before it falls back to the system's libzmq.so.5. Loading the
 * `zeromq` package here puts its addon in the process: it links libzmq 4.3 with CURVE
 * statically and exports libzmq's C API, so an installed millpond needs no system libzmq, and
 * the process holds one libzmq, the one the TS control plane (src/protocol) uses too.
 * Call before anything native speaks ZeroMQ: the addon (binding.ts) and each DuckDB that loads
 * the millpond extension (engine/execution/duckdb.ts). Idempotent.
 */
import { createRequire } from 'node:module';

let loaded = false;

export function loadLibzmq(): void {
  if (loaded) return;
  createRequire(import.meta.url)('zeromq');
  loaded = true;
}
