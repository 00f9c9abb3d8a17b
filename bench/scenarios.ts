/** The benchmark scenarios of issue 3. Each returns named figures for one repetition. */
import type { Duplex } from 'node:stream';
import type { TlsFiles } from './server-setup';
import { connect, type Connection, type Implementation, type ServerProcess } from './transports';

export interface Sizes {
  bulkBytes: number;
  parallelStreams: number;
  parallelBytes: number;
  smallWrites: number;
  pingpongRounds: number;
  churnStreams: number;
  churnInFlight: number;
  idleStreams: number;
  fairnessMs: number;
  wanBytes: number;
  /** Fresh processes: the warm-up on the connection, then the timed transfer on one stream. */
  freshWarmUpBytes: number;
  freshBytes: number;
  /**
   * Repetitions of issue 16's scenarios (fresh, tls, connections) unless --reps says: their
   * repetitions spread widely on a shared machine, so their medians take more of them.
   */
  issue16Reps: number;
  /** Idle clients of one server in the connections scenario. */
  connections: number;
  /** How long the server's CPU is measured while keepalive pings fly, in ms. */
  keepAliveWindowMs: number;
}

export const FULL: Sizes = {
  bulkBytes: 1024 * 1024 * 1024,
  parallelStreams: 64,
  parallelBytes: 16 * 1024 * 1024,
  smallWrites: 1_000_000,
  pingpongRounds: 20_000,
  churnStreams: 20_000,
  churnInFlight: 100,
  idleStreams: 10_000,
  fairnessMs: 5_000,
  wanBytes: 256 * 1024 * 1024,
  freshWarmUpBytes: 64 * 1024 * 1024,
  freshBytes: 1024 * 1024 * 1024,
  issue16Reps: 5,
  connections: 10_000,
  keepAliveWindowMs: 10_000,
};

export const QUICK: Sizes = {
  bulkBytes: 256 * 1024 * 1024,
  parallelStreams: 64,
  parallelBytes: 2 * 1024 * 1024,
  smallWrites: 200_000,
  pingpongRounds: 5_000,
  churnStreams: 5_000,
  churnInFlight: 100,
  idleStreams: 2_000,
  fairnessMs: 2_000,
  wanBytes: 64 * 1024 * 1024,
  freshWarmUpBytes: 64 * 1024 * 1024,
  freshBytes: 256 * 1024 * 1024,
  issue16Reps: 3,
  connections: 2_000,
  keepAliveWindowMs: 5_000,
};

export type Figures = Record<string, number>;

export interface Context {
  implementation: Implementation;
  server: ServerProcess;
  /** Port to dial: the server's, or a delaying proxy's in front of it. */
  port: number;
  sizes: Sizes;
  /** The certificate to trust when the server speaks TLS. */
  tls?: TlsFiles;
}

const CHUNK = 64 * 1024;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function readAll(stream: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.once('end', () => resolve(text));
    stream.once('error', reject);
  });
}

/** Writes `total` bytes in `size`-byte writes, honouring backpressure; resolves once all are handed over. */
export function writeAll(stream: Duplex, total: number, size: number): Promise<void> {
  const chunk = Buffer.alloc(size, 0x61);
  return new Promise((resolve, reject) => {
    let sent = 0;
    const more = (): void => {
      while (sent < total) {
        sent += size;
        if (!stream.write(chunk)) {
          stream.once('drain', more);
          return;
        }
      }
      stream.off('error', reject);
      resolve();
    };
    stream.once('error', reject);
    more();
  });
}

async function sinkTransfer(conn: Connection, bytes: number, size: number): Promise<void> {
  const stream = await conn.open('sink');
  const reply = readAll(stream);
  await writeAll(stream, bytes, size);
  stream.end();
  const counted = Number(await reply);
  if (counted !== Math.ceil(bytes / size) * size) throw new Error(`sink counted ${counted} bytes, expected ${bytes}`);
}

export async function bulk(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const start = now();
  await sinkTransfer(conn, ctx.sizes.bulkBytes, CHUNK);
  const seconds = (now() - start) / 1000;
  await conn.close();
  return { 'MB/s': ctx.sizes.bulkBytes / 1e6 / seconds };
}

export async function parallel(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const { parallelStreams, parallelBytes } = ctx.sizes;
  const start = now();
  await Promise.all(Array.from({ length: parallelStreams }, () => sinkTransfer(conn, parallelBytes, CHUNK)));
  const seconds = (now() - start) / 1000;
  await conn.close();
  return { 'MB/s': (parallelStreams * parallelBytes) / 1e6 / seconds };
}

export async function small(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const start = now();
  await sinkTransfer(conn, ctx.sizes.smallWrites * 64, 64);
  const seconds = (now() - start) / 1000;
  await conn.close();
  return { 'msg/s': ctx.sizes.smallWrites / seconds };
}

