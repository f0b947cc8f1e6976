export * from '../protocol/mgmtd-types.js';
export { MgmtdService, type MgmtdOptions } from './mgmtd-service.js';
export { MgmtdServer } from './mgmtd-server.js';
export { MgmtdClient, type MgmtdClientOptions } from './mgmtd-client.js';
export { RoutingClient, type RoutingClientOptions, type ChainRoute } from './routing-client.js';
export { MGMTD_METHODS, type MgmtdMethod } from '../protocol/mgmtd.js';
