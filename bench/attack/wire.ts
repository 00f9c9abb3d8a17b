/**
 * A minimal attacker's end of a connection: a raw socket that speaks the wire protocol
 * through the library's own pure codec (the encoder, the decoder, the constants), so that
 * every frame it sends is one a real peer could send and the server must handle.
 *
 * It answers PINGs (unless told not to), keeps the send credit the server granted per stream
 * and, when the server announces one (protocol version 2), for the connection, so attacks
 * that stay within the rules can, and it counts everything it sends and everything the
 * server answers into the attack's {@link Tally}. It never keeps received payloads: the
 * attacker's memory must not be what runs out.
 */
import * as net from 'node:net';
import { FrameDecoder, type FrameSink } from '../../src/codec/decoder';
import { decodeCodeAndReason, encodeCodeAndReason, encodeFrame, encodeHeader, encodeWindowUpdate } from '../../src/codec/encode';
import { DEFAULTS } from '../../src/config';
import { Flag, FrameType, MAGIC, MAX_STREAM_ID } from '../../src/protocol/constants';
import { encodeSettings, type PeerSettings } from '../../src/protocol/hello';
import type { Tally } from './report';
import { drained, sleep, within } from './timing';

/** Every attack runs on loopback only. */
export const HOST = '127.0.0.1';

/** The attacker's HELLO: the library's defaults plus the connection window of protocol version 2. */
export type AttackerHello = PeerSettings & { connectionWindow: number };

/**
 * The one place the attacker's HELLO settings are made. `connectionWindow` is required from
 * protocol version 2 on (the DATA bytes the attacker accepts on all streams together before
 * it grants more on stream 0); a version-1 server ignores the extra field, so the harness
 * runs unchanged before and after that change.
 */
export function attackerHello(): AttackerHello {
  const { initialWindow, maxFrameSize, maxStreams, maxMetaBytes } = DEFAULTS;
  return { initialWindow, maxFrameSize, maxStreams, maxMetaBytes, hello: null, connectionWindow: 16 * 1024 * 1024 };
}

/** The magic and a HELLO with `settings`: what a client sends first. */
export function preface(settings: object = attackerHello()): Buffer {
  return Buffer.concat([MAGIC, encodeFrame(FrameType.HELLO, 0, 0, encodeSettings(settings as PeerSettings))]);
}

/** The server's limits, from its HELLO. */
export interface ServerLimits {
  initialWindow: number;
  maxFrameSize: number;
  maxStreams: number;
  maxMetaBytes: number;
  /** The server's connection window (protocol version 2); null when it announces none. */
  connectionWindow: number | null;
}

/**
 * How the attacker reads its socket once the handshake is done: `all` as fast as the server
 * sends, `slow` one chunk every {@link SLOW_READ_MS}, `none` never (until {@link WirePeer.drainAtEnd}).
 */
export type ReadMode = 'all' | 'slow' | 'none';

/** A slow reader takes one chunk (at most 64 KiB) this often. */
export const SLOW_READ_MS = 100;

export interface PeerOptions {
  tally: Tally;
  /** Aborts the handshake wait; the attack stops with it. */
  signal: AbortSignal;
  read?: ReadMode;
  /** Answer the server's PINGs (default true). */
  answerPings?: boolean;
  /** Give up on a server that has not sent its HELLO within this (default 10 s). */
  handshakeTimeoutMs?: number;
}

// Every attacker socket, so that run.ts can cut whatever an attack left behind.
const liveSockets = new Set<net.Socket>();

/** Destroys every attacker socket still open; returns how many there were. */
export function destroyAllSockets(): number {
  const count = liveSockets.size;
  for (const socket of liveSockets) socket.destroy();
  liveSockets.clear();
  return count;
}

/** A TCP connection to `port` on loopback, counted in the registry {@link destroyAllSockets} empties. */
export function rawSocket(port: number): net.Socket {
  const socket = net.connect({ host: HOST, port });
  liveSockets.add(socket);
  socket.once('close', () => liveSockets.delete(socket));
  socket.on('error', () => {}); // a reset by the server is an outcome to count, not a crash
  return socket;
}

// Grant the server more window once this much of it has been read: half a stream window,
// or half the connection window we announced (yamux's rule, as the library itself does).
const STREAM_GRANT_STEP = attackerHello().initialWindow / 2;
const CONNECTION_GRANT_STEP = attackerHello().connectionWindow / 2;

