import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { MuxError } from './errors';
import { MuxConnection, type ConnectionOptions, type HandshakeHooks } from './session/session';
import { TypedEventEmitter } from './events';
import { resolveLimits, resolveServerLimits, type ServerLimits } from './config';
import { MemoryPool } from './session/memory-account';
import { encodeGoAway } from './codec/encode';
import { MAGIC, WireErrorCode } from './protocol/constants';

/** Options of a {@link MuxServer}: every connection option, plus where to listen. */
export interface MuxServerOptions extends Omit<ConnectionOptions, 'role' | 'hello'>, Partial<ServerLimits> {
  /** Interface to listen on. Default: all interfaces, as with `net.Server`. */
  host?: string;
  /**
   * Listen on a Unix domain socket (a named pipe on Windows) at this path instead of a TCP
   * port; `port` and `host` are then ignored. The socket file is removed when the server closes.
   */
  path?: string;
  /** Pending-connection queue length passed to `listen`. */
  backlog?: number;
  /**
   * Serve over TLS: options for `tls.createServer` (`key`, `cert`, `ca`, `requestCert`, ...).
   * The TLS handshake counts toward `handshakeTimeout`.
   */
  tls?: tls.TlsOptions;
}

/** The events of a {@link MuxServer} and their listeners' arguments. */
export interface MuxServerEvents {
  /** The server listens (see `address()` and `port`). */
  listening: [];
  /** A client finished its handshake (and passed `authenticate`). */
  connection: [connection: MuxConnection];
  /**
   * A client failed its handshake, was refused by `authenticate`, or was turned away
   * (`ERR_OVERLOADED`); its socket is closed.
   */
  clientError: [err: MuxError, socket: net.Socket];
  /** Listening failed (`EADDRINUSE`, `EACCES`, ...): the error of `net.Server`. */
  error: [err: NodeJS.ErrnoException];
  /** The server stopped listening and every connection closed. */
  close: [];
}

/**
 * Listens on a TCP port and runs a muxer connection on every accepted socket.
 *
 * Events ({@link MuxServerEvents}): `listening`; `connection` (con: {@link MuxConnection},
 * after its handshake); `clientError` (err, socket) for a peer that failed the handshake;
 * `error`; `close`.
 */
export class MuxServer extends TypedEventEmitter<MuxServerEvents> implements HandshakeHooks {
  private readonly server: net.Server | tls.Server;
  private readonly options: MuxServerOptions;
  private readonly handshaking = new Set<MuxConnection>();
  private readonly connections = new Set<MuxConnection>();
  private readonly serverLimits: ServerLimits;
  private readonly memory: MemoryPool;
  /** What every connection is made with: one object, so they share one set of resolved limits. */
  private readonly connectionOptions: ConnectionOptions;
  /** TCP sockets still in their TLS handshake, by remote address and port (they count as handshakes too). */
  private readonly tlsPending = new Map<string, net.Socket>();
  private tlsHandshakes = 0;
  private closing = false;
  private closed = false;
  private listenFailed = false;

