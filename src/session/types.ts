import type { JsonValue, SessionLimits } from '../config';
import type { MuxError } from '../errors';
import type { MuxConnection } from './session';

/** Which end of the connection this is: clients open odd stream ids, servers even ones. */
export type Role = 'client' | 'server';

/** Where a connection is in its life: no transport yet, the HELLO exchange, open for streams, closed. */
export type SessionState = 'idle' | 'handshake' | 'ready' | 'closed';

/** What `authenticate` learns about the connecting client. */
export interface ClientInfo {
  /** The client's address as the server's socket sees it (undefined over a non-TCP duplex). */
  remoteAddress: string | undefined;
  /** The client's port (undefined over a non-TCP duplex). */
  remotePort: number | undefined;
}

/** Options of a connection; every limit defaults to `DEFAULTS` in config.ts. */
export interface ConnectionOptions extends Partial<SessionLimits> {
  /** Which end this is. Default `'client'`. */
  role?: Role;
  /** Client: a JSON value sent in the handshake (e.g. `{ token }`) for the server's `authenticate`. */
  hello?: JsonValue;
  /** Server: decides whether a client may connect; truthy accepts, falsy or a throw rejects. */
  authenticate?: (hello: JsonValue, info: ClientInfo) => unknown;
  /**
   * Decides whether the peer may open a stream: `true`/`undefined` accepts, `false` refuses,
   * a string refuses with that reason, a throw refuses with its message. May be async.
   */
  acceptStream?: (meta: JsonValue, connection: MuxConnection) => unknown;
}

/** Hooks a MuxServer uses to learn about a connection's handshake (not for applications). */
export interface HandshakeHooks {
  /** The connection finished its handshake. */
  onReady(connection: MuxConnection): void;
  /** The handshake failed with `err` (the connection is closing). */
  onHandshakeFailed(connection: MuxConnection, err: MuxError): void;
}

/** Figures from {@link MuxConnection.stats}. */
export interface ConnectionStats {
  /** Streams this side opened that are still open. */
  streamsOpenLocal: number;
  /** Streams the peer opened that are still open (including those waiting for the application). */
  streamsOpenRemote: number;
  /** Streams the peer opened that wait for a `stream` listener. */
  pendingStreams: number;
  /** Bytes received on the transport: frame headers, payloads and the handshake preface. */
  bytesIn: number;
  /** Bytes sent on the transport (or handed to it), counted as {@link bytesIn}. */
  bytesOut: number;
  /** Frames received, of every type (HELLO, DATA, PING, WINDOW_UPDATE, ...). */
  framesIn: number;
  /** Frames sent, of every type. */
  framesOut: number;
  /** Received stream bytes not yet read by the application (the peer's credit bounds them). */
  bufferedIn: number;
  /** Bytes waiting to be written to the transport. */
  bufferedOut: number;
  /**
   * Bytes the peer makes this connection hold: unread data at its real cost, the streams it
   * opened with their metas, and frames queued for it. Never above `memoryBudget` for long:
   * past it the connection goes away with `ERR_BUFFER_LIMIT`.
   */
  memoryUsed: number;
  /** The memory budget: `maxBufferedBytes` of this connection, in bytes. */
  memoryBudget: number;
  /** Last measured ping round trip in milliseconds, or null before the first. */
  lastRtt: number | null;
}
