import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { MuxError } from './errors';
import { MuxConnection, type ConnectionOptions, type HandshakeHooks } from './session/session';
import { resolveLimits } from './config';

/** Options of a {@link MuxServer}: every connection option, plus where to listen. */
export interface MuxServerOptions extends Omit<ConnectionOptions, 'role' | 'hello'> {
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

/**
 * Listens on a TCP port and runs a muxer connection on every accepted socket.
 *
 * Events: `listening`; `connection` (con: {@link MuxConnection}, after its handshake);
 * `clientError` (err, socket) for a peer that failed the handshake; `error`; `close`.
 */
export class MuxServer extends EventEmitter implements HandshakeHooks {
  private readonly server: net.Server | tls.Server;
  private readonly options: MuxServerOptions;
  private readonly handshaking = new Set<MuxConnection>();
  private readonly connections = new Set<MuxConnection>();
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
    if (this.options.tls) {
      const server = tls.createServer({ ...this.options.tls, handshakeTimeout: limits.handshakeTimeout });
      server.on('secureConnection', (socket: tls.TLSSocket) => this.onSocket(socket));
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
        socket.destroy();
        this.emit('clientError', new MuxError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${err.message}`, { cause: err }), socket);
      });
      this.server = server;
    } else {
      this.server = net.createServer((socket) => this.onSocket(socket));
    }
    this.server.on('listening', () => this.emit('listening'));
    this.server.on('error', (err) => {
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

  /** True while the server accepts connections. */
  get listening(): boolean {
    return this.server.listening;
  }

  /** Connections past their handshake and not yet closed. */
  get connectionCount(): number {
    return this.connections.size;
  }

  private onSocket(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const { host: _host, path: _path, backlog: _backlog, tls: _tls, ...connectionOptions } = this.options;
    const connection = new MuxConnection(null, { ...connectionOptions, role: 'server' });
    if (connection.limits.noDelay) socket.setNoDelay(true);
    this.handshaking.add(connection);
    connection.once('close', () => {
      this.handshaking.delete(connection);
      this.connections.delete(connection);
    });
    connection.attach(socket, this);
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

  /** @internal HandshakeHooks */
  onHandshakeFailed(connection: MuxConnection, err: MuxError): void {
    this.handshaking.delete(connection);
    this.emit('clientError', err, connection.transportSocket);
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

export { MuxError };