  /**
   * @param port TCP port; 0 picks a free one (see {@link address}). Ignored with `options.path`.
   * @param options connection limits and hooks, plus `host`, `path`, `backlog` and `tls`.
   * @param onListening called once the server listens.
   */
  constructor(port: number, options?: MuxServerOptions | (() => void), onListening?: () => void) {
    super();
    if (typeof options === 'function') {
      onListening = options;
      options = {};
    }
    this.options = { ...(options ?? {}) };
    const limits = resolveLimits(this.options); // fail fast on a bad option, before listening
    this.serverLimits = resolveServerLimits(this.options);
    this.memory = new MemoryPool(this.serverLimits.maxServerMemory);
    const { host: _host, path: _path, backlog: _backlog, tls: _tls, ...connectionOptions } = this.options;
    this.connectionOptions = {
      ...connectionOptions,
      role: 'server',
      memoryPool: this.memory,
      resolvedLimits: Object.freeze(limits),
    } as ConnectionOptions;
    if (this.options.tls) {
      const server = tls.createServer({ ...this.options.tls, handshakeTimeout: limits.handshakeTimeout });
      // A TLS handshake costs more than ours: it counts against maxHandshakes from the first byte.
      server.on('connection', (socket: net.Socket) => this.onTlsSocket(socket));
      server.on('secureConnection', (socket: tls.TLSSocket) => this.tlsHandshakeDone(socket));
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
        socket.destroy();
        this.emit('clientError', new MuxError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${err.message}`, { cause: err }), socket);
      });
      this.server = server;
    } else {
      this.server = net.createServer((socket) => this.onSocket(socket));
    }
    this.server.on('listening', () => this.emit('listening'));
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.server.listening) this.listenFailed = true;
      this.emit('error', err);
    });
    this.server.on('close', () => {
      this.closed = true;
      this.emit('close');
    });
    if (onListening) this.once('listening', onListening);
    const listenOptions: net.ListenOptions = this.options.path !== undefined ? { path: this.options.path } : { port };
    if (this.options.host !== undefined && this.options.path === undefined) listenOptions.host = this.options.host;
    if (this.options.backlog !== undefined) listenOptions.backlog = this.options.backlog;
    this.server.listen(listenOptions);
  }

  /** Where the server listens, as `net.Server#address()`. */
  address(): AddressInfo | string | null {
    return this.server.address();
  }

  /**
   * The TCP port the server listens on (the one picked when 0 was asked for); 0 before it
   * listens, and for a server on a Unix domain socket.
   */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  /** True while the server accepts connections. */
  get listening(): boolean {
    return this.server.listening;
  }

  /** Connections past their handshake and not yet closed. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Connections still in their handshake (TLS included). */
  get handshakeCount(): number {
    return this.handshaking.size + this.tlsHandshakes;
  }

  /** Bytes all connections' peers make the server hold together (the sum of their memory accounts). */
  get memoryUsed(): number {
    return this.memory.used;
  }

  private onTlsSocket(socket: net.Socket): void {
    if (this.overloaded() !== null) {
      // Nothing can be said in the clear to a TLS client: it sees the connection close.
      socket.destroy();
      return;
    }
    const key = socketKey(socket);
    if (key === null) return;
    this.tlsPending.set(key, socket);
    this.tlsHandshakes++;
    socket.once('close', () => {
      if (this.tlsPending.get(key) !== socket) return;
      this.tlsPending.delete(key);
      this.tlsHandshakes--;
    });
  }

  private tlsHandshakeDone(socket: tls.TLSSocket): void {
    const key = socketKey(socket);
    if (key !== null && this.tlsPending.delete(key)) this.tlsHandshakes--;
    this.onSocket(socket);
  }

  /** Why a new connection would be refused now, or null. */
  private overloaded(): string | null {
    const { maxConnections, maxHandshakes, maxServerMemory } = this.serverLimits;
    if (this.connections.size >= maxConnections) return `the server has its maximum of ${maxConnections} connections`;
    if (this.handshaking.size + this.tlsHandshakes >= maxHandshakes) {
      return `the server has ${maxHandshakes} connections in their handshake`;
    }
    if (this.memory.full) return `the server is out of memory for connections (${maxServerMemory} bytes)`;
    return null;
  }

  private onSocket(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const full = this.overloaded();
    if (full !== null) return this.refuse(socket, full);
    const connection = new MuxConnection(null, this.connectionOptions);
    if (connection.limits.noDelay) socket.setNoDelay(true);
    this.handshaking.add(connection);
    connection.attach(socket, this);
  }

  /**
   * Turns a connection away before anything is allocated for it: the magic and a GO_AWAY
   * OVERLOADED, so the client reports why (and may retry later), then the socket closes.
   */
  private refuse(socket: net.Socket, reason: string): void {
    socket.on('error', () => {});
    socket.end(Buffer.concat([MAGIC, encodeGoAway(WireErrorCode.OVERLOADED, reason)]));
    // A client that never reads cannot keep the socket: the bytes are small, a moment is enough.
    setTimeout(() => socket.destroy(), REFUSED_SOCKET_GRACE_MS).unref();
    this.emit('clientError', new MuxError('ERR_OVERLOADED', `connection refused: ${reason}`), socket);
  }

  /** @internal HandshakeHooks */
  onReady(connection: MuxConnection): void {
    this.handshaking.delete(connection);
    if (this.closing) {
      connection.close();
      return;
    }
    this.connections.add(connection);
    this.emit('connection', connection);
  }

  /** @internal HandshakeHooks: no closure per connection for this. */
  onClose(connection: MuxConnection): void {
    this.handshaking.delete(connection);
    this.connections.delete(connection);
  }

  /** @internal HandshakeHooks */
  onHandshakeFailed(connection: MuxConnection, err: MuxError): void {
    this.handshaking.delete(connection);
    this.emit('clientError', err, connection.transportSocket as net.Socket); // attached before any handshake
  }

  /**
   * Stops accepting, then closes every connection gracefully (open streams may finish,
   * within `closeTimeout`). `callback` runs once everything is closed.
   */
  close(callback?: (err?: Error) => void): this {
    if (callback) {
      if (this.closed) process.nextTick(callback);
      else this.once('close', () => callback());
    }
    if (this.closing) return this;
    this.closing = true;
    if (this.server.listening) this.server.close();
    else if (this.listenFailed) process.nextTick(() => this.markClosed());
    else this.server.once('listening', () => this.server.close());
    for (const connection of this.handshaking) connection.destroy();
    for (const connection of this.connections) connection.close();
    return this;
  }

  /** Stops accepting and cuts every connection at once. */
  destroy(): this {
    this.close();
    for (const connection of [...this.handshaking, ...this.connections]) connection.destroy();
    return this;
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  /** Makes the server not keep the process alive by itself, as `net.Server#unref()`. */
  unref(): this {
    this.server.unref();
    return this;
  }

  /** Undoes {@link unref}: the server keeps the process alive again, as `net.Server#ref()`. */
  ref(): this {
    this.server.ref();
    return this;
  }
}

function socketKey(socket: net.Socket): string | null {
  return socket.remotePort === undefined ? null : `${socket.remoteAddress}:${socket.remotePort}`;
}

// How long a refused socket may take to read its GO_AWAY before it is destroyed.
const REFUSED_SOCKET_GRACE_MS = 1000;

export { MuxError };
