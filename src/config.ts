import { MuxError } from './errors';
import { MAX_WINDOW } from './protocol/constants';
import { PROXY_MIN_HEADER_LIMIT, PROXY_V2_FIXED_LENGTH } from './codec/proxy-header';

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
  /**
   * Bytes a peer may make this connection hold: unread stream data (at its real cost), the
   * streams it opened and their metas, and answers queued for it. The peer's credit is sized
   * so that a peer that follows the protocol stays under it; past it the connection goes away.
   */
  maxBufferedBytes: number;
  /**
   * Bytes of DATA the peer may send on all streams together before this side grants more,
   * at first (advertised in the handshake). The window grows while the peer keeps using all
   * of it, up to `maxConnectionWindow`, and on a server only while the server has memory.
   */
  connectionWindow: number;
  /** Largest the connection window may grow to, in bytes. At most a quarter of `maxBufferedBytes`. */
  maxConnectionWindow: number;
  /** Work a peer may cause without moving data (resets, refused opens, pings), as a burst. */
  wastedWorkBurst: number;
  /** Work a peer may cause without moving data, sustained, per second; past it the connection goes away. */
  wastedWorkPerSecond: number;
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
  /** Disable Nagle's algorithm on TCP sockets the library opens or accepts, from the connection's first stream on. */
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
  // 64 MiB per connection bounds memory whatever the number of streams or their sizes.
  maxBufferedBytes: 64 * 1024 * 1024,
  // Small at first, as HTTP/2's is: a server promises every new connection this much before
  // it knows what the connection will carry, so the promise to thousands of peers stays
  // bounded. 1 MiB covers a loopback or LAN path; busy connections grow it.
  connectionWindow: 1024 * 1024,
  // A quarter of maxBufferedBytes: unread data may cost up to twice its bytes (a kept view pins
  // its socket read), and the other half holds streams, metas and answers. 16 MiB also covers
  // maxWindow, so one stream alone can use all it may grow to.
  maxConnectionWindow: 16 * 1024 * 1024,
  // nghttp2's answer to "rapid reset" allows 1,000 resets in a burst; opens, resets and pings
  // are a few microseconds each, so 2,000 units cost a few milliseconds of one core.
  wastedWorkBurst: 2000,
  // Far above what a client that cancels, pings or gets refused now and then needs, and far below
  // the ~30,000 open+reset pairs a second that starve everyone else's event loop.
  wastedWorkPerSecond: 1000,
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

/**
 * Merges `options` over {@link DEFAULTS} and checks every value; throws `ERR_INVALID_CONFIG`.
 * Options that set no limit get one shared, frozen result (a client per connection then
 * neither copies nor checks the defaults again, and its HELLO bytes are made once).
 */
export function resolveLimits(options: Partial<SessionLimits> = {}): SessionLimits {
  if (!setsAnyLimit(options)) return (resolvedDefaults ??= Object.freeze(resolveGiven(options)));
  return resolveGiven(options);
}

let resolvedDefaults: SessionLimits | null = null;

function setsAnyLimit(options: Partial<SessionLimits>): boolean {
  for (const key in DEFAULTS) if (options[key as keyof SessionLimits] !== undefined) return true;
  return false;
}

