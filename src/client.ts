import * as net from 'node:net';
import * as tls from 'node:tls';
import { MuxError } from './errors';
import { MuxConnection, type ConnectionOptions } from './session/session';
import { resolveReconnect, type ReconnectOptions } from './config';

/** Options of a {@link MuxClient}: every connection option, plus where to connect. */
export interface MuxClientOptions extends Omit<ConnectionOptions, 'role' | 'authenticate'> {
  /** TCP port of the server (when not given as the first constructor argument). */
  port?: number;
  /** Default `'localhost'`, as with `net.connect`. */
  host?: string;
  /**
   * Connect to a Unix domain socket (a named pipe on Windows) at this path instead of a TCP
   * port; `port` and `host` are then not needed.
   */
  path?: string;
  /**
   * Connect over TLS: options for `tls.connect` (`ca`, `cert`, `key`, `servername`, ...).
   * The server's certificate is verified unless `rejectUnauthorized: false` is given.
   */
  tls?: tls.ConnectionOptions;
  /**
   * Reconnect when the link is lost (the server restarted, the network dropped), and when
   * the first connection fails: `true` for the defaults (RECONNECT_DEFAULTS), or the delays to
   * use. Streams of a lost link error with `ERR_CONNECTION_CLOSED` and are never opened again
   * by themselves; streams opened while the link is down wait for it (up to `openTimeout`).
   * The client emits `reconnecting` ({ attempt, delay, error }) instead of `error` and
   * `close`, and `reconnect` once a new link has finished its handshake. Authentication and
   * version failures are not retried. `close()` or `destroy()` stops it.
   */
  reconnect?: boolean | Partial<ReconnectOptions>;
}

/** Called once the client's handshake is done, with the client as `this`. */
export type OnConnected = (this: MuxClient) => void;

/**
 * Connects to a {@link MuxServer}. The client is itself the connection: it has a
 * `StreamPool`, emits `stream` for streams the server opens, and `connect` once the
 * handshake is done (when `onConnected` is called). A client that cannot connect emits
 * `error` (thrown if nobody listens, as with `net.connect`) and never calls `onConnected`.
 */
export class MuxClient extends MuxConnection {
  private socket: net.Socket | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private readonly where: { port: number; host: string; path: string | undefined; tls: tls.ConnectionOptions | undefined };
  private readonly reconnect: ReconnectOptions | null;
  /** Reconnect attempts since the last link that finished its handshake. */
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** The application called close() or destroy(): no more links. */
  private stopping = false;
  private everConnected = false;

  constructor(port: number, onConnected?: OnConnected);
  constructor(port: number, host: string, onConnected?: OnConnected);
  constructor(port: number, options: MuxClientOptions, onConnected?: OnConnected);
  constructor(port: number, host: string, options: MuxClientOptions, onConnected?: OnConnected);
  constructor(options: MuxClientOptions & ({ port: number } | { path: string }), onConnected?: OnConnected);
  constructor(...args: unknown[]) {
    const { port, host, path, options, onConnected } = parseClientArguments(args);
    super(null, { ...options, role: 'client' });
    if (onConnected) this.once('connect', onConnected);
    this.where = { port, host, path, tls: options.tls };
    this.reconnect = options.reconnect ? resolveReconnect(options.reconnect === true ? {} : options.reconnect) : null;
    this.on('connect', () => {
      if (this.everConnected) this.emit('reconnect');
      this.everConnected = true;
      this.attempt = 0;
    });
    this.dial();
  }

