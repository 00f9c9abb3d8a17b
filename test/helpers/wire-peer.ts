/**
 * A hand-driven muxer client on a plain socket, for tests that need a peer that misbehaves
 * (ignores limits, never answers, sends oversize frames) and need to see exactly which
 * frames the library put on the wire. Every frame the server sends is decoded and logged;
 * PINGs are answered unless the test says otherwise.
 */
import * as net from 'node:net';
import { FrameDecoder, type FrameSink } from '../../src/codec/decoder';
import { decodeCodeAndReason, encodeCodeAndReason, encodeFrame } from '../../src/codec/encode';
import type { TestContext } from 'node:test';
import { DEFAULTS, type JsonValue, type MuxConnection, type MuxServer, type MuxServerOptions } from '../../src/index';
import { Flag, FrameType, MAGIC } from '../../src/protocol/constants';
import { encodeSettings, type PeerSettings } from '../../src/protocol/hello';
import { nextEvent, withTimeout } from './async';
import { HOST, startServer, stopServer } from './mux';

export interface WireFrame {
  type: FrameType;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface WirePeerOptions {
  /** What this peer announces in its HELLO (defaults: the library's DEFAULTS, hello null). */
  settings?: Partial<PeerSettings>;
  /** Answer the server's PINGs (default true). False plays a peer that went silent. */
  answerPings?: boolean;
  /** Answer PINGs this many milliseconds late (default 0): a long path, as the server measures it. */
  pingDelayMs?: number;
}

type Waiter = { match: (frame: WireFrame) => boolean; resolve: (frame: WireFrame) => void };

export class WirePeer implements FrameSink {
  /** Every frame received, in order (the server's HELLO first). */
  readonly frames: WireFrame[] = [];
  /** Set if the server sent bytes our decoder rejects. */
  decodeError: Error | null = null;
  answerPings: boolean;
  pingDelayMs: number;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;
  private readonly decoder: FrameDecoder;
  private readonly pieces: Buffer[] = [];
  private waiters: Waiter[] = [];
  private pingCounter = 0n;