/** One attacker connection. Made by {@link connectPeer}. */
export class WirePeer implements FrameSink {
  /** The server's limits; set once its HELLO has arrived. */
  server: ServerLimits | null = null;
  /** The server's GO_AWAY, if it sent one. */
  goAway: { code: number; reason: string } | null = null;
  closed = false;
  closedByServer = false;
  /** Resolves once the socket has closed. */
  readonly whenClosed: Promise<void>;
  /** Send credit the server granted the connection (Infinity before version 2). */
  connectionCredit = Infinity;

  private readonly decoder: FrameDecoder;
  private readonly tally: Tally;
  private readonly read: ReadMode;
  private readonly answerPings: boolean;
  private connectedAt = 0;
  private closedByUs = false;
  private draining = false;
  private slowReader: NodeJS.Timeout | null = null;
  private nextId = 1;
  /** Our streams the server has not refused or reset, with their send credit. */
  private readonly credit = new Map<number, number>();
  /** DATA bytes read per stream and for the connection since we last granted them back. */
  private readonly unacked = new Map<number, number>();
  private connectionUnacked = 0;
  private wake: (() => void)[] = [];
  private helloArrived: (() => void) | null = null;

  constructor(
    readonly socket: net.Socket,
    options: PeerOptions,
  ) {
    this.tally = options.tally;
    this.read = options.read ?? 'all';
    this.answerPings = options.answerPings ?? true;
    // Limits far above the server's: the attacker must not be the one that gives up.
    this.decoder = new FrameDecoder(this, { maxFrameSize: 16 * 1024 * 1024, maxMetaBytes: 16 * 1024 * 1024, maxHelloBytes: 1024 * 1024 });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onChunk(chunk));
    this.whenClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('close', () => this.onClose());
  }

  // ---- the handshake ------------------------------------------------------------------------

  /** Connects, sends the preface and waits for the server's HELLO: true once it arrived. */
  async handshake(signal: AbortSignal, timeoutMs: number): Promise<boolean> {
    const deadline = within(signal, timeoutMs);
    const connected = await new Promise<boolean>((resolve) => {
      const finish = (ok: boolean): void => {
        this.socket.off('connect', onConnect);
        deadline.removeEventListener('abort', onFail);
        resolve(ok);
      };
      const onConnect = (): void => finish(true);
      const onFail = (): void => finish(false);
      if (deadline.aborted) return resolve(false);
      this.socket.once('connect', onConnect);
      void this.whenClosed.then(onFail);
      deadline.addEventListener('abort', onFail, { once: true });
    });
    if (!connected) return false;
    this.connectedAt = performance.now();
    this.tally.connections++;
    this.write(preface(), 1);
    const hello = new Promise<void>((resolve) => (this.helloArrived = resolve));
    await Promise.race([hello, this.whenClosed, sleep(timeoutMs, deadline)]);
    this.helloArrived = null;
    if (this.server === null || this.closed) return false;
    if (this.read !== 'all') this.socket.pause();
    if (this.read === 'slow') this.slowReader = setInterval(() => this.socket.resume(), SLOW_READ_MS);
    return true;
  }

  // ---- sending ------------------------------------------------------------------------------

  /**
   * Writes `chunks` (which hold `frames` whole frames) in one go; false when the socket
   * wants a {@link ready} wait first, or is gone.
   */
  write(chunks: Buffer | Buffer[], frames: number): boolean {
    if (this.closed || this.socket.destroyed) return false;
    const list = Array.isArray(chunks) ? chunks : [chunks];
    this.socket.cork();
    for (const chunk of list) {
      this.socket.write(chunk);
      this.tally.bytesSent += chunk.length;
    }
    this.socket.uncork();
    this.tally.framesSent += frames;
    return !this.socket.writableNeedDrain;
  }

  /** Resolves true once the socket takes more, false if it closed or `signal` aborted. */
  ready(signal: AbortSignal): Promise<boolean> {
    return drained(this.socket, signal);
  }

  /** Sends an OPEN with the JSON `meta` bytes; returns the stream id, or null when ids ran out. */
  open(meta: Buffer): number | null {
    const id = this.nextId;
    if (id > MAX_STREAM_ID) return null;
    this.nextId += 2;
    this.credit.set(id, this.server!.initialWindow);
    this.tally.streams++;
    this.write([encodeHeader(FrameType.OPEN, 0, id, meta.length), meta], 1);
    return id;
  }

  /** The id the next {@link open} will use (attacks that build frames themselves take ids here). */
  takeId(): number | null {
    const id = this.nextId;
    if (id > MAX_STREAM_ID) return null;
    this.nextId += 2;
    this.tally.streams++;
    return id;
  }

  /** Sends a RESET on `id` and forgets its credit. */
  reset(id: number, code: number, reason = ''): void {
    this.credit.delete(id);
    this.write(encodeFrame(FrameType.RESET, 0, id, encodeCodeAndReason(code, reason)), 1);
  }

  /** True while the server has neither refused nor reset our stream `id`. */
  hasStream(id: number): boolean {
    return this.credit.has(id);
  }

  /** Our streams that the server has neither refused nor reset. */
  get openStreams(): number {
    return this.credit.size;
  }

  /** Bytes we may still send on `id` (0 for a stream the server closed). */
  creditOf(id: number): number {
    return Math.min(this.credit.get(id) ?? 0, this.connectionCredit);
  }

  /** Counts `bytes` of DATA sent on `id` against its credit and the connection's. */
  spend(id: number, bytes: number): void {
    const left = this.credit.get(id);
    if (left !== undefined) this.credit.set(id, left - bytes);
    this.connectionCredit -= bytes;
    this.tally.dataBytesSent += bytes;
  }

  /**
   * Resolves at the next change that may let a waiting attack go on (credit granted, a
   * stream refused or reset, a GO_AWAY, the close), after `ms`, or when `signal` aborts.
   */
  changed(signal: AbortSignal, ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return Promise.race([new Promise<void>((resolve) => this.wake.push(resolve)), sleep(ms, signal)]);
  }

  // ---- the end ------------------------------------------------------------------------------

  /**
   * For a peer that did not read: reads (and drops) what the server sent, for up to `ms`, so
   * that a GO_AWAY waiting behind data is seen and a close is noticed. Grants nothing more.
   */
  async drainAtEnd(ms: number): Promise<void> {
    if (this.closed) return;
    this.draining = true;
    if (this.slowReader) clearInterval(this.slowReader);
    this.slowReader = null;
    this.socket.resume();
    await Promise.race([this.whenClosed, sleep(ms)]);
  }

  /** Closes from our side (not counted as the server's doing). */
  destroy(): void {
    if (!this.closed) this.closedByUs = true;
    this.socket.destroy();
  }

  // ---- receiving ----------------------------------------------------------------------------

  private onChunk(chunk: Buffer): void {
    this.tally.bytesReceived += chunk.length;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.tally.note(`could not decode what the server sent: ${(err as Error).message}`);
      this.destroy();
      return;
    }
    // A slow reader takes one chunk per tick; the timer resumes it.
    if (this.read === 'slow' && !this.draining && this.server !== null) this.socket.pause();
  }

  /** @internal FrameSink */
  onData(streamId: number, flags: number, piece: Buffer, last: boolean): void {
    this.tally.dataBytesReceived += piece.length;
    if (last) this.tally.framesReceived++;
    if (this.draining || this.closed) return;
    // What we read we grant back, as an obedient receiver does: the server's echo goes on.
    if (flags & Flag.FIN && last) {
      this.unacked.delete(streamId);
    } else if (piece.length > 0) {
      const unacked = (this.unacked.get(streamId) ?? 0) + piece.length;
      if (unacked >= STREAM_GRANT_STEP) {
        this.unacked.delete(streamId);
        this.grant(streamId, unacked);
      } else this.unacked.set(streamId, unacked);
    }
    if (this.server?.connectionWindow == null) return; // version 1: no connection window to grant
    this.connectionUnacked += piece.length;
    if (this.connectionUnacked >= CONNECTION_GRANT_STEP) {
      this.grant(0, this.connectionUnacked);
      this.connectionUnacked = 0;
    }
  }

  /** @internal FrameSink */
  onControl(type: FrameType, flags: number, streamId: number, payload: Buffer): void {
    this.tally.framesReceived++;
    switch (type) {
      case FrameType.HELLO:
        return this.onHello(payload);
      case FrameType.PING:
        if (flags & Flag.ACK || !this.answerPings || this.draining) return;
        this.tally.pingsAnswered++;
        this.write(encodeFrame(FrameType.PING, Flag.ACK, 0, payload), 1);
        return;
      case FrameType.WINDOW_UPDATE: {
        const increment = payload.readUInt32BE(0);
        if (streamId === 0) this.connectionCredit += increment;
        else {
          const left = this.credit.get(streamId);
          if (left !== undefined) this.credit.set(streamId, left + increment);
        }
        return this.wakeUp();
      }
      case FrameType.GO_AWAY: {
        const { code, reason } = decodeCodeAndReason(payload);
        this.goAway = { code, reason };
        this.tally.goAway(code, reason);
        return this.wakeUp();
      }
      case FrameType.ACCEPT:
        this.tally.accepted++;
        return;
      case FrameType.REFUSE:
      case FrameType.RESET: {
        const { code } = decodeCodeAndReason(payload);
        if (type === FrameType.REFUSE) this.tally.refusal(code);
        else this.tally.reset(code);
        this.credit.delete(streamId);
        this.unacked.delete(streamId);
        return this.wakeUp();
      }
      default:
        return; // the echo server opens no streams; nothing else needs an answer
    }
  }

  /** @internal FrameSink */
  onOversizeOpen(): void {}

  private onHello(payload: Buffer): void {
    const settings = JSON.parse(payload.toString('utf8')) as Partial<ServerLimits>;
    this.server = {
      initialWindow: settings.initialWindow ?? DEFAULTS.initialWindow,
      maxFrameSize: settings.maxFrameSize ?? DEFAULTS.maxFrameSize,
      maxStreams: settings.maxStreams ?? DEFAULTS.maxStreams,
      maxMetaBytes: settings.maxMetaBytes ?? DEFAULTS.maxMetaBytes,
      connectionWindow: typeof settings.connectionWindow === 'number' ? settings.connectionWindow : null,
    };
    if (this.server.connectionWindow !== null) this.connectionCredit = this.server.connectionWindow;
    this.helloArrived?.();
  }

  private grant(streamId: number, increment: number): void {
    this.write(encodeWindowUpdate(streamId, increment), 1);
  }

  private wakeUp(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const resolve of waiting) resolve();
  }

  private onClose(): void {
    const wasConnected = this.connectedAt > 0;
    this.closed = true;
    if (this.slowReader) clearInterval(this.slowReader);
    this.slowReader = null;
    if (wasConnected && !this.closedByUs) {
      this.closedByServer = true;
      this.tally.closed(performance.now() - this.connectedAt, this.goAway !== null);
    }
    this.wakeUp();
  }
}

