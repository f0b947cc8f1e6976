export { pack, unpack } from './codec.js';
export {
  PROTOCOL_VERSION, UNKNOWN_REQUEST_ID, ProtocolError, encodeRequest, decodeRequest, encodeReply, decodeReply, peekRequestId,
  type Request, type Reply, type Params, type WireError,
} from './envelope.js';
export { RpcServer, type Handler, type CallContext } from './rpc-server.js';
export { RpcClient, type RpcClientOptions } from './rpc-client.js';
export { META_METHODS, type MetaMethod } from './meta.js';
