/**
 * tcp-stream-muxer: many independent duplex streams, each carrying a JSON `meta` object,
 * over one TCP connection (or any duplex byte stream). See README.md and PROTOCOL.md.
 */
export { MuxServer, type MuxServerOptions, type MuxServerEvents } from './server';
export type { ProxyProtocolOptions } from './proxy-protocol';
export { MuxClient, type MuxClientOptions, type OnConnected } from './client';
export {
  MuxConnection,
  type ConnectionOptions,
  type ConnectionStats,
  type ClientInfo,
  type Role,
  type HandshakeHooks,
  type AcceptVerdict,
  type MuxConnectionEvents,
  type ReconnectInfo,
} from './session/session';
export { MuxStream, type StreamStats, type MuxStreamEvents } from './session/stream';
export type { TypedEventEmitter, ListenerOf, ArgumentsOf, UndeclaredListener, BivariantListener, EventMap } from './events';
export { wrap, type WrapOptions } from './wrap';
export { StreamPool } from './session/stream-pool';
export { MuxError, isProtocolError, type MuxErrorCode, type MuxErrorOptions } from './errors';
export { DEFAULTS, SERVER_DEFAULTS, RECONNECT_DEFAULTS, type SessionLimits, type ServerLimits, type ReconnectOptions } from './config';
export type { JsonValue, JsonCompatible, MetaArgument } from './meta';
export { PROTOCOL_VERSION, FrameType, Flag, WireErrorCode } from './protocol/constants';
import * as util from './util/index';
export { util };