function resolveGiven(options: Partial<SessionLimits>): SessionLimits {
  const limits: SessionLimits = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof SessionLimits)[]) {
    const value = options[key];
    if (value !== undefined) (limits as unknown as Record<string, unknown>)[key] = value;
  }
  // A smaller budget brings the default credit down with it, so the budget alone is enough to set.
  if (options.maxConnectionWindow === undefined && typeof limits.maxBufferedBytes === 'number') {
    limits.maxConnectionWindow = Math.max(
      typeof options.connectionWindow === 'number' ? options.connectionWindow : 0,
      Math.min(DEFAULTS.maxConnectionWindow, Math.floor(limits.maxBufferedBytes / 4)),
    );
  }
  if (options.connectionWindow === undefined && typeof limits.maxConnectionWindow === 'number') {
    limits.connectionWindow = Math.min(DEFAULTS.connectionWindow, limits.maxConnectionWindow);
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
  // 4 bytes carry the smallest meta there is: `null`.
  maxMetaBytes: [4, 16 * 1024 * 1024],
  maxBufferedBytes: [4096, Number.MAX_SAFE_INTEGER],
  connectionWindow: [1024, MAX_WINDOW],
  maxConnectionWindow: [1024, MAX_WINDOW],
  wastedWorkBurst: [1, 0x3fffffff],
  wastedWorkPerSecond: [0, 0x3fffffff],
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
  if (limits.connectionWindow > limits.maxConnectionWindow) {
    throw new MuxError('ERR_INVALID_CONFIG', 'option connectionWindow must be at most maxConnectionWindow');
  }
  if (limits.maxConnectionWindow > limits.maxBufferedBytes / 4) {
    throw new MuxError('ERR_INVALID_CONFIG', 'option maxConnectionWindow must be at most a quarter of maxBufferedBytes');
  }
  if (typeof limits.noDelay !== 'boolean') {
    throw new MuxError('ERR_INVALID_CONFIG', 'option noDelay must be a boolean');
  }
}

/**
 * What the memory account charges for things whose heap cost is not their byte count,
 * measured on Node 20 (x64) and rounded up.
 */
export const MEMORY_COSTS = Object.freeze({
  // A MuxStream (Duplex state, queues, callbacks) the peer opened: ~1.25 KB idle in the bench.
  stream: 1536,
  // One queued piece of received data: a Buffer object and its slot in the queue.
  piece: 128,
  // A received DATA payload smaller than this is copied rather than kept as a view, so it
  // cannot pin the socket read it arrived in.
  copyBelow: 4096,
});

/**
 * Keepalive pings of all connections with one interval are driven by one timer that visits
 * this many slots in turn (fewer for short intervals, so that a slot lasts at least
 * KEEPALIVE_SLOT_MIN_MS): 64 slots spread 10,000 connections' pings over a 30 s interval in
 * bursts of ~160 every ~0.5 s, where one timer per connection fires them in the burst in
 * which the connections were made.
 */
export const KEEPALIVE_SLOTS = 64;
/** Shortest slot of a keepalive wheel, in milliseconds: shorter would be timer overhead for nothing. */
export const KEEPALIVE_SLOT_MIN_MS = 100;
/**
 * Flushes per turn of the event loop, in the whole process, that go out at the end of their
 * tick; later ones wait for the turn's I/O callbacks and go out together. Two let a window
 * update and an answer leave at once, without a writev per socket when a poll reads a
 * thousand forwarded requests.
 */
export const EAGER_FLUSHES_PER_TURN = 2;
/**
 * Largest HELLO payload, in bytes, whose parsed settings are kept for the next connection that
 * sends the same bytes: ours are about 120 bytes; a bigger one is a peer's padding, not worth holding.
 */
export const CACHED_HELLO_MAX_BYTES = 256;

/** Options of a whole server, beyond those of each connection. */
export interface ServerLimits {
  /** Connections past their handshake at once; more are refused with GO_AWAY OVERLOADED. */
  maxConnections: number;
  /** Connections still in their handshake at once; more are refused the same way. */
  maxHandshakes: number;
  /** Bytes all connections' memory accounts may hold together before new connections and streams are refused. */
  maxServerMemory: number;
  /** Largest PROXY protocol header accepted (with `proxyProtocol`), in bytes, TLVs included. */
  maxProxyHeaderBytes: number;
}

/** Server-wide defaults, sized for a server process with about 1 GiB of memory. */
export const SERVER_DEFAULTS: Readonly<ServerLimits> = Object.freeze({
  // 16,384 idle connections cost ~80 MB; above that a server should be split or tuned on purpose.
  maxConnections: 16_384,
  // Each handshake may buffer a 64 KiB HELLO: 1,024 of them hold at most 64 MiB, and a burst of
  // reconnecting clients completes in well under the handshake timeout.
  maxHandshakes: 1024,
  // Half of 1 GiB: garbage not yet collected (a peer's churn), Node itself, code and the
  // application need the rest.
  maxServerMemory: 512 * 1024 * 1024,
  // A v2 header is 16 bytes plus addresses (at most 216) plus the balancer's TLVs (TLS details,
  // unique ids, cloud endpoint ids: tens to hundreds of bytes); 4 KiB takes them all, and is
  // little to hold per handshake. Version 1 is capped at 107 bytes by its spec.
  maxProxyHeaderBytes: 4096,
});

