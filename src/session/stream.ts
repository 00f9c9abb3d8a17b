import { Duplex, type Readable } from 'node:stream';
import { MEMORY_COSTS } from '../config';
import type { JsonValue } from '../meta';
import type { ArgumentsOf, ListenerOf } from '../events';
import { ChunkQueue } from '../codec/chunks';
import { MuxError } from '../errors';
import { WireErrorCode } from '../protocol/constants';
import { windowUpdateThreshold } from './window-tuning';

/** A stream whatever its meta type: what the connection's internals handle. */
export type AnyMuxStream = MuxStream<unknown>;

/**
 * What a stream needs from the connection that carries it. The session implements it; a
 * test can fake it, so the stream is testable without sockets.
 */
export interface StreamHost {
  /** The stream has bytes or a FIN the scheduler may send. */
  scheduleSend(stream: AnyMuxStream): void;
  /** Grant the peer `increment` more bytes of window on this stream. */
  sendWindowUpdate(stream: AnyMuxStream, increment: number): void;
  /** Abort the stream on the wire (RESET), unless it already ended there. */
  sendReset(stream: AnyMuxStream, code: WireErrorCode, reason: string): void;
  /** The stream is finished on the wire in both directions, or reset: forget its id. */
  streamClosed(stream: AnyMuxStream): void;
  /**
   * Received data left the stream: `bytes` of payload were read by the application or
   * dropped (the peer's connection credit may be given back), and `cost` bytes of the
   * memory account they were charged are free again.
   */
  releaseReceived(bytes: number, cost: number): void;
  /** Small pieces were queued while the reader waits: deliver them once this read is decoded. */
  deliverLater(stream: AnyMuxStream): void;
  /**
   * Window auto-tuning: the reader of `stream` consumed half of a `current`-byte window,
   * `elapsedMs` after the previous grant. Returns the window size to use from now on.
   */
  tuneWindow(stream: AnyMuxStream, current: number, elapsedMs: number): number;
  /** The stream's receive window changed size by `delta` bytes (it is already resized). */
  windowResized(stream: AnyMuxStream, delta: number): void;
  /** Bytes a `window`-byte receive window lets the reader consume before its update goes back. */
  windowUpdateThreshold(window: number): number;
}

/** Figures from {@link MuxStream.stats}. */
export interface StreamStats {
  /** Payload bytes handed to the connection for the peer. */
  bytesSent: number;
  /** Payload bytes received from the peer. */
  bytesReceived: number;
  /** Bytes this side may still send before the peer grants more window. */
  sendWindow: number;
  /** Bytes the peer may still send before this side grants more window. */
  receiveWindow: number;
  /** This side's current receive window size (grows with auto-tuning). */
  receiveWindowSize: number;
  /** Bytes written by the application, waiting for window or for the socket. */
  queuedBytes: number;
  /** Bytes received and waiting for the application to read them. */
  bufferedBytes: number;
}

/** Where a stream is in its open handshake. */
export const enum OpenState {
  /** We sent OPEN and wait for ACCEPT or REFUSE. */
  OPENING,
  /** The peer opened it; the application has not been given it yet. */
  PENDING,
  /** Accepted: both sides have it. */
  OPEN,
}

export interface StreamInit {
  id: number;
  meta: JsonValue;
  host: StreamHost;
  /** Our receive window: what the peer may send before we grant more. */
  recvWindow: number;
  /** The peer's receive window for this stream: what we may send before a WINDOW_UPDATE. */
  sendWindow: number;
  openState: OpenState;
  /** Bytes the writable side holds before `write()` returns false. */
  highWaterMark: number;
}

const noop = (): void => {};

/**
 * The events of a {@link MuxStream}: a `Duplex`'s. `error` carries a `MuxError` when the peer
 * or the connection caused it (`ERR_STREAM_RESET`, `ERR_CONNECTION_CLOSED`, a refused open),
 * and whatever error the application passed to `destroy(err)` otherwise.
 */
