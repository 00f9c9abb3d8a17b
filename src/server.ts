import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { MuxError } from './errors';
import { MuxConnection, type ClientInfo, type ConnectionOptions, type HandshakeHooks } from './session/session';
import { TypedEventEmitter } from './events';
import { resolveLimits, resolveServerLimits, type ServerLimits } from './config';
import { MemoryPool } from './session/memory-account';
import { encodeGoAway } from './codec/encode';
import { MAGIC, WireErrorCode } from './protocol/constants';
import { ProxyTrust, readProxyHeader, type ProxyProtocolOptions } from './proxy-protocol';
import type { ProxyHeader } from './codec/proxy-header';

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
  /**
   * Expect a PROXY protocol header (version 1 or 2, as HAProxy, nginx and cloud load
   * balancers send it) before anything else on every connection, and take the client's
   * address from it: `con.remoteAddress`, `remotePort` and `authenticate`'s `info` show the
   * client instead of the balancer. `true` believes any peer (for a port only the balancer
   * can reach); `{ trusted: ['10.0.0.0/8', '127.0.0.1'] }` only those, and refuses others
   * (`ERR_PROXY_UNTRUSTED`). A missing, malformed or oversize header (see
   * `maxProxyHeaderBytes`) is `ERR_PROXY_HEADER`; both are `clientError`s. The header must
   * arrive within `handshakeTimeout` and counts toward `maxHandshakes`; TLS follows it.
   */
  proxyProtocol?: boolean | ProxyProtocolOptions;
}

