/**
 * Benchmark server, run in a child process (`fork`) so that client and server each get a
 * core. Serves one implementation (`mux`, `raw` or `http2`) and reports its port over IPC.
 *
 * Every implementation understands the same modes, chosen per stream:
 *   sink  - count the bytes, answer the count when the client ends
 *   echo  - send every byte back; end when the client ends
 * For `mux` the mode is `meta.mode`; for `raw` it is the first byte of the connection
 * ('s' or 'e'); for `http2` it is the request path.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { MuxServer, type MuxConnection, type MuxStream } from '../dist/cjs/index'; // the build users run (`npm run bench` builds first)

type Mode = 'sink' | 'echo';

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

function startMux(): Promise<number> {
  return new Promise((resolve) => {
    const server = new MuxServer(0, { host: '127.0.0.1', maxStreams: 100_000, maxPendingStreams: 100_000 }, () =>
      resolve((server.address() as net.AddressInfo).port),
    );
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

function startRaw(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.once('data', (first: Buffer) => {
        const mode: Mode = first[0] === 0x65 ? 'echo' : 'sink';
        serve(socket, mode, first.subarray(1));
      });
    });
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function startHttp2(): Promise<number> {
  return new Promise((resolve) => {
    const server = http2.createServer({ settings: { maxConcurrentStreams: 100_000 } });
    server.on('session', (session) => session.on('error', () => {}));
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
    process.send!({ heap: usage.heapUsed + usage.external, held: held.length });
  }
});
process.on('disconnect', () => process.exit(0));
