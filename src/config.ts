import { MuxError } from './errors';
import { MAX_WINDOW } from './protocol/constants';

/** A JSON value: what `meta` and `hello` may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Tunables of one connection. Every default lives in {@link DEFAULTS}; nowhere else. */
export interface SessionLimits {
  /** Per-stream receive window granted to the peer at open, in bytes. */
  initialWindow: number;
  /** Largest per-stream receive window that auto-tuning may grow to, in bytes. */
  maxWindow: number;
  /** Largest DATA payload this side accepts, in bytes (advertised; the peer splits to fit). */
  maxFrameSize: number;
  /** Bytes a stream buffers for sending before `write()` returns false. */
  streamHighWaterMark: number;
  /** Streams the peer may have open toward this side at once (advertised in the handshake). */
  maxStreams: number;
  /** Inbound streams waiting for the application (no `stream` listener yet) before more are refused. */
  maxPendingStreams: number;
  /** Largest JSON meta accepted in an OPEN frame, in bytes of UTF-8. */
  maxMetaBytes: number;
  /** Bytes of received stream data this connection may hold unread, across all streams. */
  maxBufferedBytes: number;
  /** Time for the peer to complete the handshake (TLS included), in milliseconds. */
  handshakeTimeout: number;
  /** Time for an opened stream to be accepted or refused, in milliseconds (0 = no limit). */
  openTimeout: number;
  /** Interval between keepalive pings when the connection is quiet, in milliseconds (0 = off). */
  keepAliveInterval: number;
  /** Time a keepalive ping may go unanswered before the connection is closed, in milliseconds. */
  keepAliveTimeout: number;
  /** Close the connection after this long with no open stream and no traffic, in milliseconds (0 = off). */
  idleTimeout: number;
  /** Grace period after `close()` for open streams to finish before they are reset, in milliseconds. */
  closeTimeout: number;
  /** Disable Nagle's algorithm on TCP sockets the library opens or accepts. */
  noDelay: boolean;
}

/**
 * Defaults, each with the reason for its value. Client, server and bare connections all read
 * this one object.
 */
export const DEFAULTS: Readonly<SessionLimits> = Object.freeze({
  // 256 KiB covers a loopback or LAN bandwidth-delay product; auto-tuning grows it for WANs.
  initialWindow: 256 * 1024,
  // 16 MiB (~1.3 Gbit/s at 100 ms RTT) is a quarter of maxBufferedBytes: one stream whose reader
  // stalls after its window grew cannot fill the budget and pause the connection's other streams.
  maxWindow: 16 * 1024 * 1024,
  // 64 KiB frames keep one stream from holding the socket for more than ~0.1 ms on loopback.
  maxFrameSize: 64 * 1024,
  // A quarter of the initial window: a writer yields often enough for window updates to be
  // read while its data is in flight, and buffers little per stream.
  streamHighWaterMark: 64 * 1024,
  // Far above "1,000 concurrent streams per side"; memory stays bounded by maxBufferedBytes.
  maxStreams: 16384,
  // An application that does not listen for `stream` cannot make us hold unbounded opens.
  maxPendingStreams: 256,
  // Meta is a small routing object, not a payload channel.
  maxMetaBytes: 64 * 1024,
  // 64 MiB of unread data per connection bounds memory whatever the number of streams.
  maxBufferedBytes: 64 * 1024 * 1024,
  // Well under the 30 s ceiling; a silent peer (slow-loris) holds a socket no longer.
  handshakeTimeout: 10_000,
  // Same order as the handshake: an unanswered open should not hang a caller forever.
  openTimeout: 30_000,
  // Detects a half-open TCP connection within a minute without chatty traffic.
  keepAliveInterval: 30_000,
  // Generous for congested links, short enough to notice a dead peer.
  keepAliveTimeout: 15_000,
  // Off by default: many applications keep a quiet control connection open on purpose.
  idleTimeout: 0,
  // Streams in flight get this long to finish after close() before they are reset.
  closeTimeout: 30_000,
  // The muxer coalesces its own writes; Nagle's delay would only add latency.
  noDelay: true,
});

/** Merges `options` over {@link DEFAULTS} and checks every value; throws `ERR_INVALID_CONFIG`. */
export function resolveLimits(options: Partial<SessionLimits> = {}): SessionLimits {
  const limits: SessionLimits = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof SessionLimits)[]) {
    const value = options[key];
    if (value !== undefined) (limits as unknown as Record<string, unknown>)[key] = value;
  }
  verifyLimits(limits);
  return limits;
}

const RANGES: { [K in keyof SessionLimits]?: [min: number, max: number] } = {
  initialWindow: [1024, MAX_WINDOW],
  maxWindow: [1024, MAX_WINDOW],
  maxFrameSize: [1024, 16 * 1024 * 1024],
  streamHighWaterMark: [1, 0x7fffffff],
  maxStreams: [0, 0x3fffffff],
  maxPendingStreams: [0, 0x3fffffff],
  maxMetaBytes: [2, 16 * 1024 * 1024],
  maxBufferedBytes: [1024, Number.MAX_SAFE_INTEGER],
  handshakeTimeout: [1, 0x7fffffff],
  openTimeout: [0, 0x7fffffff],
  keepAliveInterval: [0, 0x7fffffff],
  keepAliveTimeout: [1, 0x7fffffff],
  idleTimeout: [0, 0x7fffffff],
  closeTimeout: [0, 0x7fffffff],
};

/** Throws a `MuxError` with code `ERR_INVALID_CONFIG` naming the first bad value. */
export function verifyLimits(limits: SessionLimits): void {
  for (const [key, [min, max]] of Object.entries(RANGES) as [keyof SessionLimits, [number, number]][]) {
    const value = limits[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new MuxError('ERR_INVALID_CONFIG', `option ${key} must be an integer from ${min} to ${max}, got ${String(value)}`);
    }
  }
  if (limits.maxWindow < limits.initialWindow) {
    throw new MuxError('ERR_INVALID_CONFIG', 'option maxWindow must be at least initialWindow');
  }
  if (typeof limits.noDelay !== 'boolean') {
    throw new MuxError('ERR_INVALID_CONFIG', 'option noDelay must be a boolean');
  }
}
