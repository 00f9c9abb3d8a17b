/**
 * A live server under attack: raw clients send random bytes, mutated frame sequences after a
 * valid handshake, and floods (100,000 OPENs, DATA past the window, DATA for streams never
 * opened), while a well-behaved MuxClient on the same server keeps opening streams and
 * passing SHA-256 echo checks. The server survives (nothing escapes to the process), every
 * bad connection is closed with a typed error, memory stays bounded during a flood and the
 * heap returns to its baseline afterwards.
 *
 * The fuzz is seeded; a failure message carries the seed, and FUZZ_SEED=<n> replays it.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import {
  MuxClient,
  MuxError,
  type ConnectionStats,
  type JsonValue,
  type MuxConnection,
  type MuxServer,
  type MuxServerOptions,
  type MuxStream,
} from '../src/index';
import { DEFAULTS } from '../src/config';
import { collectGarbage } from './helpers/memory';
import { FrameDecoder, type FrameSink } from '../src/codec/decoder';
import { encodeCodeAndReason, encodeFrame, writeHeader } from '../src/codec/encode';
import { Flag, FrameType, MAGIC, WireErrorCode } from '../src/protocol/constants';
import { encodeSettings } from '../src/protocol/hello';
import { HOST, startServer, stopServer } from './helpers/mux';
import { delay, sha256, waitFor, withTimeout } from './helpers/async';
import { echoHashing } from './helpers/streams';

// ---- a seeded generator -------------------------------------------------------------------

/** mulberry32: small, fast, and good enough to pick mutations reproducibly. */
class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  u32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);

// ---- what the server says back ---------------------------------------------------------------

/** Counts the frames a server sends, checking on the way that they decode: the server never speaks garbage. */
class CountingSink implements FrameSink {
  readonly counts = new Map<number, number>();
  readonly refuseCodes = new Map<number, number>();
  goAway: { code: number; reason: string } | null = null;

  count(type: FrameType): number {
    return this.counts.get(type) ?? 0;
  }
  onData(_streamId: number, _flags: number, _piece: Buffer, last: boolean): void {
    if (last) this.counts.set(FrameType.DATA, this.count(FrameType.DATA) + 1);
  }
  onControl(type: FrameType, _flags: number, _streamId: number, payload: Buffer): void {
    this.counts.set(type, this.count(type) + 1);
    if (type === FrameType.REFUSE) {
      const code = payload.readUInt32BE(0);
      this.refuseCodes.set(code, (this.refuseCodes.get(code) ?? 0) + 1);
    }
    if (type === FrameType.GO_AWAY) this.goAway = { code: payload.readUInt32BE(0), reason: payload.toString('utf8', 4) };
  }
  onOversizeOpen(): void {}
}

/** A raw TCP peer that decodes (and checks) everything the server sends it. */
class RawPeer {
  readonly sink = new CountingSink();
  /** Set if the server's bytes did not decode: a server bug. */
  decodeError: unknown = null;
  readonly closed: Promise<void>;
  private readonly decoder = new FrameDecoder(this.sink, { maxFrameSize: 1 << 24, maxMetaBytes: 1 << 24, maxHelloBytes: 1 << 20 });

