/**
 * tcp-stream-muxer: many independent duplex streams, each carrying a JSON `meta` object,
 * over one TCP connection (or any duplex byte stream). See README.md and PROTOCOL.md.
 */
export { MuxServer, type MuxServerOptions } from './server';
export { MuxClient, type MuxClientOptions, type OnConnected } from './client';
export {
  MuxConnection,
  type ConnectionOptions,
  type ConnectionStats,
  type ClientInfo,
  type Role,
  type HandshakeHooks,
} from './session/session';
export { MuxStream, type StreamStats } from './session/stream';
export { wrap, type WrapOptions } from './wrap';
export { StreamPool } from './session/stream-pool';
export { MuxError, isProtocolError, type MuxErrorCode, type MuxErrorOptions } from './errors';
export { DEFAULTS, SERVER_DEFAULTS, type SessionLimits, type ServerLimits, type JsonValue } from './config';
export { PROTOCOL_VERSION, FrameType, Flag, WireErrorCode } from './protocol/constants';
import * as util from './util/index';
export { util };