  /** Opens the socket (TLS if asked) and attaches it once it connects. */
  private dial(): void {
    const { port, host, path, tls: tlsOptions } = this.where;
    const where = path !== undefined ? { path } : { port, host };
    const socket = tlsOptions
      ? tls.connect({ servername: net.isIP(host) || path !== undefined ? undefined : host, ...tlsOptions, ...where })
      : net.connect(where);
    this.socket = socket;
    socket.on('error', onEarlySocketError);
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      socket.removeListener('error', onEarlySocketError);
      // A socket of a link given up on (handshake timeout) must not become the next link.
      if (this.socket !== socket) return socket.destroy();
      this.clearConnectTimer();
      if (this.state === 'closed') return;
      this.attach(socket, null, null, true);
    });
    // Connecting (and the TLS handshake) counts toward handshakeTimeout too.
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      if (this.state !== 'idle') return;
      socket.removeListener('error', onEarlySocketError);
      socket.on('error', () => {});
      socket.destroy();
      this.dialFailed(new MuxError('ERR_HANDSHAKE_TIMEOUT', `could not connect within ${this.limits.handshakeTimeout} ms`));
    }, this.limits.handshakeTimeout);
    this.connectTimer.unref();
    (socket as net.Socket & { [kClient]?: MuxClient })[kClient] = this;
  }

  /** Whether another attempt follows a link lost (or never made) because of `err`. */
  private retries(err: MuxError | null): boolean {
    const options = this.reconnect;
    if (!options || this.stopping) return false;
    if (err && PERMANENT.has(err.code)) return false;
    return this.attempt < options.maxAttempts;
  }

  /** Dials again after the backoff of the next attempt. */
  private retry(err: MuxError | null): void {
    const options = this.reconnect!;
    this.attempt++;
    const base = Math.min(options.maxDelay, options.initialDelay * options.factor ** (this.attempt - 1));
    const delay = Math.round(base * (1 - options.jitter + 2 * options.jitter * Math.random()));
    this.emit('reconnecting', { attempt: this.attempt, delay, error: err });
    // One dial at a time: a second would attach a second socket to the same link.
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopping) this.dial();
    }, delay);
  }

  /**
   * The socket could not connect. With `reconnect` the same (not yet started) link dials
   * again, so streams opened meanwhile keep waiting; otherwise the client closes.
   */
  private dialFailed(err: MuxError): void {
    if (this.retries(err)) this.retry(err);
    else this.teardown(err);
  }

  /** @internal An established link is gone: with `reconnect`, a new one is dialled after a backoff. */
  protected override linkLost(err: MuxError | null, byApplication: boolean): boolean {
    if (byApplication || !this.retries(err)) return false;
    this.relink();
    this.retry(err);
    return true;
  }

  /** Gracefully closes the link, and stops reconnecting. */
  override close(callback?: (err?: Error) => void): void {
    this.stopReconnecting();
    super.close(callback);
  }

  /** The client's socket once connected (a `tls.TLSSocket` with the `tls` option); null before. */
  override get transportSocket(): net.Socket | null {
    return super.transportSocket as net.Socket | null;
  }

  /** @internal The socket failed before the handshake could start. */
  failToConnect(err: Error): void {
    this.clearConnectTimer();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const tlsFailure = this.socket instanceof tls.TLSSocket && !CONNECT_ERRORS.has(code);
    this.dialFailed(
      tlsFailure
        ? new MuxError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${err.message}`, { cause: err })
        : new MuxError('ERR_CONNECT_FAILED', `cannot connect: ${err.message}`, { cause: err }),
    );
  }

  private clearConnectTimer(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  private stopReconnecting(): void {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  /** Closes at once, and stops reconnecting. */
  override destroy(err?: Error): void {
    this.stopReconnecting();
    this.clearConnectTimer();
    if (this.socket && this.state === 'idle') {
      this.socket.removeListener('error', onEarlySocketError);
      this.socket.on('error', () => {});
      this.socket.destroy();
    }
    super.destroy(err);
  }

  protected override onClosed(err: MuxError | null, wasHandshaking: boolean): void {
    if (wasHandshaking) {
      // Cannot connect: like net.connect, this error is thrown if nobody listens.
      if (err) this.emit('error', this.asTlsFailure(err));
      return;
    }
    super.onClosed(err, wasHandshaking);
  }

  /**
   * With TLS 1.3 the server checks our certificate after `secureConnect` has fired here: a
   * server that refuses it sends an alert, or just closes, before writing a byte of its own.
   * A TLS connection lost that way failed its TLS handshake, whatever the socket reported.
   */
  private asTlsFailure(err: MuxError): MuxError {
    if (!(this.socket instanceof tls.TLSSocket) || this.stats().bytesIn > 0) return err;
    if (err.code !== 'ERR_CONNECTION_CLOSED' && err.code !== 'ERR_HANDSHAKE_FAILED') return err;
    const reason = err.cause instanceof Error ? err.cause.message : 'the server closed the connection';
    return new MuxError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${reason} (before the server sent anything)`, { cause: err });
  }
}

const kClient = Symbol('tcp-stream-muxer.client');

/** Failures another attempt cannot fix. */
const PERMANENT = new Set(['ERR_AUTH_FAILED', 'ERR_VERSION_MISMATCH', 'ERR_INVALID_CONFIG']);

// Socket errors that mean the TCP connection itself failed (before any TLS handshake).
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EADDRNOTAVAIL',
]);

function onEarlySocketError(this: net.Socket & { [kClient]?: MuxClient }, err: Error): void {
  this[kClient]?.failToConnect(err);
}

function parseClientArguments(args: unknown[]): {
  port: number;
  host: string;
  path: string | undefined;
  options: MuxClientOptions;
  onConnected: OnConnected | undefined;
} {
  let index = 0;
  let options: MuxClientOptions = {};
  let port: unknown;
  let host: unknown;
  if (typeof args[0] === 'object' && args[0] !== null) {
    options = { ...(args[0] as MuxClientOptions) };
    port = options.port;
    host = options.host;
    index = 1;
  } else {
    port = args[0];
    index = 1;
    if (typeof args[index] === 'string') host = args[index++];
    if (typeof args[index] === 'object' && args[index] !== null) {
      options = { ...(args[index++] as MuxClientOptions) };
      if (host === undefined) host = options.host;
    }
  }
  const onConnected = args[index];
  if (onConnected !== undefined && typeof onConnected !== 'function') {
    throw new MuxError('ERR_INVALID_ARGUMENT', 'onConnected must be a function');
  }
  const path = options.path;
  delete options.path;
  if (path !== undefined) {
    if (typeof path !== 'string' || path === '') throw new MuxError('ERR_INVALID_ARGUMENT', 'path must be a non-empty string');
    if (port === undefined) port = 0;
  }
  if (typeof port === 'string' && /^\d+$/.test(port)) port = Number(port);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new MuxError('ERR_INVALID_ARGUMENT', `port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  delete options.port;
  delete options.host;
  return { port, host: typeof host === 'string' ? host : 'localhost', path, options, onConnected: onConnected as OnConnected | undefined };
}