  constructor(
    readonly socket: net.Socket,
    read = true,
  ) {
    socket.on('error', () => {}); // resets are expected here
    if (read) {
      socket.on('data', (chunk: Buffer) => {
        if (this.decodeError) return;
        try {
          this.decoder.push(chunk);
        } catch (err) {
          this.decodeError = err;
        }
      });
    }
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  static async connect(port: number, read = true): Promise<RawPeer> {
    const socket = net.connect(port, HOST);
    const peer = new RawPeer(socket, read);
    await withTimeout(
      new Promise<void>((resolve) => {
        socket.once('connect', () => resolve());
        socket.once('close', () => resolve());
      }),
      5000,
      'a raw connection',
    );
    return peer;
  }

  /** Writes, waiting on backpressure; false once the socket is gone. */
  async write(bytes: Buffer): Promise<boolean> {
    const s = this.socket;
    if (s.destroyed || s.writableEnded) return false;
    if (s.write(bytes)) return true;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('drain', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
    return !s.destroyed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function helloBytes(hello: JsonValue, initialWindow = 256 * 1024): Buffer {
  const settings = {
    initialWindow,
    connectionWindow: 16 * 1024 * 1024,
    maxFrameSize: 65536,
    maxStreams: 16384,
    maxMetaBytes: 65536,
    hello,
  };
  return Buffer.concat([MAGIC, encodeFrame(FrameType.HELLO, 0, 0, encodeSettings(settings))]);
}

/** `count` OPEN frames with null meta for odd ids from `firstId`, as one buffer. */
function openFrames(firstId: number, count: number): Buffer {
  const meta = Buffer.from('null');
  const size = 12 + meta.length;
  const out = Buffer.allocUnsafe(size * count);
  for (let k = 0; k < count; k++) {
    writeHeader(out, k * size, FrameType.OPEN, 0, firstId + 2 * k, meta.length);
    meta.copy(out, k * size + 12);
  }
  return out;
}

/** Sends 100,000 (or `total`) OPENs in batches of 1,000 frames per write. */
async function openFlood(peer: RawPeer, total: number): Promise<void> {
  for (let sent = 0; sent < total; sent += 1000) {
    if (!(await peer.write(openFrames(1 + 2 * sent, Math.min(1000, total - sent))))) return;
  }
}

// ---- the server under test ---------------------------------------------------------------------

/**
 * How the server treats a connection, by the client's hello: `good` and `echo` get an echo
 * (for `good`, checked against the SHA-256 in the meta); `hold` takes every stream and never
 * reads it; anything else has no `stream` listener (opens wait in the backlog).
 */
type Kind = 'good' | 'echo' | 'hold' | 'quiet';

interface Watch {
  server: MuxServer;
  port: number;
  /** Everything that went wrong on the server side, to be checked for types. */
  errors: { where: string; err: unknown }[];
  /** SHA-256 mismatches seen by the server's echo for streams that carried one. */
  mismatches: string[];
  /** Connections accepted, by kind (counts only: holding them would hold their memory). */
  accepted: Map<Kind, number>;
  /** The good client's connection at the server, once accepted. */
  good: MuxConnection | null;
}

const LIMITS: MuxServerOptions = {
  maxStreams: 32,
  maxPendingStreams: 8,
  handshakeTimeout: 1000,
  keepAliveInterval: 500,
  keepAliveTimeout: 1000,
  openTimeout: 0,
  closeTimeout: 1000,
  maxBufferedBytes: 8 * 1024 * 1024,
};

async function watchedServer(t: TestContext, options: MuxServerOptions = {}): Promise<Watch> {
  const { server, port } = await startServer({ ...LIMITS, ...options });
  t.after(() => stopServer(server));
  const w: Watch = { server, port, errors: [], mismatches: [], accepted: new Map(), good: null };
  server.on('error', (err) => w.errors.push({ where: 'server error event (never expected)', err: err ?? new Error('server error') }));
  server.on('clientError', (err) => w.errors.push({ where: 'clientError', err }));
  server.on('connection', (con: MuxConnection) => {
    const hello = con.peerHello as { kind?: string } | null;
    const kind: Kind = hello && ['good', 'echo', 'hold'].includes(hello.kind ?? '') ? (hello.kind as Kind) : 'quiet';
    w.accepted.set(kind, (w.accepted.get(kind) ?? 0) + 1);
    if (kind === 'good') w.good = con;
    con.on('error', (err) => w.errors.push({ where: `${kind} connection`, err }));
    if (kind === 'good' || kind === 'echo') con.on('stream', (stream: MuxStream) => serveEcho(stream, w, kind));
    if (kind === 'hold') con.on('stream', (stream: MuxStream) => stream.on('error', () => {}));
  });
  return w;
}

function serveEcho(stream: MuxStream, w: Watch, kind: Kind): void {
  // Only the good client's streams carry a SHA-256 of what they send; fuzzed ones are just echoed.
  const meta = stream.meta as { sha256?: unknown } | null;
  const expected = kind === 'good' && meta && typeof meta === 'object' && typeof meta.sha256 === 'string' ? meta.sha256 : null;
  stream.on('error', (err) => {
    if (kind === 'good') w.errors.push({ where: 'a stream of the good client, at the server', err });
    else if (!(err instanceof MuxError)) w.errors.push({ where: 'a fuzzed stream at the server', err });
  });
  echoHashing(stream, (got) => {
    if (expected !== null && got !== expected) w.mismatches.push(`${kind} stream ${stream.id}: read ${got}, meta says ${expected}`);
  });
}

function assertTyped(errors: { where: string; err: unknown }[], context: string): void {
  for (const { where, err } of errors) {
    assert.ok(
      err instanceof MuxError,
      `${context}: ${where} failed with a MuxError, got ${err instanceof Error ? err.stack : String(err)}`,
    );
    assert.ok(where !== 'server error event (never expected)', `${context}: the server emitted error: ${String(err)}`);
  }
}

/** Largest value of each figure of `con.stats()`, sampled after every chunk the server reads. */
function sampleStats(con: MuxConnection): { max: ConnectionStats; stop(): void } {
  const max = { ...con.stats() };
  const sample = (): void => {
    const s = con.stats();
    for (const key of Object.keys(s) as (keyof ConnectionStats)[]) {
      const value = s[key];
      if (typeof value === 'number' && value > (max[key] ?? 0)) (max as Record<string, unknown>)[key] = value;
    }
  };
  // Added after the connection's own `data` listener: runs once each chunk is processed.
  const socket = con.transportSocket!;
  socket.on('data', sample);
  const timer = setInterval(sample, 2);
  return {
    max,
    stop() {
      socket.off('data', sample);
      clearInterval(timer);
      sample();
    },
  };
}

// ---- bounded memory under an OPEN flood ----------------------------------------------------------

/**
 * Output a connection may queue for a peer: the scheduler stops reading from a peer once 1 MiB
 * of answers wait, and one 64 KiB chunk of 16-byte OPENs (4,096 refusals of ~60 bytes) may
 * still be answered after that.
 */
const OUTPUT_BOUND = 1.5 * 1024 * 1024;

describe('a flood of 100,000 OPEN frames on one connection', () => {
  const TOTAL = 100_000;
  const { maxStreams, maxPendingStreams } = LIMITS as { maxStreams: number; maxPendingStreams: number };

  async function flood(t: TestContext, kind: Kind, read: boolean) {
    const w = await watchedServer(t);
    const connected = new Promise<MuxConnection>((resolve) => w.server.once('connection', resolve));
    const peer = await RawPeer.connect(w.port, read);
    t.after(() => peer.destroy());
    await peer.write(helloBytes(kind === 'quiet' ? null : { kind }));
    const con = await withTimeout(connected, 5000, 'the server to accept the raw peer');
    const stats = sampleStats(con);
    const flooding = openFlood(peer, TOTAL);
    return { w, peer, con, stats, flooding };
  }

  /** After a flood of refused opens: the server went away with ENHANCE_YOUR_CALM once the burst was spent. */
  async function assertCalmedDown(peer: RawPeer, w: Awaited<ReturnType<typeof watchedServer>>): Promise<void> {
    await withTimeout(peer.closed, 20_000, 'the server to close the flooding connection');
    assert.equal(peer.decodeError, null, 'everything the server sent decodes');
    assert.equal(peer.sink.goAway?.code, WireErrorCode.ENHANCE_YOUR_CALM, `GO_AWAY ${JSON.stringify(peer.sink.goAway)}`);
    assert.match(peer.sink.goAway.reason, /refused opens/);
    const refused = peer.sink.count(FrameType.REFUSE);
    // The burst, then as many as the sustained rate allowed meanwhile: far fewer than were sent.
    const burst = DEFAULTS.wastedWorkBurst;
    assert.ok(refused >= burst && refused < TOTAL / 2, `${refused} opens refused before the server went away`);
    assert.deepEqual([...peer.sink.refuseCodes.keys()], [WireErrorCode.STREAM_LIMIT], 'refused as over a limit');
    assertTyped(w.errors, 'flood');
  }

  test(
    'with no stream listener, at most maxPendingStreams wait, refused opens past the burst end the connection (ENHANCE_YOUR_CALM)',
    { timeout: 30_000 },
    async (t) => {
      const { w, peer, con, stats, flooding } = await flood(t, 'quiet', true);
      void flooding.catch(() => {});
      await assertCalmedDown(peer, w);
      stats.stop();
      t.diagnostic(`peaks: ${JSON.stringify(stats.max)}`);
      assert.ok(stats.max.pendingStreams <= maxPendingStreams, `pending streams peaked at ${stats.max.pendingStreams}`);
      assert.ok(stats.max.streamsOpenRemote <= maxPendingStreams, `open streams peaked at ${stats.max.streamsOpenRemote}`);
      assert.ok(stats.max.bufferedIn === 0, 'no data was buffered');
      assert.ok(stats.max.bufferedOut < OUTPUT_BOUND, `queued output peaked at ${stats.max.bufferedOut} bytes`);
      assert.equal(con.ready, false);
    },
  );

  test(
    'with a listener that takes every stream and never reads, at most maxStreams are open and a flood of refusals ends the connection',
    { timeout: 30_000 },
    async (t) => {
      const { w, peer, stats, flooding } = await flood(t, 'hold', true);
      void flooding.catch(() => {});
      await assertCalmedDown(peer, w);
      stats.stop();
      assert.equal(peer.sink.count(FrameType.ACCEPT), maxStreams);
      t.diagnostic(`peaks: ${JSON.stringify(stats.max)}`);
      assert.ok(stats.max.streamsOpenRemote <= maxStreams, `open streams peaked at ${stats.max.streamsOpenRemote}`);
      assert.ok(stats.max.pendingStreams <= maxPendingStreams, `pending streams peaked at ${stats.max.pendingStreams}`);
      assert.ok(stats.max.bufferedOut < OUTPUT_BOUND, `queued output peaked at ${stats.max.bufferedOut} bytes`);
    },
  );

  test(
    'from a peer that never reads the refusals, the queued output stays bounded while the server stops reading',
    { timeout: 30_000 },
    async (t) => {
      const { w, peer, con, stats, flooding } = await flood(t, 'quiet', false);
      void flooding;
      // The server stops reading once its unread answers pile up, so the flood may never be
      // taken in whole: wait until everything was read, or until reading has stopped.
      let last = -1;
      let still = 0;
      while (con.stats().framesIn < TOTAL + 1 && still < 3) {
        const framesIn = con.stats().framesIn;
        still = framesIn === last ? still + 1 : 0;
        last = framesIn;
        await delay(100);
      }
      stats.stop();
      t.diagnostic(`the server read ${con.stats().framesIn - 1} of ${TOTAL} opens; queued output peaked at ${stats.max.bufferedOut} bytes`);
      assert.ok(stats.max.bufferedOut < OUTPUT_BOUND, `queued output peaked at ${stats.max.bufferedOut} bytes`);
      assert.ok(stats.max.pendingStreams <= maxPendingStreams);
      assert.ok(stats.max.streamsOpenRemote <= maxPendingStreams);
      assertTyped(w.errors, 'non-reading flood');
      void con;
      peer.destroy();
      await waitFor(() => w.server.connectionCount === 0, 5000, 'the server to drop the flooder');
    },
  );
});

// ---- the fuzz ------------------------------------------------------------------------------

/** A valid frame sequence for a client after its HELLO: opens, data within windows, updates, pings, resets. */
function validSequence(rng: Rng): Buffer[] {
  const frames: Buffer[] = [];
  let nextId = 1;
  const open: number[] = [];
  const count = rng.int(1, 14);
  for (let k = 0; k < count; k++) {
    const what = open.length === 0 ? 'open' : rng.pick(['open', 'data', 'data', 'data', 'window', 'ping', 'reset', 'fin'] as const);
    switch (what) {
      case 'open': {
        const id = nextId;
        nextId += 2 * rng.int(1, 3);
        const meta = rng.pick([null, { n: rng.int(0, 1e6), s: 'x'.repeat(rng.int(0, 200)) }, ['a', 1, true], 'text']);
        frames.push(encodeFrame(FrameType.OPEN, 0, id, Buffer.from(JSON.stringify(meta))));
        open.push(id);
        break;
      }
      case 'data':
        frames.push(encodeFrame(FrameType.DATA, 0, rng.pick(open), rng.bytes(rng.int(0, 4096))));
        break;
      case 'fin': {
        const id = open.splice(rng.int(0, open.length - 1), 1)[0];
        frames.push(encodeFrame(FrameType.DATA, Flag.FIN, id, rng.bytes(rng.int(0, 64))));
        break;
      }
      case 'window':
        frames.push(
          encodeFrame(FrameType.WINDOW_UPDATE, 0, rng.pick(open), Buffer.from([0, rng.int(0, 255), rng.int(0, 255), rng.int(1, 255)])),
        );
        break;
      case 'ping':
        frames.push(encodeFrame(FrameType.PING, rng.chance(0.3) ? Flag.ACK : 0, 0, rng.bytes(8)));
        break;
      case 'reset': {
        const id = open.splice(rng.int(0, open.length - 1), 1)[0];
        frames.push(encodeFrame(FrameType.RESET, 0, id, encodeCodeAndReason(WireErrorCode.CANCEL, 'fuzz')));
        break;
      }
    }
  }
  if (rng.chance(0.1)) frames.push(encodeFrame(FrameType.GO_AWAY, 0, 0, encodeCodeAndReason(WireErrorCode.NORMAL, 'bye')));
  return frames;
}

const MUTATIONS = ['flip', 'type', 'length', 'id', 'flags', 'version', 'truncate', 'duplicate', 'swap', 'insert', 'drop'] as const;

/** Applies 1-3 random mutations to a frame sequence (0 now and then: valid input must work too). */
function mutate(rng: Rng, input: Buffer[]): { bytes: Buffer; applied: string[] } {
  const frames: Buffer[] = input.map((f) => Buffer.from(f));
  const applied: string[] = [];
  const n = rng.chance(0.1) ? 0 : rng.int(1, 3);
  let truncateAt: number | null = null;
  for (let k = 0; k < n && frames.length > 0; k++) {
    const i = rng.int(0, frames.length - 1);
    const f = frames[i];
    let m = rng.pick(MUTATIONS);
    // Header fields exist only on whole frames (not on the magic or inserted noise).
    if (f.length < 12 && ['type', 'length', 'id', 'flags', 'version'].includes(m)) m = 'flip';
    applied.push(m);
    switch (m) {
      case 'flip':
        if (f.length > 0) f[rng.int(0, f.length - 1)] ^= rng.int(1, 255);
        break;
      case 'type':
        f[1] = rng.chance(0.7) ? rng.int(0, 9) : rng.int(0, 255);
        break;
      case 'length':
        f.writeUInt32BE(rng.pick([rng.u32(), Math.max(0, f.readUInt32BE(8) + rng.int(-4, 4)), 0xffffffff, 0, 65537]) >>> 0, 8);
        break;
      case 'id':
        f.writeUInt32BE(rng.pick([0, 0x80000001, rng.u32(), 2 * rng.int(1, 50), 2 * rng.int(0, 50) + 1]) >>> 0, 4);
        break;
      case 'flags':
        f.writeUInt16BE(rng.pick([Flag.FIN, Flag.ACK, 3, rng.int(0, 0xffff)]), 2);
        break;
      case 'version':
        f[0] = rng.int(0, 255);
        break;
      case 'truncate':
        truncateAt = rng.int(
          0,
          frames.reduce((sum, x) => sum + x.length, 0),
        );
        break;
      case 'duplicate':
        frames.splice(i, 0, Buffer.from(f));
        break;
      case 'swap': {
        const j = rng.int(0, frames.length - 1);
        [frames[i], frames[j]] = [frames[j], frames[i]];
        break;
      }
      case 'insert':
        frames.splice(i, 0, rng.bytes(rng.int(1, 40)));
        break;
      case 'drop':
        frames.splice(i, 1);
        break;
    }
  }
  const bytes = Buffer.concat(frames);
  return { bytes: truncateAt === null ? bytes : bytes.subarray(0, truncateAt), applied };
}

/** Writes `bytes` in random pieces, sometimes with a pause between them. */
async function sendInPieces(rng: Rng, peer: RawPeer, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const size = rng.chance(0.3) ? rng.int(1, 16) : rng.int(1, bytes.length);
    if (!(await peer.write(bytes.subarray(offset, offset + size)))) return;
    offset += size;
    if (rng.chance(0.1)) await delay(rng.int(0, 5));
  }
}

/** Either waits a little, or waits (bounded) for the server to close the connection. */
async function linger(rng: Rng, peer: RawPeer): Promise<void> {
  if (rng.chance(0.5)) await Promise.race([peer.closed, delay(rng.int(0, 100))]);
  else await Promise.race([peer.closed, delay(2500)]);
  peer.destroy();
}

/** A fuzz session; resolves to a complaint when the server answered what it must not. */
type Session = (rng: Rng, port: number) => Promise<string | void>;

/** Waits (bounded) for the server to close `peer`, and checks the GO_AWAY it sent first. */
async function expectGoAway(peer: RawPeer, code: WireErrorCode, what: string): Promise<string | void> {
  await Promise.race([peer.closed, delay(2500)]);
  const closed = peer.isClosed;
  peer.destroy();
  if (!closed) return `the server kept a connection open after ${what}`;
  if (peer.sink.goAway?.code !== code) {
    return `after ${what} the server sent GO_AWAY ${JSON.stringify(peer.sink.goAway)}, expected code ${WireErrorCode[code]}`;
  }
}

const randomKind = (rng: Rng): JsonValue => rng.pick([null, { kind: 'echo' }, { kind: 'hold' }, { kind: 'quiet' }]);

const SESSIONS: Record<string, Session> = {
  /** Random bytes, sometimes behind a valid magic so they reach the header parser. */
  async randomBytes(rng, port) {
    const peer = await RawPeer.connect(port);
    const garbage = rng.bytes(rng.int(1, 4096));
    await sendInPieces(rng, peer, rng.chance(0.5) ? Buffer.concat([MAGIC, garbage]) : garbage);
    await linger(rng, peer);
  },
  /** A valid handshake, then random bytes where frames should be. */
  async garbageAfterHandshake(rng, port) {
    const peer = await RawPeer.connect(port);
    await sendInPieces(rng, peer, Buffer.concat([helloBytes(randomKind(rng)), rng.bytes(rng.int(1, 2048))]));
    await linger(rng, peer);
  },
  /** A mutated HELLO. */
  async mutatedHello(rng, port) {
    const peer = await RawPeer.connect(port);
    const hello = helloBytes(randomKind(rng));
    const { bytes } = mutate(rng, [hello.subarray(0, 4), hello.subarray(4)]);
    await sendInPieces(rng, peer, bytes);
    await linger(rng, peer);
  },
  /** A valid handshake and a mutated valid frame sequence. */
  async mutatedFrames(rng, port) {
    const peer = await RawPeer.connect(port);
    const { bytes } = mutate(rng, validSequence(rng));
    const hello = helloBytes(randomKind(rng));
    if (rng.chance(0.5)) {
      await peer.write(hello);
      await Promise.race([peer.closed, waitFor(() => peer.sink.count(FrameType.HELLO) > 0, 2000, 'HELLO').catch(() => {})]);
      await sendInPieces(rng, peer, bytes);
    } else {
      await sendInPieces(rng, peer, Buffer.concat([hello, bytes]));
    }
    await linger(rng, peer);
  },
  /** DATA past the window on a stream the server holds without reading. */
  async windowViolation(rng, port) {
    const peer = await RawPeer.connect(port);
    const frames = [helloBytes(rng.pick([null, { kind: 'hold' }])), encodeFrame(FrameType.OPEN, 0, 1, Buffer.from('{}'))];
    const chunk = Buffer.alloc(65536, 0x5a);
    for (let k = 0; k < 5; k++) frames.push(encodeFrame(FrameType.DATA, 0, 1, chunk)); // 320 KiB > 256 KiB window
    await sendInPieces(rng, peer, Buffer.concat(frames));
    return expectGoAway(peer, WireErrorCode.FLOW_CONTROL_ERROR, 'DATA past the window');
  },
  /** DATA, WINDOW_UPDATE and RESET for streams never opened. */
  async neverOpened(rng, port) {
    const peer = await RawPeer.connect(port);
    const id = rng.pick([1, 3, 2, 4, 1001, 0x7fffffff]);
    const frame = rng.pick([
      encodeFrame(FrameType.DATA, 0, id, rng.bytes(rng.int(0, 100))),
      encodeFrame(FrameType.WINDOW_UPDATE, 0, id, Buffer.from([0, 0, 1, 0])),
      encodeFrame(FrameType.RESET, 0, id, encodeCodeAndReason(WireErrorCode.CANCEL)),
      encodeFrame(FrameType.ACCEPT, 0, id),
    ]);
    await sendInPieces(rng, peer, Buffer.concat([helloBytes(randomKind(rng)), frame]));
    return expectGoAway(peer, WireErrorCode.PROTOCOL_ERROR, `frame type ${frame[1]} for stream ${id}, never opened`);
  },
  /** Connects and says nothing (slow-loris): the handshake timeout drops it. */
  async silent(rng, port) {
    const peer = await RawPeer.connect(port);
    await Promise.race([peer.closed, delay(rng.int(0, 1500))]);
    peer.destroy();
  },
  /** Opens a stream on an echo connection, sends data, and never reads the echo. */
  async neverReads(rng, port) {
    const peer = await RawPeer.connect(port, false);
    const frames = [helloBytes({ kind: 'echo' }), encodeFrame(FrameType.OPEN, 0, 1, Buffer.from('{}'))];
    for (let k = 0; k < 3; k++) frames.push(encodeFrame(FrameType.DATA, 0, 1, rng.bytes(60_000)));
    await peer.write(Buffer.concat(frames));
    await Promise.race([peer.closed, delay(rng.int(100, 800))]);
    peer.destroy();
  },
};

/** The well-behaved client; any error it reports is a failure. */
async function goodClient(port: number, failures: string[]): Promise<MuxClient> {
  const client = new MuxClient(port, HOST, { hello: { kind: 'good' } });
  client.on('error', (err) => failures.push(`good client error: ${err.message}`));
  await withTimeout(new Promise<void>((resolve) => client.once('connect', () => resolve())), 5000, 'the good client to connect');
  return client;
}

async function checkOnce(client: MuxClient, size: number): Promise<void> {
  const payload = randomBytes(size);
  const digest = sha256(payload);
  const stream = await client.StreamPool.createStream({ sha256: digest });
  const parts: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.once('end', () => resolve());
    stream.once('error', reject);
  });
  stream.end(payload);
  await done;
  const echoed = Buffer.concat(parts);
  if (sha256(echoed) !== digest) throw new Error(`echo of ${size} bytes came back as ${echoed.length} different bytes`);
}

function installProcessWatch(t: TestContext): unknown[] {
  const escaped: unknown[] = [];
  const onException = (err: unknown): void => {
    escaped.push(err);
  };
  const onRejection = (reason: unknown): void => {
    escaped.push(reason);
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  t.after(() => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  });
  return escaped;
}

/** Lowest heap and off-heap (Buffer) memory over a short settle, after full collections when possible. */
async function settledMemory(gc: (() => void) | null): Promise<{ heap: number; external: number }> {
  let heap = Infinity;
  let external = Infinity;
  for (let k = 0; k < 5; k++) {
    await delay(100);
    gc?.();
    const usage = process.memoryUsage();
    heap = Math.min(heap, usage.heapUsed);
    external = Math.min(external, usage.external);
  }
  return { heap, external };
}

describe('memory held per stream', () => {
  /** Runs one checked exchange on a fresh stream and returns only weak references to both ends. */
  async function finishedStreams(client: MuxConnection, server: MuxConnection): Promise<WeakRef<MuxStream>[]> {
    const incoming = new Promise<MuxStream>((resolve) => server.once('stream', resolve));
    const local = await client.StreamPool.createStream({ big: 'x'.repeat(1000) });
    const remote = await incoming;
    const payload = randomBytes(256 * 1024);
    const echoed = new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      local.on('data', (chunk: Buffer) => parts.push(chunk));
      local.on('end', () => resolve(Buffer.concat(parts)));
    });
    remote.pipe(remote);
    local.end(payload);
    assert.equal(sha256(await echoed), sha256(payload));
    await waitFor(() => local.closed && remote.closed, 5000, 'both ends to close');
    return [new WeakRef(local), new WeakRef(remote)];
  }