/** The events of a {@link MuxServer} and their listeners' arguments. */
export interface MuxServerEvents {
  /** The server listens (see `address()` and `port`). */
  listening: [];
  /** A client finished its handshake (and passed `authenticate`). */
  connection: [connection: MuxConnection];
  /**
   * A client failed its handshake, was refused by `authenticate`, or was turned away
   * (`ERR_OVERLOADED`, or a bad PROXY header); its socket is closed. `client` is who it
   * is: the socket's peer, or the client a PROXY protocol header named.
   */
  clientError: [err: MuxError, socket: net.Socket, client: ClientInfo];
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
  /** With both `tls` and `proxyProtocol`: the TLS server that sockets go to once their header is read. */
  private readonly tlsServer: tls.Server | null = null;
  private readonly proxy: ProxyTrust | null;
  /** Sockets still reading their PROXY header (they count as handshakes). */
  private readonly proxyPending = new Set<net.Socket>();
  /** How long a PROXY header may take, in milliseconds: the connections' `handshakeTimeout`. */
  private readonly headerTimeout: number;
  private readonly options: MuxServerOptions;
  private readonly handshaking = new Set<MuxConnection>();
  private readonly connections = new Set<MuxConnection>();
  private readonly serverLimits: ServerLimits;
  private readonly memory: MemoryPool;
  /** What every connection is made with: one object, so they share one set of resolved limits. */
  private readonly connectionOptions: ConnectionOptions;
  /**
   * TCP sockets still in their TLS handshake, by remote address and port (they count as
   * handshakes too), with the client their PROXY header named.
   */
  private readonly tlsPending = new Map<string, { socket: net.Socket; client: ClientInfo | null }>();
  /** Clients named by PROXY headers of sockets about to enter their TLS handshake. */
  private readonly proxiedClients = new WeakMap<net.Socket, ClientInfo>();
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
    this.proxy = ProxyTrust.from(this.options.proxyProtocol);
    this.headerTimeout = limits.handshakeTimeout;
    const { host: _host, path: _path, backlog: _backlog, tls: _tls, proxyProtocol: _proxy, ...connectionOptions } = this.options;
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
        const client = this.clientOf(socket);
        socket.destroy();
        const error = new MuxError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${err.message}`, { cause: err });
        this.emit('clientError', error, socket, client);
      });
      // The header comes before TLS, so the listener is plain TCP and the TLS server only
      // ever gets sockets whose header was read (emitting `connection` is its documented way in).
      if (this.proxy) this.tlsServer = server;
      this.server = this.proxy ? net.createServer((socket) => this.onProxiedSocket(socket)) : server;
    } else {
      this.server = net.createServer((socket) => (this.proxy ? this.onProxiedSocket(socket) : this.onSocket(socket)));
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

  /** Connections still in their handshake (TLS and PROXY headers included). */
  get handshakeCount(): number {
    return this.handshaking.size + this.tlsHandshakes + this.proxyPending.size;
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
    this.tlsPending.set(key, { socket, client: this.proxiedClients.get(socket) ?? null });
    this.tlsHandshakes++;
    socket.once('close', () => {
      if (this.tlsPending.get(key)?.socket !== socket) return;
      this.tlsPending.delete(key);
      this.tlsHandshakes--;
    });
  }

  private tlsHandshakeDone(socket: tls.TLSSocket): void {
    const key = socketKey(socket);
    const pending = key === null ? undefined : this.tlsPending.get(key);
    if (pending) {
      this.tlsPending.delete(key!);
      this.tlsHandshakes--;
    }
    this.onSocket(socket, pending?.client ?? null);
  }

  /** Who a socket in or past its TLS handshake is (the TLS socket reports the raw socket's address). */
  private clientOf(socket: net.Socket): ClientInfo {
    const key = socketKey(socket);
    const client = key === null ? null : (this.tlsPending.get(key)?.client ?? null);
    return client ?? { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
  }

  /** A connection that must start with a PROXY header: checked, then read, then served. */
  private onProxiedSocket(socket: net.Socket): void {
    const proxy = this.proxy!;
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (!proxy.allows(socket.remoteAddress)) {
      return this.reject(
        socket,
        new MuxError(
          'ERR_PROXY_UNTRUSTED',
          `PROXY protocol header from ${socket.remoteAddress ?? 'an unknown address'}, which is not trusted (trusted: ${proxy.description})`,
        ),
      );
    }
    const full = this.overloaded();
    if (full !== null) {
      // Said through the balancer in the clear, when the connection is in the clear.
      if (this.tlsServer) socket.destroy();
      else this.refuse(socket, full);
      return;
    }
    this.proxyPending.add(socket);
    readProxyHeader(socket, this.serverLimits.maxProxyHeaderBytes, this.headerTimeout, (err, header) => {
      this.proxyPending.delete(socket);
      // Closing drops the sockets still reading their header: not the clients' fault.
      if (this.closing) return void socket.destroy();
      if (err) return this.reject(socket, err);
      const client = clientFromHeader(header!);
      if (this.tlsServer) {
        // The TLS socket takes the paused socket's buffered bytes and its handle, and reads
        // by itself: resuming the raw socket here would race it for the bytes.
        if (client) this.proxiedClients.set(socket, client);
        this.tlsServer.emit('connection', socket);
        return;
      }
      this.onSocket(socket, client);
      socket.resume();
    });
  }

  /** Closes a socket that failed before its muxer handshake, and reports why. */
  private reject(socket: net.Socket, err: MuxError): void {
    // Read before destroy(): a destroyed socket no longer knows its peer.
    const client = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
    socket.on('error', () => {});
    socket.destroy();
    this.emit('clientError', err, socket, client);
  }

  /** Why a new connection would be refused now, or null. */
  private overloaded(): string | null {
    const { maxConnections, maxHandshakes, maxServerMemory } = this.serverLimits;
    if (this.connections.size >= maxConnections) return `the server has its maximum of ${maxConnections} connections`;
    if (this.handshakeCount >= maxHandshakes) {
      return `the server has ${maxHandshakes} connections in their handshake`;
    }
    if (this.memory.full) return `the server is out of memory for connections (${maxServerMemory} bytes)`;
    return null;
  }

  /** A socket ready for the muxer handshake; `client` is who a PROXY header said its peer is. */
  private onSocket(socket: net.Socket, client: ClientInfo | null = null): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const full = this.overloaded();
    if (full !== null) return this.refuse(socket, full, client);
    const connection = new MuxConnection(null, this.connectionOptions);
    this.handshaking.add(connection);
    connection.attach(socket, this, client, true);
  }

  /**
   * Turns a connection away before anything is allocated for it: the magic and a GO_AWAY
   * OVERLOADED, so the client reports why (and may retry later), then the socket closes.
   */
  private refuse(socket: net.Socket, reason: string, client: ClientInfo | null = null): void {
    socket.on('error', () => {});
    socket.end(Buffer.concat([MAGIC, encodeGoAway(WireErrorCode.OVERLOADED, reason)]));
    // A client that never reads cannot keep the socket: the bytes are small, a moment is enough.
    setTimeout(() => socket.destroy(), REFUSED_SOCKET_GRACE_MS).unref();
    const who = client ?? { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
    this.emit('clientError', new MuxError('ERR_OVERLOADED', `connection refused: ${reason}`), socket, who);
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
    const client = { remoteAddress: connection.remoteAddress, remotePort: connection.remotePort };
    this.emit('clientError', err, connection.transportSocket as net.Socket, client); // attached before any handshake
  }

  /**
   * Stops accepting (the listener closes first, so a load balancer's health check fails at
   * once), then closes every connection gracefully: each gets GO_AWAY, and its open streams
   * may finish within `closeTimeout`. `callback` runs once everything is closed.
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
    for (const socket of this.proxyPending) socket.destroy();
    this.proxyPending.clear();
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

/** The client a header names, or null when the socket's own peer stands (LOCAL, UNKNOWN). */
function clientFromHeader(header: ProxyHeader): ClientInfo | null {
  return header.source ? { remoteAddress: header.source.address, remotePort: header.source.port } : null;
}

function socketKey(socket: net.Socket): string | null {
  return socket.remotePort === undefined ? null : `${socket.remoteAddress}:${socket.remotePort}`;
}

// How long a refused socket may take to read its GO_AWAY before it is destroyed.
const REFUSED_SOCKET_GRACE_MS = 1000;

export { MuxError };
