import type { Duplex } from 'node:stream';
import { MuxConnection, type ConnectionOptions, type Role } from './session/session';

/** Options of {@link wrap}: every connection option, with the role required. */
export interface WrapOptions extends ConnectionOptions {
  /** Which end this is: one side of the duplex must be `'client'`, the other `'server'`. */
  role: Role;
}

/**
 * Runs a muxer connection over a `Duplex` you already have: a TLS socket, a Unix domain
 * socket, a WebSocket stream (`ws`'s `createWebSocketStream`), an in-memory pair, ...
 * The same as `new MuxConnection(duplex, options)`; one end must be the `'client'`, the
 * other the `'server'`. The connection emits `connect` once the handshake is done, and
 * streams may be opened before that (they wait for it).
 *
 * @example
 * const con = wrap(tlsSocket, { role: 'client' });
 * const stream = await con.StreamPool.createStream({ type: 'hello' });
 */
export function wrap(duplex: Duplex, options: WrapOptions): MuxConnection {
  return new MuxConnection(duplex, options);
}