  test(
    'a finished stream and the data its listeners hold are released at once, not kept until its open deadline',
    { timeout: 15_000 },
    async (t) => {
      const gc = collectGarbage();
      if (!gc) {
        t.skip('no way to force a garbage collection here');
        return;
      }
      const w = await watchedServer(t, { openTimeout: 30_000 });
      const accepted = new Promise<MuxConnection>((resolve) => w.server.once('connection', resolve));
      const client = new MuxClient(w.port, HOST, { hello: { kind: 'hold' }, openTimeout: 30_000 });
      t.after(() => client.destroy());
      const server = await withTimeout(accepted, 5000, 'the server to accept');
      const refs: WeakRef<MuxStream>[] = [];
      for (let k = 0; k < 3; k++) refs.push(...(await finishedStreams(client, server)));
      for (let k = 0; k < 5 && refs.some((r) => r.deref() !== undefined); k++) {
        await delay(20);
        gc();
      }
      assert.deepEqual(
        refs.map((r) => r.deref() === undefined),
        refs.map(() => true),
        'every finished stream was collected while the connection stays open',
      );
      assert.equal(client.ready, true);
    },
  );
});

const FUZZ_MS = 6000;
const MiB = 1024 * 1024;

describe('fuzzing a live server', () => {
  test(
    'random, mutated and flooding clients never take the server down, and a good client keeps passing its hash checks',
    { timeout: 45_000 },
    async (t) => {
      const context = `seed ${SEED} (replay with FUZZ_SEED=${SEED})`;
      const escaped = installProcessWatch(t);
      const w = await watchedServer(t);
      const failures: string[] = [];
      let stopGood = false;
      let sessions = 0;
      const passedAt: number[] = []; // how many fuzz sessions had run at each passed check

      const client = await goodClient(w.port, failures);
      t.after(() => client.destroy());
      await waitFor(() => w.good !== null, 5000, 'the server to see the good client');
      const goodCon = w.good!;

      // Warm up, then take the heap baseline.
      for (let k = 0; k < 20; k++) await checkOnce(client, 64 * 1024);
      const gc = collectGarbage();
      const baseline = await settledMemory(gc);

      const goodLoop = async (): Promise<void> => {
        while (!stopGood) {
          try {
            await withTimeout(checkOnce(client, 1024 + Math.floor(Math.random() * 127 * 1024)), 10_000, 'an echo check');
            passedAt.push(sessions);
          } catch (err) {
            failures.push(`check failed: ${err instanceof Error ? err.message : String(err)}`);
            return;
          }
        }
      };
      const good = Promise.all([goodLoop(), goodLoop(), goodLoop(), goodLoop()]);

      const deadline = Date.now() + FUZZ_MS;
      const names = Object.keys(SESSIONS);
      const worker = async (index: number): Promise<void> => {
        const local = new Rng(SEED + 7919 * (index + 1));
        while (Date.now() < deadline) {
          const name = local.pick(names);
          try {
            const complaint = await withTimeout(SESSIONS[name](local, w.port), 10_000, `fuzz session ${name}`);
            if (complaint) failures.push(`${name}: ${complaint} (${context})`);
          } catch (err) {
            failures.push(`fuzz session ${name} itself failed (${context}): ${err instanceof Error ? err.message : String(err)}`);
          }
          sessions++;
        }
      };
      const flooder = async (): Promise<void> => {
        // Two floods during the run: 100,000 OPENs on an echo connection, read and on a quiet one.
        for (const kind of ['echo', 'quiet'] as const) {
          const peer = await RawPeer.connect(w.port);
          await peer.write(helloBytes(kind === 'quiet' ? null : { kind }));
          await openFlood(peer, 100_000);
          await Promise.race([
            peer.closed,
            waitFor(() => peer.sink.count(FrameType.REFUSE) >= 100_000 - 32, 10_000, 'refusals').catch(() => {}),
          ]);
          if (peer.decodeError)
            failures.push(
              `the server's answer to a flood did not decode: ${peer.decodeError instanceof Error ? peer.decodeError.message : 'not an Error'}`,
            );
          peer.destroy();
          sessions++;
        }
      };
      await Promise.all([...Array.from({ length: 6 }, (_, i) => worker(i)), flooder()]);
      const totalSessions = sessions;
      stopGood = true;
      await withTimeout(good, 15_000, 'the good client to finish its last checks');

      // Every bad connection goes; the good one stays.
      await waitFor(() => w.server.connectionCount === 1, 10_000, `only the good client to remain (${w.server.connectionCount} left)`);
      assert.equal(goodCon.ready, true, 'the good connection is still up');
      assert.equal(client.ready, true);
      for (let k = 0; k < 5; k++) await checkOnce(client, 100 * 1024); // and still works

      assert.deepEqual(escaped, [], `nothing escaped to the process (${context})`);
      assert.deepEqual(failures, [], context);
      assert.deepEqual(w.mismatches, [], `the server's echo never saw altered bytes on a checked stream (${context})`);
      assertTyped(w.errors, context);
      assert.ok(passedAt.length >= 10, `the good client passed ${passedAt.length} checks`);
      // Throughout: checks passed early in the fuzz and late in it, not just around it.
      assert.ok(totalSessions > 20, `the fuzz ran ${totalSessions} sessions`);
      assert.ok(
        passedAt.some((n) => n > 0 && n < totalSessions / 3),
        `a check passed in the first third of the fuzz (${context})`,
      );
      assert.ok(
        passedAt.some((n) => n > (2 * totalSessions) / 3 && n <= totalSessions),
        `a check passed in the last third of the fuzz (${context})`,
      );

      // The heap, and the Buffers outside it (stream data lives there), return near the baseline.
      const after = await settledMemory(gc);
      const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;
      const memory = `heap ${mib(baseline.heap)} -> ${mib(after.heap)}, buffers ${mib(baseline.external)} -> ${mib(after.external)} (gc ${gc ? 'forced' : 'not available'})`;
      assert.ok(after.heap < baseline.heap + 64 * MiB, `heap back near its baseline: ${memory}`);
      assert.ok(after.external < baseline.external + 64 * MiB, `buffer memory back near its baseline: ${memory}`);
      t.diagnostic(
        `${context}: ${totalSessions} fuzz sessions, ${passedAt.length} good checks, ${w.errors.length} typed server-side errors; ${memory}`,
      );
    },
  );
});