  constructor(
    readonly socket: net.Socket,
    options: WirePeerOptions = {},
  ) {
    this.answerPings = options.answerPings ?? true;
    this.pingDelayMs = options.pingDelayMs ?? 0;
    this.decoder = new FrameDecoder(this, { maxFrameSize: 16 * 1024 * 1024, maxMetaBytes: 16 * 1024 * 1024, maxHelloBytes: 1024 * 1024 });
    socket.on('error', () => {}); // a reset by the server is an expected outcome here
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (err) {
        this.decodeError = err as Error;
      }
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  // ---- FrameSink -------------------------------------------------------------------------

  onData(streamId: number, flags: number, piece: Buffer, last: boolean): void {
    this.pieces.push(Buffer.from(piece));
    if (!last) return;
    const payload = Buffer.concat(this.pieces.splice(0));
    this.record({ type: FrameType.DATA, flags, streamId, payload });
  }

  onControl(type: FrameType, flags: number, streamId: number, payload: Buffer): void {
    const frame = { type, flags, streamId, payload: Buffer.from(payload) };
    if (type === FrameType.PING && !(flags & Flag.ACK) && this.answerPings) {
      const answer = encodeFrame(FrameType.PING, Flag.ACK, 0, payload);
      if (this.pingDelayMs > 0) setTimeout(() => this.send(answer), this.pingDelayMs);
      else this.send(answer);
    }
    this.record(frame);
  }

  onOversizeOpen(): void {
    this.decodeError = new Error('the server sent an OPEN larger than 16 MiB');
  }

  private record(frame: WireFrame): void {
    this.frames.push(frame);
    const waiting = this.waiters;
    this.waiters = [];
    for (const waiter of waiting) {
      if (waiter.match(frame)) waiter.resolve(frame);
      else this.waiters.push(waiter);
    }
  }

  // ---- reading what arrived --------------------------------------------------------------

  /** The first frame (already received or still to come) that `match` accepts, within `ms`. */
  frame(match: (frame: WireFrame) => boolean, ms = 5000, what = 'a frame from the server'): Promise<WireFrame> {
    const seen = this.frames.find(match);
    if (seen) return Promise.resolve(seen);
    return withTimeout(new Promise<WireFrame>((resolve) => this.waiters.push({ match, resolve })), ms, what);
  }

  /** The first frame of `type` on `streamId`. */
  frameOf(type: FrameType, streamId: number, ms = 5000): Promise<WireFrame> {
    return this.frame((f) => f.type === type && f.streamId === streamId, ms, `${FrameType[type]} on stream ${streamId}`);
  }

  /** Received frames of `type` (optionally on `streamId`). */
  framesOf(type: FrameType, streamId?: number): WireFrame[] {
    return this.frames.filter((f) => f.type === type && (streamId === undefined || f.streamId === streamId));
  }

  /**
   * A round trip: sends a PING and waits for its answer. Whatever the server queued before
   * it saw this PING has arrived by then (it writes in order).
   */
  async sync(ms = 5000): Promise<void> {
    const payload = Buffer.alloc(8);
    payload.writeBigUInt64BE(0xfeed0000n + this.pingCounter++);
    this.send(encodeFrame(FrameType.PING, 0, 0, payload));
    await this.frame((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.equals(payload), ms, 'the PING answer');
  }

  // ---- writing ----------------------------------------------------------------------------

  send(...frames: Buffer[]): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.write(Buffer.concat(frames));
  }

  open(streamId: number, meta: JsonValue = null): void {
    this.send(encodeFrame(FrameType.OPEN, 0, streamId, Buffer.from(JSON.stringify(meta))));
  }

  accept(streamId: number): void {
    this.send(encodeFrame(FrameType.ACCEPT, 0, streamId));
  }

  data(streamId: number, payload: Buffer | string, fin = false): void {
    this.send(encodeFrame(FrameType.DATA, fin ? Flag.FIN : 0, streamId, Buffer.from(payload)));
  }

  reset(streamId: number, code: number, reason = ''): void {
    this.send(encodeFrame(FrameType.RESET, 0, streamId, encodeCodeAndReason(code, reason)));
  }
}

/** The code and reason of a GO_AWAY, REFUSE or RESET frame. */
export function codeOf(frame: WireFrame): { code: number; reason: string } {
  return decodeCodeAndReason(frame.payload);
}

/** The bytes a client sends first: the magic and a HELLO with `settings`. */
export function clientPreface(settings: Partial<PeerSettings> = {}): Buffer {
  const full: PeerSettings = {
    initialWindow: DEFAULTS.initialWindow,
    connectionWindow: DEFAULTS.connectionWindow,
    maxFrameSize: DEFAULTS.maxFrameSize,
    maxStreams: DEFAULTS.maxStreams,
    maxMetaBytes: DEFAULTS.maxMetaBytes,
    hello: null,
    ...settings,
  };
  return Buffer.concat([MAGIC, encodeFrame(FrameType.HELLO, 0, 0, encodeSettings(full))]);
}

/** Connects to `port` on loopback and sends the preface; does not wait for the answer. */
export async function connectWirePeer(port: number, options: WirePeerOptions = {}): Promise<WirePeer> {
  const socket = net.connect(port, HOST);
  const peer = new WirePeer(socket, options);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    }),
    5000,
    'a raw connection',
  );
  peer.send(clientPreface(options.settings));
  return peer;
}

/** Connects, sends the preface, and waits for the server's HELLO: a ready raw client. */
export async function handshakenWirePeer(port: number, options: WirePeerOptions = {}): Promise<WirePeer> {
  const peer = await connectWirePeer(port, options);
  const first = await peer.frame(() => true, 5000, "the server's HELLO");
  if (first.type !== FrameType.HELLO) throw new Error(`the server answered with ${FrameType[first.type]}, not HELLO`);
  return peer;
}

export { encodeFrame, FrameType, Flag };

/** A server on loopback, destroyed after the test. */
export async function serveForTest(t: TestContext, options: MuxServerOptions = {}): Promise<{ server: MuxServer; port: number }> {
  const started = await startServer(options);
  t.after(() => stopServer(started.server));
  return started;
}

/** A handshaken raw client on `server`, and the server's side of its connection; destroyed after the test. */
export async function rawClientForTest(
  t: TestContext,
  server: MuxServer,
  port: number,
  options: WirePeerOptions = {},
): Promise<{ peer: WirePeer; con: MuxConnection }> {
  const connection = nextEvent(server, 'connection');
  const peer = await handshakenWirePeer(port, options);
  t.after(() => peer.socket.destroy());
  const [con] = (await connection) as [MuxConnection];
  return { peer, con };
}