// Largest limit that means anything: the v2 length field is 16 bits.
const MAX_PROXY_HEADER_BYTES = PROXY_V2_FIXED_LENGTH + 0xffff;

/** Merges server `options` over {@link SERVER_DEFAULTS} and checks them; throws `ERR_INVALID_CONFIG`. */
export function resolveServerLimits(options: Partial<ServerLimits> = {}): ServerLimits {
  const limits: ServerLimits = { ...SERVER_DEFAULTS };
  for (const key of Object.keys(SERVER_DEFAULTS) as (keyof ServerLimits)[]) {
    const value = options[key];
    if (value !== undefined) limits[key] = value;
    const checked = limits[key];
    if (typeof checked !== 'number' || !Number.isInteger(checked) || checked < 1) {
      throw new MuxError('ERR_INVALID_CONFIG', `option ${key} must be a positive integer, got ${String(checked)}`);
    }
  }
  // Below this a header the spec allows (AF_UNIX addresses) would be refused.
  const proxyBytes = limits.maxProxyHeaderBytes;
  if (proxyBytes < PROXY_MIN_HEADER_LIMIT || proxyBytes > MAX_PROXY_HEADER_BYTES) {
    throw new MuxError(
      'ERR_INVALID_CONFIG',
      `option maxProxyHeaderBytes must be an integer from ${PROXY_MIN_HEADER_LIMIT} to ${MAX_PROXY_HEADER_BYTES}, got ${proxyBytes}`,
    );
  }
  return limits;
}

/** How a MuxClient with `reconnect` spaces its attempts. */
export interface ReconnectOptions {
  /** Milliseconds before the first attempt. */
  initialDelay: number;
  /** Longest wait between attempts, in milliseconds. */
  maxDelay: number;
  /** Each wait is this many times the previous one, up to `maxDelay`. */
  factor: number;
  /** Each wait is moved by up to this fraction either way, so clients do not return in step. */
  jitter: number;
  /** Attempts after which the client gives up (closes with the last error). */
  maxAttempts: number;
}

/** The delays of `reconnect: true`; each can be set in `reconnect: { ... }`. */
export const RECONNECT_DEFAULTS: Readonly<ReconnectOptions> = Object.freeze({
  // Short enough that a restart of the server is hardly noticed.
  initialDelay: 250,
  // A server that stays down is asked twice a minute, not hammered.
  maxDelay: 30_000,
  factor: 2,
  // Enough spread that a thousand clients of a restarted server do not all return at once.
  jitter: 0.2,
  // Keep trying: the link is what the application wants.
  maxAttempts: Infinity,
});

/** The reconnect options with defaults filled in; throws ERR_INVALID_CONFIG for bad values. */
export function resolveReconnect(options: Partial<ReconnectOptions>): ReconnectOptions {
  const resolved: ReconnectOptions = { ...RECONNECT_DEFAULTS, ...options };
  const check = (name: keyof ReconnectOptions, ok: boolean): void => {
    if (!ok) throw new MuxError('ERR_INVALID_CONFIG', `option reconnect.${name} is invalid: ${String(resolved[name])}`);
  };
  check('initialDelay', Number.isFinite(resolved.initialDelay) && resolved.initialDelay >= 0);
  check('maxDelay', Number.isFinite(resolved.maxDelay) && resolved.maxDelay >= resolved.initialDelay);
  check('factor', Number.isFinite(resolved.factor) && resolved.factor >= 1);
  check('jitter', Number.isFinite(resolved.jitter) && resolved.jitter >= 0 && resolved.jitter < 1);
  check('maxAttempts', resolved.maxAttempts === Infinity || (Number.isInteger(resolved.maxAttempts) && resolved.maxAttempts >= 0));
  return resolved;
}