/**
 * A handshaken attacker connection to `port`, or null when the server cannot be reached or
 * did not send its HELLO in time (counted as a connect failure).
 */
export async function connectPeer(port: number, options: PeerOptions): Promise<WirePeer | null> {
  const peer = new WirePeer(rawSocket(port), options);
  if (await peer.handshake(options.signal, options.handshakeTimeoutMs ?? 10_000)) return peer;
  peer.destroy();
  options.tally.connectFailures++;
  return null;
}

/**
 * Decodes what the server sends on a socket that never completes a handshake (half-hellos):
 * a GO_AWAY is counted into `tally` and reported through `onGoAway`; nothing is answered.
 */
export function watchServer(socket: net.Socket, tally: Tally, onGoAway: () => void): void {
  const sink: FrameSink = {
    onData: () => {},
    onControl: (type, _flags, _streamId, payload) => {
      tally.framesReceived++;
      if (type !== FrameType.GO_AWAY) return;
      const { code, reason } = decodeCodeAndReason(payload);
      tally.goAway(code, reason);
      onGoAway();
    },
    onOversizeOpen: () => {},
  };
  const decoder = new FrameDecoder(sink, { maxFrameSize: 1024 * 1024, maxMetaBytes: 1024 * 1024, maxHelloBytes: 1024 * 1024 });
  socket.on('data', (chunk: Buffer) => {
    tally.bytesReceived += chunk.length;
    try {
      decoder.push(chunk);
    } catch {
      socket.destroy();
    }
  });
}
