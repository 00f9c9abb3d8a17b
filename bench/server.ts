/**
 * Benchmark server, run in a child process (`fork`) so that client and server each get a
 * core. Serves one implementation (`mux`, `raw` or `http2`) and reports its port over IPC.
 *
 * Every implementation understands the same modes, chosen per stream:
 *   sink  - count the bytes, answer the count when the client ends
 *   echo  - send every byte back; end when the client ends
 * For `mux` the mode is `meta.mode`; for `raw` it is the first byte of the connection
 * ('s' or 'e'); for `http2` it is the request path. Raw TCP also has
 *   fresh - 'f' and a u32 warm-up length: count the bytes, send one byte once the warm-up
 *           has arrived, and the count at the end (the fresh scenario's one connection)
 *
 * The second argument is the ServerSetup as JSON (TLS certificate files, keepalive interval).
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { DEFAULTS, MuxServer, type MuxConnection, type MuxStream } from '../dist/cjs/index'; // the build users run (`npm run bench` builds first)
import { tlsServerOptions, type ServerSetup } from './server-setup';

type Mode = 'sink' | 'echo';

const setup = JSON.parse(process.argv[3] ?? '{}') as ServerSetup;

function serve(stream: Duplex, mode: Mode, first?: Buffer): void {
  if (mode === 'echo') {
    if (first && first.length > 0) stream.write(first);
    stream.pipe(stream);
    return;
  }
  let count = first ? first.length : 0;
  stream.on('data', (chunk: Buffer) => {
    count += chunk.length;
  });
  stream.on('end', () => stream.end(String(count)));
}

const held: MuxStream[] = [];

let connectionCount = (): number => 0;

function startMux(): Promise<number> {
  return new Promise((resolve) => {
    const server = new MuxServer(
      0,
      {
        host: '127.0.0.1',
        maxStreams: 100_000,
        maxPendingStreams: 100_000,
        keepAliveInterval: setup.keepAliveInterval ?? DEFAULTS.keepAliveInterval,
        ...(setup.tls ? { tls: tlsServerOptions(setup.tls) } : {}),
      },
      () => resolve((server.address() as net.AddressInfo).port),
    );
    connectionCount = () => server.connectionCount;
    server.on('connection', (con: MuxConnection) => {
      con.on('error', () => {});
      con.on('stream', (stream: MuxStream) => {
        stream.on('error', () => {});
        const meta = stream.meta as { mode?: string } | null;
        if (meta?.mode === 'idle') {
          held.push(stream);
          return;
        }
        serve(stream, meta?.mode === 'echo' ? 'echo' : 'sink');
      });
    });
  });
}

/** The fresh scenario on one raw connection: `warmUp` bytes, a one-byte answer, then a sink. */
function serveFresh(socket: Duplex, header: Buffer): void {
  let pending = header;
  let warmUp = -1;
  let count = 0;
  const onData = (chunk: Buffer): void => {
    if (warmUp < 0) {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 4) return;
      warmUp = pending.readUInt32BE(0);
      chunk = pending.subarray(4);
    }
    const before = count;
    count += chunk.length;
    if (before < warmUp && count >= warmUp) socket.write('w');
  };
  socket.on('data', onData);
  socket.on('end', () => socket.end(String(count)));
  onData(Buffer.alloc(0));
}

function startRaw(): Promise<number> {
  return new Promise((resolve) => {
    const sockets = new Set<net.Socket>();
    connectionCount = () => sockets.size;
    const onSocket = (socket: net.Socket): void => {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.once('data', (first: Buffer) => {
        if (first[0] === 0x66) return serveFresh(socket, first.subarray(1));
        const mode: Mode = first[0] === 0x65 ? 'echo' : 'sink';
        serve(socket, mode, first.subarray(1));
      });
    };
    const server = setup.tls ? tls.createServer(tlsServerOptions(setup.tls), onSocket) : net.createServer(onSocket);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** The keepalive an http2 user writes: a PING per session every interval (node:http2 has none of its own). */
function keepAlive(session: http2.Http2Session): void {
  const interval = setup.keepAliveInterval;
  if (interval === undefined) return;
  const ping = (): void => {
    if (!session.destroyed) session.ping(() => {});
  };
  let timer: NodeJS.Timeout = setTimeout(() => {
    ping();
    timer = setInterval(ping, interval).unref();
  }, interval * Math.random()).unref();
  session.once('close', () => clearTimeout(timer));
}

function startHttp2(): Promise<number> {
  return new Promise((resolve) => {
    const server = http2.createServer({ settings: { maxConcurrentStreams: 100_000 } });
    const sessions = new Set<http2.Http2Session>();
    connectionCount = () => sessions.size;
    server.on('session', (session) => {
      session.on('error', () => {});
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      keepAlive(session);
    });
    server.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      const path = headers[':path'];
      if (path === '/idle') return;
      serve(stream, path === '/echo' ? 'echo' : 'sink');
    });
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

const implementation = process.argv[2];
const start = implementation === 'raw' ? startRaw : implementation === 'http2' ? startHttp2 : startMux;
void start().then((port) => process.send!({ port }));

process.on('message', (message: { type: string }) => {
  if (message.type === 'memory') {
    (globalThis as { gc?: () => void }).gc?.();
    const usage = process.memoryUsage();
    process.send!({ heap: usage.heapUsed + usage.external, held: held.length, connections: connectionCount() });
  }
});
process.on('disconnect', () => process.exit(0));