export interface MuxStreamEvents {
  /**
   * Bytes from the peer; strings after `setEncoding()` (a listener typed
   * `(chunk: Buffer | string)` fits both).
   */
  data: [chunk: Buffer];
  /** The peer ended its side: nothing more will arrive. */
  end: [];
  /** The stream is closed both ways, or destroyed. */
  close: [];
  /** A reset, a lost connection, a refused open, or `destroy(err)`. */
  error: [err: Error];
  /** `write()` may be called again after it returned false. */
  drain: [];
  /** `end()` was called and everything written has been handed to the connection. */
  finish: [];
  /** Data can be read with `read()`. */
  readable: [];
  /** Reading was paused. */
  pause: [];
  /** Reading was resumed. */
  resume: [];
  /** A readable stream started piping into this one. */
  pipe: [source: Readable];
  /** A readable stream stopped piping into this one. */
  unpipe: [source: Readable];
}

// Typed events (see events.ts). Declared here rather than through a generic helper:
// TypeScript can check them against Duplex's own overloads only for a concrete event map.
// A merged interface repeats the class's type parameter, used or not.
// eslint-disable-next-line @typescript-eslint/no-unused-vars
export interface MuxStream<Meta = JsonValue> {
  /** Adds `listener` for `event` (see {@link MuxStreamEvents} for each event's arguments). */
  on<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** Adds `listener` for the next `event` only. */
  once<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** The same as `on`. */
  addListener<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** Adds `listener` before the listeners already there. */
  prependListener<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** Adds `listener` for the next `event` only, before the listeners already there. */
  prependOnceListener<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** Removes `listener`. */
  off<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** The same as `off`. */
  removeListener<E extends string | symbol>(event: E, listener: ListenerOf<MuxStreamEvents, E>): this;
  /** Calls the listeners of `event` with `args`; true if it had any. */
  emit<E extends string | symbol>(event: E, ...args: ArgumentsOf<MuxStreamEvents, E>): boolean;
}