/** Sequential 64-byte round trips on `stream`; returns latencies in microseconds. */
async function roundTrips(stream: Duplex, rounds: number, until?: () => boolean): Promise<number[]> {
  const message = Buffer.alloc(64, 0x62);
  const latencies: number[] = [];
  let pending = 0;
  let done: (() => void) | null = null;
  stream.on('data', (chunk: Buffer) => {
    pending -= chunk.length;
    if (pending <= 0 && done) {
      const resolve = done;
      done = null;
      resolve();
    }
  });
  for (let i = 0; i < rounds && (until === undefined || until()); i++) {
    const start = now();
    pending += 64;
    await new Promise<void>((resolve) => {
      done = resolve;
      stream.write(message);
    });
    latencies.push((now() - start) * 1000);
  }
  return latencies;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export async function pingpong(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const stream = await conn.open('echo');
  await roundTrips(stream, 200); // warm-up
  const latencies = await roundTrips(stream, ctx.sizes.pingpongRounds);
  stream.end();
  await conn.close();
  return { 'median µs': percentile(latencies, 50), 'p99 µs': percentile(latencies, 99) };
}

export async function churn(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const payload = Buffer.alloc(1024, 0x63);
  const { churnStreams, churnInFlight } = ctx.sizes;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < churnStreams) {
      started++;
      const stream = await conn.open('echo');
      const reply = new Promise<number>((resolve, reject) => {
        let length = 0;
        stream.on('data', (chunk: Buffer) => (length += chunk.length));
        stream.once('end', () => resolve(length));
        stream.once('error', reject);
      });
      stream.end(payload);
      const length = await reply;
      if (length !== payload.length) throw new Error(`churn echo returned ${length} bytes`);
    }
  };
  const start = now();
  await Promise.all(Array.from({ length: churnInFlight }, worker));
  const seconds = (now() - start) / 1000;
  await conn.close();
  return { 'streams/s': churnStreams / seconds };
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function localHeap(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

export async function idleMemory(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const warm = await conn.open('idle'); // connection-level allocations happen before the baseline
  warm.write('x');
  await new Promise((resolve) => setTimeout(resolve, 100));
  const clientBefore = localHeap();
  const serverBefore = await ctx.server.heap();
  const streams: Duplex[] = [];
  for (let i = 0; i < ctx.sizes.idleStreams; i++) {
    const stream = await conn.open('idle');
    stream.write('x'); // makes the stream exist on the server for every implementation
    streams.push(stream);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const clientAfter = localHeap();
  const serverAfter = await ctx.server.heap();
  const n = ctx.sizes.idleStreams;
  await conn.close();
  return { 'client B/stream': (clientAfter - clientBefore) / n, 'server B/stream': (serverAfter - serverBefore) / n, kept: streams.length };
}

export async function fairness(ctx: Context): Promise<Figures> {
  const bulkConn = await connect(ctx.implementation, ctx.port);
  // Multiplexers share one connection; raw TCP gets a second connection for the pings.
  const pingConn = ctx.implementation === 'raw' ? await connect('raw', ctx.port) : bulkConn;
  const bulkStream = await bulkConn.open('sink');
  const echo = await pingConn.open('echo');
  await roundTrips(echo, 100);
  let sent = 0;
  let running = true;
  const chunk = Buffer.alloc(CHUNK, 0x64);
  const bulkDone = new Promise<void>((resolve) => {
    const more = (): void => {
      while (running) {
        sent += CHUNK;
        if (!bulkStream.write(chunk)) {
          bulkStream.once('drain', more);
          return;
        }
      }
      resolve();
    };
    more();
  });
  const start = now();
  const deadline = start + ctx.sizes.fairnessMs;
  const latencies = await roundTrips(echo, Number.MAX_SAFE_INTEGER, () => now() < deadline);
  running = false;
  const seconds = (now() - start) / 1000;
  bulkStream.destroy();
  void bulkDone;
  await bulkConn.close();
  if (pingConn !== bulkConn) await pingConn.close();
  return { 'median µs': percentile(latencies, 50), 'p99 µs': percentile(latencies, 99), 'bulk MB/s': sent / 1e6 / seconds };
}

/**
 * Over TLS (one cipher for both, see transports.ts): one stream of `bulkBytes`, then
 * `parallelStreams` streams at once, against one raw TLS socket and as many raw TLS sockets.
 */
export async function tls(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port, ctx.tls);
  let start = now();
  await sinkTransfer(conn, ctx.sizes.bulkBytes, CHUNK);
  const bulkSeconds = (now() - start) / 1000;
  await conn.close();
  const many = await connect(ctx.implementation, ctx.port, ctx.tls);
  const { parallelStreams, parallelBytes } = ctx.sizes;
  start = now();
  await Promise.all(Array.from({ length: parallelStreams }, () => sinkTransfer(many, parallelBytes, CHUNK)));
  const parallelSeconds = (now() - start) / 1000;
  await many.close();
  return {
    'bulk MB/s': ctx.sizes.bulkBytes / 1e6 / bulkSeconds,
    'parallel MB/s': (parallelStreams * parallelBytes) / 1e6 / parallelSeconds,
  };
}

export async function wan(ctx: Context): Promise<Figures> {
  const conn = await connect(ctx.implementation, ctx.port);
  const start = now();
  await sinkTransfer(conn, ctx.sizes.wanBytes, CHUNK);
  const seconds = (now() - start) / 1000;
  await conn.close();
  return { 'MB/s': ctx.sizes.wanBytes / 1e6 / seconds };
}
