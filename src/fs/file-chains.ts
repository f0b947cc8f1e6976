/**
 * A file's chains from the routing a client holds: its layout's chain table at the version the
 * layout records (tableChainsAt), shuffled by its seed (fileChains). A layout newer than the
 * cached routing (the table grew since it was fetched) refreshes the routing once.
 */
import type { RoutingClient } from '../cluster/routing-client.js';
import type { Routing } from '../protocol/mgmtd-types.js';
import { MillpondError } from '../errors.js';
import type { FileLayout } from '../protocol/meta-types.js';
import { fileChains, tableChainsAt } from './layout.js';

/** The file's chains in `routing`, or undefined when its table or table version is not in it. */
export function fileChainsIn(routing: Routing, layout: FileLayout): number[] | undefined {
  const table = routing.chainTables.find((t) => t.tableId === layout.chainTableId);
  const chains = table && tableChainsAt(table, layout.chainTableVersion);
  if (!chains || chains.length === 0) return undefined;
  return fileChains(chains, layout.stripeSize, layout.seed);
}

/** The file's chains; EIO when its table (at its version) is not in the fresh routing either. */
export async function resolveFileChains(routing: RoutingClient, inode: bigint, layout: FileLayout): Promise<number[]> {
  const chains = fileChainsIn(await routing.routing(), layout) ?? fileChainsIn(await routing.refresh(), layout);
  if (chains) return chains;
  throw new MillpondError('EIO', `chain table ${layout.chainTableId} version ${layout.chainTableVersion} of inode ${inode} does not exist`);
}
