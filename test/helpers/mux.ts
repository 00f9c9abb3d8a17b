import type { Duplex } from 'node:stream';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { MuxClient, MuxConnection, MuxServer, type ConnectionOptions, type MuxClientOptions, type MuxServerOptions } from '../../src/index';
import { nextEvent, withTimeout } from './async';
import { duplexPair } from './duplex-pair';

/** Every test listens and connects on loopback only. */
export const HOST = '127.0.0.1';

export interface TcpSetup {
  server: MuxServer;
  client: MuxClient;
  /** The server's side of the client's connection. */
  serverCon: MuxConnection;
  port: number;
  /** Destroys the client and the server and waits until the server has closed. */
  cleanup(): Promise<void>;
}

/** Starts a MuxServer on an ephemeral loopback port. */
export async function startServer(options: MuxServerOptions = {}): Promise<{ server: MuxServer; port: number }> {
  const server = new MuxServer(0, { host: HOST, ...options });
  await nextEvent(server, 'listening', 5000);
  return { server, port: (server.address() as AddressInfo).port };
}

/** Destroys `server` and waits (bounded) for its `close`. */
export async function stopServer(server: MuxServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.destroy();
  await withTimeout(closed, 5000, 'the server to close');
}

/**
 * Connects a MuxClient to `server` (listening on `port`); resolves once the handshake is done
 * on both sides, with the server's side of the connection.
 */
export async function connectClient(
  server: MuxServer,
  port: number,
  options: MuxClientOptions = {},
): Promise<{ client: MuxClient; serverCon: MuxConnection }> {
  const connection = nextEvent(server, 'connection', 5000);
  const client = new MuxClient(port, HOST, options);
  try {
    const [[serverCon]] = (await Promise.all([connection, nextEvent(client, 'connect', 5000)])) as [[MuxConnection], unknown[]];
    return { client, serverCon };
  } catch (err) {
    client.destroy();
    throw err;
  }
}

/** Starts a MuxServer on port 0 and connects a MuxClient to it; resolves once both sides are ready. */
export async function startTcp(options: { server?: MuxServerOptions; client?: MuxClientOptions } = {}): Promise<TcpSetup> {
  const { server, port } = await startServer(options.server);
  let connected: { client: MuxClient; serverCon: MuxConnection };
  try {
    connected = await connectClient(server, port, options.client);
  } catch (err) {
    await stopServer(server);
    throw err;
  }
  const { client, serverCon } = connected;
  return {
    server,
    client,
    serverCon,
    port,
    async cleanup() {
      client.destroy();
      await stopServer(server);
    },
  };
}

/** Two connected muxer endpoints, whatever carries the bytes between them. */
export interface ConnectedPair {
  /** The side that opened the transport (opens odd stream ids). */
  client: MuxConnection;
  /** The accepting side (opens even stream ids). */
  server: MuxConnection;
  /** Cuts the transport abruptly, as a failing network would. */
  cut(): void;
  /** Destroys everything and waits until it is closed. */
  cleanup(): Promise<void>;
}

export interface PairOptions {
  server?: Omit<ConnectionOptions, 'role'>;
  client?: Omit<ConnectionOptions, 'role'>;
}

export interface Transport {
  name: string;
  connect(options?: PairOptions): Promise<ConnectedPair>;
}

/** A MuxServer and a MuxClient over a real TCP connection on loopback. */
export const tcpTransport: Transport = {
  name: 'TCP',
  async connect(options = {}) {
    const setup = await startTcp({ server: options.server ?? {}, client: options.client ?? {} });
    return {
      client: setup.client,
      server: setup.serverCon,
      cut: () => (setup.client.transportSocket as net.Socket).destroy(),
      cleanup: () => setup.cleanup(),
    };
  },
};

/** Two bare MuxConnections over an in-memory duplex pair: no sockets at all. */
export const memoryTransport: Transport = {
  name: 'an in-memory duplex pair',
  async connect(options = {}) {
    const [a, b] = duplexPair();
    return connectOver(a, b, [a, b], options);
  },
};

/**
 * Two bare MuxConnections over `clientEnd` and `serverEnd` (in-memory pipe ends, possibly
 * wrapped), connected; `ends` are every duplex that must close before cleanup is done, and
 * the first of them is what `cut` destroys.
 */
export async function connectOver(
  clientEnd: Duplex,
  serverEnd: Duplex,
  ends: Duplex[],
  options: { client?: ConnectionOptions; server?: ConnectionOptions } = {},
): Promise<ConnectedPair> {
  const server = new MuxConnection(serverEnd, { ...options.server, role: 'server' });
  const client = new MuxConnection(clientEnd, { ...options.client, role: 'client' });
  await Promise.all([nextEvent(server, 'connect', 5000), nextEvent(client, 'connect', 5000)]);
  return {
    client,
    server,
    cut: () => ends[0].destroy(),
    async cleanup() {
      // Bare connections tear down synchronously; the pipe ends close on the next turn.
      client.destroy();
      server.destroy();
      await withTimeout(
        Promise.all(ends.map((end) => (end.closed ? Promise.resolve() : nextEvent(end, 'close', 5000)))),
        5000,
        'the pipe to close',
      );
    },
  };
}

/** Run a test body over both: what holds over TCP must hold over any Duplex. */
export const transports: Transport[] = [tcpTransport, memoryTransport];

/** A TCP port on loopback that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, HOST, resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
