import type { SessionLimits } from '../config';
import type { JsonValue } from '../meta';
import type { MuxError } from '../errors';
import type { MuxConnection } from './session';
import type { MuxStream } from './stream';

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

/**
 * What `acceptStream` answers: `true` or nothing accepts the stream, `false` refuses it, a
 * string refuses it with that reason.
 */
export type AcceptVerdict = boolean | string | undefined | void;

/** Options of a connection; every limit defaults to `DEFAULTS` in config.ts. */
export interface ConnectionOptions extends Partial<SessionLimits> {
  /** Which end this is. Default `'client'`. */
  role?: Role;
  /** Client: a JSON value sent in the handshake (e.g. `{ token }`) for the server's `authenticate`. */
  hello?: JsonValue;
  /**
   * Server: decides whether a client may connect, from the client's `hello` (`null` if it sent
   * none): true accepts; false, a rejected promise or a throw refuses with `ERR_AUTH_FAILED`.
   */
  authenticate?: (hello: JsonValue, info: ClientInfo) => boolean | Promise<boolean>;
  /**
   * Decides whether the peer may open a stream, from its meta: see {@link AcceptVerdict}; a
   * throw or a rejected promise refuses with its message. May be async.
   */
  acceptStream?: (meta: JsonValue, connection: MuxConnection) => AcceptVerdict | Promise<AcceptVerdict>;
}

/** The events of a {@link MuxConnection} (and of a `MuxClient`) and their listeners' arguments. */
export interface MuxConnectionEvents {
  /** The handshake is done: streams flow. */
  connect: [];
  /** The peer opened a stream (after `acceptStream`, if any, accepted it). */
  stream: [stream: MuxStream];
  /** The peer is going away: no new streams; `code` is a `WireErrorCode` (0 = normal). */
  goaway: [code: number, reason: string];
  /** The connection failed (only emitted to listeners; see the README's error model). */
  error: [err: MuxError];
  /** The connection is closed; `hadError` says whether it failed. */
  close: [hadError: boolean];
  /** A MuxClient with `reconnect` lost its link (or could not make one) and tries again after `delay` ms. */
  reconnecting: [info: ReconnectInfo];
  /** A MuxClient with `reconnect` has a new link, handshake done (`connect` fires too). */
  reconnect: [];
}

/** What a `reconnecting` event tells. */
export interface ReconnectInfo {
  /** Attempts since the last link that worked, this one included. */
  attempt: number;
  /** Milliseconds until this attempt. */
  delay: number;
  /** Why the last link ended or the last attempt failed (null: it closed cleanly). */
  error: MuxError | null;
}

/** Hooks a MuxServer uses to learn about a connection's handshake (not for applications). */
export interface HandshakeHooks {
  /** The connection finished its handshake. */
  onReady(connection: MuxConnection): void;
  /** The handshake failed with `err` (the connection is closing). */
  onHandshakeFailed(connection: MuxConnection, err: MuxError): void;
  /** The connection closed, after or during its handshake (just before its `close` event). */
  onClose?(connection: MuxConnection): void;
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
