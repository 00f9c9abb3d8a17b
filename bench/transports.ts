/**
 * The client side of each implementation the benchmark compares, behind one interface:
 * connect once, then open streams in a mode the bench server understands (server.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { MuxClient } from '../dist/cjs/index'; // the build users run (`npm run bench` builds first)
import { processUsage, type ProcessUsage } from './cli/cpu';
import { compiledServer } from './compiled-server';
import { tlsClientOptions, type ServerSetup, type TlsFiles } from './server-setup';

export type Implementation = 'mux' | 'raw' | 'http2';
export type Mode = 'sink' | 'echo' | 'idle';

export interface Connection {
  open(mode: Mode): Promise<Duplex>;
  close(): Promise<void>;
}

export interface ServerProcess {
  port: number;
  child: ChildProcess;
  heap(): Promise<number>;
  /** Heap + external after a full collection, and the connections the server holds. */
  memory(): Promise<{ heap: number; connections: number }>;
  /** The server process's CPU time and minor page faults so far (Linux only; null elsewhere). */
  usage(): ProcessUsage | null;
  stop(): Promise<void>;
}

function serverProfileArgs(dir = process.env.BENCH_SERVER_CPU_PROF): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export async function startServer(implementation: Implementation, setup: ServerSetup = {}, profileDir?: string): Promise<ServerProcess> {
  const child = fork(compiledServer(), [implementation, JSON.stringify(setup)], {
    // BENCH_SERVER_CPU_PROF=dir profiles the server side too (node --cpu-prof).
    execArgv: ['--expose-gc', ...serverProfileArgs(profileDir)],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { port: number }) => resolve(message.port));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench server exited with ${String(code)}`)));
  });
  return {
    port,
    child,
    heap: () =>
      new Promise((resolve) => {
        child.once('message', (message: { heap: number }) => resolve(message.heap));
        child.send({ type: 'memory' });
      }),
    memory: () =>
      new Promise((resolve) => {
        child.once('message', (message: { heap: number; connections: number }) => resolve(message));
        child.send({ type: 'memory' });
      }),
    usage: () => processUsage(child.pid),
    stop: () =>
      new Promise((resolve) => {
        // Disconnecting lets the server exit by itself (and write its CPU profile, if asked for).
        const killer = setTimeout(() => child.kill(), 2000);
        child.once('exit', () => {
          clearTimeout(killer);
          resolve();
        });
        if (child.connected) child.disconnect();
        else child.kill();
      }),
  };
}

export async function connect(implementation: Implementation, port: number, tlsFiles?: TlsFiles): Promise<Connection> {
  if (implementation === 'mux') return connectMux(port, tlsFiles);
  if (implementation === 'http2') return connectHttp2(port);
  return connectRaw(port, tlsFiles);
}

async function connectMux(port: number, tlsFiles?: TlsFiles): Promise<Connection> {
  const client = new MuxClient(port, '127.0.0.1', { maxStreams: 100_000, ...(tlsFiles ? { tls: tlsClientOptions(tlsFiles) } : {}) });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  client.on('error', () => {});
  return {
    // Like http2's request() and a socket after its local connect: writes start at once,
    // without waiting a round trip for the server to accept the stream.
    open: async (mode) => client.StreamPool.createStream({ mode }, () => {}),
    close: () =>
      new Promise((resolve) => {
        client.destroy();
        resolve();
      }),
  };
}

async function connectRaw(port: number, tlsFiles?: TlsFiles): Promise<Connection> {
  const sockets = new Set<net.Socket>();
  const tlsOptions = tlsFiles ? tlsClientOptions(tlsFiles) : null;
  return {
    // Raw TCP has no streams: one connection per stream, as a user without a muxer would do.
    open: (mode) =>
      new Promise((resolve, reject) => {
        const socket = tlsOptions ? tls.connect({ port, host: '127.0.0.1', ...tlsOptions }) : net.connect(port, '127.0.0.1');
        socket.setNoDelay(true);
        sockets.add(socket);
        socket.once('error', reject);
        socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
          socket.write(mode === 'echo' ? 'e' : 's');
          resolve(socket);
        });
        socket.once('close', () => sockets.delete(socket));
      }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

async function connectHttp2(port: number): Promise<Connection> {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { maxConcurrentStreams: 100_000 } });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => {});
  return {
    open: async (mode) => {
      const request = session.request({ ':method': 'POST', ':path': `/${mode}` });
      request.on('error', () => {});
      return request;
    },
    close: () =>
      new Promise((resolve) => {
        session.destroy();
        resolve();
      }),
  };
}