/**
 * One logical stream: a `Duplex` in both directions, with credit-based flow control.
 * Outgoing bytes wait in `outQueue` until the session's scheduler takes them as frames;
 * incoming bytes wait in `inQueue` until the reader asks for them, and only then is the
 * window given back to the peer.
 *
 * `Meta` is the type of {@link meta}: `JsonValue` unless the application names its shape
 * (`createStream<UpdateMeta>(meta)`, or a connection typed by its metas).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- see the interface above
export class MuxStream<Meta = JsonValue> extends Duplex {
  /** Stream id, the same number on both sides (odd: opened by the client, even: by the server). */
  readonly id: number;
  /** The JSON value the opener attached; deep-equal on both sides. */
  readonly meta: Meta;

  /** @internal */ openState: OpenState;
  /** @internal */ sendWindow: number;
  /** @internal */ queuedForSend = false;
  /** @internal */ finSent = false;
  /** @internal */ finReceived = false;
  /** @internal */ closedOnWire = false;
  /** @internal */ bytesSent = 0;
  /** @internal */ bytesReceived = 0;
  /** @internal What this stream and its meta cost the memory account (streams the peer opened). */
  chargedCost = 0;
  /** @internal The meta's part of {@link chargedCost}. */
  chargedMeta = 0;
  /** @internal Encoded meta of an OPEN not yet queued (opened during the handshake). */
  pendingMeta: Buffer | null = null;
  /** @internal Typed without `Meta`, which keeps `MuxStream<UpdateMeta>` assignable to `MuxStream`. */
  onAccepted: ((stream: AnyMuxStream) => void) | null = null;
  /** @internal */ onRefused: ((err: MuxError) => void) | null = null;

  private readonly host: StreamHost;
  private readonly outQueue = new ChunkQueue();
  private finPending = false;
  private finalCallback: ((err?: Error | null) => void) | null = null;
  private writeCallback: ((err?: Error | null) => void) | null = null;

  // Received data not yet pushed to the reader. Each entry is charged to the connection's
  // memory account at its bytes plus MEMORY_COSTS.piece; a view kept from a socket read at the
  // whole read it pins (at most twice its bytes, which the account's data share allows for);
  // and the copy buffer's spare room too.
  private inQueue: Buffer[] | null = null;
  private inBytes = 0;
  /** What the kept views in the queue pin beyond their own bytes. */
  private inPinned = 0;
  /** Room left in the copy buffer, charged until it is filled or the buffer is given up. */
  private stagingSpare = 0;
  // Small pieces are copied into one growing buffer, so a peer sending 1-byte frames costs
  // bytes, not a Buffer object per byte, and pins no socket read.
  private staging: Buffer | null = null;
  private stagingUsed = 0;
  /** True while the queue's last entry is the staging buffer's open region. */
  private stagingOpen = false;
  /** Payload pushed to the reader that it has not taken yet (the Readable's buffer), still charged. */
  private readableCharged = 0;
  private deliveryScheduled = false;
  /** False once everything received was released at close: the application owns it from then on. */
  private accounted = true;
  private readerWaiting = false;
  private recvWindowSize: number;
  private recvCredit: number;
  private unackedConsumed = 0;
  /** Consumed bytes that send a window update: set at each update, as the path becomes known. */
  private updateAfter: number;
  private consumedSinceTune = 0;
  private lastTuneAt = performance.now();

  /** @internal */
  constructor(init: StreamInit) {
    super({ allowHalfOpen: true, writableHighWaterMark: init.highWaterMark, decodeStrings: true });
    this.id = init.id;
    this.meta = init.meta as Meta;
    this.host = init.host;
    this.openState = init.openState;
    this.sendWindow = init.sendWindow;
    this.recvWindowSize = init.recvWindow;
    this.recvCredit = init.recvWindow;
    this.updateAfter = windowUpdateThreshold(init.recvWindow, false);
  }

  /** Bytes this side may still receive before it must grant more window. */
  get receiveWindow(): number {
    return this.recvCredit;
  }

  /** Per-stream figures: bytes each way and the current windows. */
  stats(): StreamStats {
    return {
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      sendWindow: this.sendWindow,
      receiveWindow: this.recvCredit,
      receiveWindowSize: this.recvWindowSize,
      queuedBytes: this.outQueue.bytes,
      bufferedBytes: this.inBytes,
    };
  }

  /** Bytes written by the application and not yet handed to the connection. */
  get queuedBytes(): number {
    return this.outQueue.bytes;
  }

  // ---- writable side -------------------------------------------------------------------

  /** @internal Duplex implementation. */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.enqueue(chunk);
    this.afterEnqueue(callback);
  }

  /** @internal Duplex implementation. */
  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    for (const { chunk } of chunks) this.enqueue(chunk);
    this.afterEnqueue(callback);
  }

  /** @internal Duplex implementation. */
  override _final(callback: (err?: Error | null) => void): void {
    if (this.closedOnWire) return callback();
    this.finPending = true;
    this.finalCallback = callback;
    this.host.scheduleSend(this);
  }

  private enqueue(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.outQueue.push(chunk);
  }

  // Accept more writes at once while the queue is under the high-water mark, so Writable's
  // buffering (and write() === false) starts only when the peer's window holds us back.
  private afterEnqueue(callback: (err?: Error | null) => void): void {
    if (this.closedOnWire) {
      this.outQueue.clear();
      return callback();
    }
    if (this.outQueue.bytes > 0) this.host.scheduleSend(this);
    if (this.outQueue.bytes <= this.writableHighWaterMark) callback();
    else this.writeCallback = callback;
  }

  /** @internal True when the scheduler could send something now. */
  hasSendable(): boolean {
    if (this.closedOnWire || this.finSent) return false;
    if (this.outQueue.bytes > 0) return this.sendWindow > 0;
    return this.finPending;
  }

  /**
   * @internal Takes the next DATA frame's payload, at most `limit` bytes and within the
   * send window. Returns null when nothing can go now. Sets `lastTakeFin` when the frame
   * must carry FIN. Writes coalesced into one payload are copied into `scratch` if it fits.
   */
  takeFrame(limit: number, scratch?: Buffer): Buffer | null {
    const size = Math.min(limit, this.sendWindow, this.outQueue.bytes);
    if (size === 0 && !(this.finPending && this.outQueue.bytes === 0 && !this.finSent)) return null;
    // Many small writes become one frame: the copy in take() is what coalesces them.
    const payload = size === 0 ? EMPTY : this.outQueue.take(size, scratch);
    this.sendWindow -= size;
    this.bytesSent += size;
    this.lastTakeFin = this.finPending && this.outQueue.bytes === 0;
    if (this.writeCallback !== null && this.outQueue.bytes <= this.writableHighWaterMark) {
      const callback = this.writeCallback;
      this.writeCallback = null;
      callback();
    }
    return payload;
  }

  /** @internal Set by {@link takeFrame}: the frame just taken ends our side of the stream. */
  lastTakeFin = false;

  /** @internal The scheduler wrote our FIN. */
  onFinSent(): void {
    this.finSent = true;
    this.finPending = false;
    const callback = this.finalCallback;
    this.finalCallback = null;
    if (callback) callback();
    if (this.finReceived) this.markClosedOnWire();
  }

  /** @internal The peer granted more window. */
  onWindowUpdate(increment: number): void {
    this.sendWindow += increment;
    if (this.hasSendable()) this.host.scheduleSend(this);
  }

  // ---- readable side -------------------------------------------------------------------

  /** @internal Duplex implementation. */
  override _read(): void {
    this.readerWaiting = true;
    this.drainQueue();
  }

  /**
   * Readable's `read()`, which every way of consuming a stream goes through (flowing mode
   * included): what the reader took leaves the memory account, and its connection credit
   * goes back to the peer.
   */
  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    if (this.readableCharged !== 0) this.settleReadable();
    return chunk;
  }

  private drainQueue(): void {
    const queue = this.inQueue;
    if (queue !== null) {
      while (queue.length > 0 && this.readerWaiting) {
        const chunk = queue.shift()!;
        if (queue.length === 0) this.stagingOpen = false;
        this.inBytes -= chunk.length;
        let pinned = 0;
        if (this.inPinned !== 0 && keptViews.has(chunk)) {
          pinned = chunk.buffer.byteLength - chunk.length;
          this.inPinned -= pinned;
        }
        this.deliver(chunk, chunk.length + pinned + MEMORY_COSTS.piece);
      }
      if (queue.length === 0) {
        this.inQueue = null;
        // The copy buffer's leftover room is no longer charged; the next pieces still fill it,
        // charged as they come, so small pushes share one buffer instead of pinning one each.
        if (this.stagingSpare !== 0 && this.accounted) this.host.releaseReceived(0, this.stagingSpare);
        this.stagingSpare = 0;
      }
    }
    if (this.inQueue === null && this.finReceived && this.readerWaiting) this.push(null);
  }

  /**
   * @internal Payload bytes from the peer; the session has checked them against both windows.
   * `continued`: the piece carries on a frame whose first bytes came in an earlier piece.
   * Returns what they cost the connection's memory account.
   */
  onData(piece: Buffer, continued = false): number {
    const size = piece.length;
    const kept = size >= MEMORY_COSTS.copyBelow && size * 2 >= piece.buffer.byteLength;
    // Small pieces staged earlier in this read go first, while the credit still matches what
    // was delivered; then this one need not wait in the queue behind them (a bulk read is the
    // tail of one frame, a header, and most of the next).
    if (kept && this.readerWaiting && this.inQueue !== null && !this.destroyed) {
      this.drainQueue();
      if (!this.accounted) {
        // A 'data' handler destroyed the stream: the piece is dropped like late data, and its
        // connection credit goes straight back (the stream no longer holds anything).
        this.host.releaseReceived(size, 0);
        return 0;
      }
    }
    this.recvCredit -= size;
    this.bytesReceived += size;
    if (kept) {
      // A large piece is kept as a view of the socket read: it pins that read, at most twice its bytes.
      const pinned = piece.buffer.byteLength - size;
      const cost = size + pinned + MEMORY_COSTS.piece;
      if (this.readerWaiting && this.inQueue === null) {
        this.deliver(piece, cost);
        return cost;
      }
      this.stagingOpen = false;
      this.enqueueReceived(piece);
      if (pinned !== 0) {
        keptViews.add(piece);
        this.inPinned += pinned;
      }
      return cost;
    }
    if (continued && this.readerWaiting && this.inQueue === null) {
      // The rest of a frame begun in an earlier read (bulk frames straddle reads): there is
      // nothing to batch it with, so a waiting reader gets an exact copy now, unstaged.
      const cost = size + MEMORY_COSTS.piece;
      this.deliver(Buffer.from(piece), cost);
      return cost;
    }
    const cost = this.stage(piece);
    if (this.readerWaiting && !this.deliveryScheduled) {
      this.deliveryScheduled = true;
      this.host.deliverLater(this);
    }
    return cost;
  }

  /** @internal The session finished decoding a read: push what small pieces were staged. */
  deliverStaged(): void {
    this.deliveryScheduled = false;
    if (this.readerWaiting && !this.destroyed) this.drainQueue();
  }

  private enqueueReceived(chunk: Buffer): void {
    if (this.inQueue === null) this.inQueue = [];
    this.inQueue.push(chunk);
    this.inBytes += chunk.length;
  }

  /** Copies a small piece behind the previous ones; returns what that cost the account. */
  private stage(piece: Buffer): number {
    const size = piece.length;
    if (this.inQueue === null && !this.readerWaiting) {
      // Alone in the queue of a stream nobody reads yet (a small message), an exact copy is cheapest.
      this.stagingOpen = false;
      this.enqueueReceived(Buffer.from(piece));
      return size + MEMORY_COSTS.piece;
    }
    let target = this.staging;
    let cost = 0;
    if (target === null || target.length - this.stagingUsed < size) {
      // Room grows with what waits, so a backlog of small pieces becomes few Buffer objects.
      const base = this.readerWaiting ? STAGING_MAX / 4 : STAGING_MIN;
      const room = Math.max(size, Math.min(STAGING_MAX, Math.max(base, this.inBytes, size * 2)));
      cost = room - this.stagingSpare; // the new room is charged; the old buffer's is given up
      target = this.staging = Buffer.allocUnsafeSlow(room);
      this.stagingUsed = 0;
      this.stagingSpare = room;
      this.stagingOpen = false;
    }
    // Bytes filling room already charged cost nothing more; beyond it, they cost themselves.
    const covered = Math.min(size, this.stagingSpare);
    this.stagingSpare -= covered;
    cost += size - covered;
    const start = this.stagingUsed;
    piece.copy(target, start);
    this.stagingUsed += size;
    this.inBytes += size;
    const queue = this.inQueue;
    if (this.stagingOpen && queue !== null) {
      // The new bytes extend the queue's last entry, which is this buffer's open region.
      queue[queue.length - 1] = target.subarray(this.stagingUsed - queue[queue.length - 1].length - size, this.stagingUsed);
      return cost;
    }
    this.inBytes -= size; // enqueueReceived counts them
    this.enqueueReceived(target.subarray(start, this.stagingUsed));
    this.stagingOpen = true;
    return cost + MEMORY_COSTS.piece;
  }

  /** @internal The peer half-closed: no more data will come. */
  onFin(): void {
    this.finReceived = true;
    if (this.inQueue === null && this.readerWaiting) this.push(null);
    if (this.finSent) this.markClosedOnWire();
  }

  private deliver(chunk: Buffer, cost: number): void {
    if (this.accounted) {
      // Until the reader takes them, the bytes stay charged; the piece's overhead does not follow them.
      if (cost > chunk.length) this.host.releaseReceived(0, cost - chunk.length);
      this.readableCharged += chunk.length;
      this.readerWaiting = this.push(chunk);
      this.settleReadable();
    } else {
      this.readerWaiting = this.push(chunk);
    }
    this.unackedConsumed += chunk.length;
    this.consumedSinceTune += chunk.length;
    if (this.finReceived || this.closedOnWire) return;
    // Batch window updates (window-tuning.ts, windowUpdateThreshold).
    if (this.unackedConsumed < this.updateAfter) return;
    const current = this.recvWindowSize;
    const half = current / 2;
    let size = current;
    // Tuning judges how fast half a window was consumed, however many grants that took.
    if (this.consumedSinceTune >= half) {
      const now = performance.now();
      const target = this.host.tuneWindow(this, current, now - this.lastTuneAt);
      this.lastTuneAt = now;
      this.consumedSinceTune = 0;
      // A window shrinks by granting less than was consumed (credit is never revoked), so
      // one update can shrink it by at most what was consumed.
      size = Math.max(target, current - this.unackedConsumed);
    }
    // What tops the peer's credit, plus what still waits unread, back up to the window. After
    // a reclaim the credit already granted can exceed the smaller window: nothing is granted
    // until the reader is back inside it.
    const increment = size - this.recvCredit - this.inBytes;
    this.unackedConsumed = 0;
    this.recvWindowSize = size;
    this.updateAfter = this.host.windowUpdateThreshold(size);
    if (size !== current) this.host.windowResized(this, size - current);
    if (increment <= 0) return;
    this.recvCredit += increment;
    this.host.sendWindowUpdate(this, increment);
  }

  /** What the reader has taken from the Readable's buffer since the last look leaves the account. */
  private settleReadable(): void {
    const taken = this.readableCharged - this.readableLength;
    if (taken <= 0) return;
    this.readableCharged -= taken;
    this.host.releaseReceived(taken, taken);
  }

  /** @internal Current receive window size (grows with auto-tuning). */
  get receiveWindowSize(): number {
    return this.recvWindowSize;
  }

  /** @internal Milliseconds since the window was last tuned (half of it consumed), at `now`. */
  windowIdleMs(now: number): number {
    return now - this.lastTuneAt;
  }

  /**
   * @internal Shrinks the receive window to `size` for the connection's budget. Credit the
   * peer holds stays valid; later grants are smaller until the window covers it again.
   */
  shrinkWindow(size: number, now: number): void {
    const current = this.recvWindowSize;
    if (size >= current) return;
    this.recvWindowSize = size;
    this.updateAfter = this.host.windowUpdateThreshold(size);
    this.consumedSinceTune = 0;
    this.lastTuneAt = now;
    this.host.windowResized(this, size - current);
  }

  // ---- open handshake and teardown -------------------------------------------------------

  /** @internal The peer accepted our OPEN. */
  onAccept(): void {
    if (this.openState !== OpenState.OPENING) return;
    this.openState = OpenState.OPEN;
    const accepted = this.onAccepted;
    this.onAccepted = null;
    this.onRefused = null;
    if (accepted) accepted(this);
  }

  /**
   * @internal Ends the stream because of the peer or the connection (RESET, REFUSE,
   * connection loss): nothing goes back on the wire. Emits `error` only where someone
   * listens, so an application without listeners cannot be crashed by its peer.
   */
  abort(err: MuxError): void {
    this.markClosedOnWire();
    this.failOpen(err);
    destroyQuietly(this, err);
  }

  /** @internal Duplex implementation. */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.closedOnWire) {
      const code = err instanceof MuxError ? err.wireCode : err ? WireErrorCode.INTERNAL_ERROR : WireErrorCode.CANCEL;
      this.host.sendReset(this, code, err ? err.message : '');
      this.markClosedOnWire();
    }
    this.failOpen(
      err instanceof MuxError
        ? err
        : new MuxError('ERR_STREAM_RESET', 'stream destroyed before it was accepted', { cause: err ?? undefined }),
    );
    this.releaseAllReceived();
    this.inQueue = null;
    this.inBytes = this.stagingSpare = this.inPinned = 0;
    this.staging = null;
    this.outQueue.clear();
    const pending = [this.writeCallback, this.finalCallback];
    this.writeCallback = null;
    this.finalCallback = null;
    for (const cb of pending) if (cb) cb(err);
    callback(err);
  }

  private failOpen(err: MuxError): void {
    const refused = this.onRefused;
    this.onAccepted = null;
    this.onRefused = null;
    if (refused && this.openState === OpenState.OPENING) refused(err);
  }

  private markClosedOnWire(): void {
    if (this.closedOnWire) return;
    this.closedOnWire = true;
    // The application may hold a finished stream with unread data for as long as it likes:
    // that is its memory now, no longer a debt of the connection.
    this.releaseAllReceived();
    this.host.streamClosed(this);
  }

  /** Frees everything received and still charged: the queue and what waits in the Readable. */
  private releaseAllReceived(): void {
    if (!this.accounted) return;
    this.accounted = false;
    const bytes = this.inBytes + this.readableCharged;
    const entries = this.inQueue === null ? 0 : this.inQueue.length;
    const cost = bytes + entries * MEMORY_COSTS.piece + this.stagingSpare + this.inPinned;
    this.readableCharged = 0;
    if (bytes !== 0 || cost !== 0) this.host.releaseReceived(bytes, cost);
  }
}

const EMPTY = Buffer.alloc(0);
/** Queued pieces that are views of a socket read, charged for the whole read they pin. */
const keptViews = new WeakSet<Buffer>();
// Copy buffers for small pieces start small (one byte costs little) and grow with the backlog.
const STAGING_MIN = 256;
const STAGING_MAX = 16 * 1024;

/**
 * Destroys `target` with `err` without ever turning the error into an uncaught exception:
 * a no-op listener takes it alongside any others (and `errored` is still set). It is added
 * even when listeners exist, because some rethrow when they are the only one left:
 * `Readable#pipe` does so on its destination, so `stream.pipe(stream)` would otherwise throw.
 */
export function destroyQuietly(target: Duplex, err: Error): void {
  if (target.destroyed) return;
  target.once('error', noop);
  target.destroy(err);
}
