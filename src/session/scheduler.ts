import type { Duplex } from 'node:stream';
import { EAGER_FLUSHES_PER_TURN } from '../config';
import { encodeFrame, encodeHeader, writeHeader } from '../codec/encode';
import { Flag, FrameType, HEADER_LENGTH, MAX_WINDOW } from '../protocol/constants';
import type { AnyMuxStream as MuxStream } from './stream';
import { acquireFrameBuffer, FRAME_BUFFER_SIZE, releaseFrameBuffer, recyclesWrittenBuffers, writesRecords } from './frame-buffers';

/** What the scheduler needs from its connection. */
export interface SchedulerHost {
  /** The transport to write to, or null while frames may not go out (handshake, closed). */
  writableTransport(): Duplex | null;
  /** Largest DATA payload to put in one frame. */
  frameLimit(): number;
  /** Control frames pile up (the peer does not read): stop or restart reading from it. */
  setReadingPaused(paused: boolean): void;
  /** Queued control frames grew or shrank by `delta` bytes (they count in the memory account). */
  controlQueued(delta: number): void;
  /** The transport refused more for now (`write()` returned false); `drain` will follow if the peer reads. */
  writeBlocked(): void;
}

// Control frames waiting beyond this many bytes mean the peer is not reading what it asks
// for (pings, window updates); stop reading from it until it catches up.
const CONTROL_BACKLOG_LIMIT = 1024 * 1024;
// One flush writes at most this much stream data before yielding to I/O, so a busy
// connection cannot starve the event loop.
const FLUSH_BUDGET = 1024 * 1024;
// Flushes at the end of their tick so far in this turn of the event loop, in the whole process.
let eagerFlushesThisTurn = 0;

function newTurn(): void {
  eagerFlushesThisTurn = 0;
}

// A payload this small is copied behind its header: one buffer is one plain write() when it
// goes out alone (a round trip of small messages), where header and payload would be a writev.
const COPY_PAYLOAD_MAX = 1024;

/**
 * Orders everything a connection writes: control frames first (window updates, opens,
 * resets, pings), then stream data round-robin in frames of at most `frameLimit()` bytes,
 * so no stream can hold the socket and a ping never waits behind a bulk transfer. All
 * frames of one turn of the event loop go out corked, as few `writev` calls.
 */
export class WriteScheduler {
  private readonly control: Buffer[] = [];
  private controlHead = 0;
  private controlBytes = 0;
  private readonly ready: MuxStream[] = [];
  private readyHead = 0;
  private scheduled = false;
  private flushing = false;
  private readingPaused = false;
  /** DATA bytes the peer's connection window still allows (PROTOCOL.md, section 8). */
  private sendCredit = 0;
  /** Frames and bytes handed to the transport. */
  framesOut = 0;
  bytesOut = 0;

  constructor(private readonly host: SchedulerHost) {}

  /** Bytes of control frames not yet written. */
  get pendingControlBytes(): number {
    return this.controlBytes;
  }

  /** The peer granted `increment` more bytes of connection window; false if that overflows it. */
  addSendCredit(increment: number): boolean {
    if (this.sendCredit + increment > MAX_WINDOW) return false;
    const wasBlocked = this.sendCredit === 0;
    this.sendCredit += increment;
    if (wasBlocked && this.readyHead < this.ready.length) this.schedule();
    return true;
  }

  /** DATA bytes the peer's connection window still allows. */
  get connectionCredit(): number {
    return this.sendCredit;
  }

  queueControl(frame: Buffer): void {
    this.control.push(frame);
    this.controlBytes += frame.length;
    this.host.controlQueued(frame.length);
    if (this.controlBytes > CONTROL_BACKLOG_LIMIT && !this.readingPaused) {
      this.readingPaused = true;
      this.host.setReadingPaused(true);
    }
    this.schedule();
  }

  /**
   * Puts `stream` in the round-robin if it has something it may send now. When a whole
   * frame's worth waits, one frame goes out at once rather than at the end of the tick: a
   * writer looping over many small writes then feeds the peer while it loops, and the
   * peer's window updates come back sooner. Other streams still get their turn in order.
   */
  queueStream(stream: MuxStream): void {
    if (!stream.queuedForSend && stream.hasSendable()) this.pushReady(stream);
    if (!stream.queuedForSend) return;
    if (stream.queuedBytes >= this.host.frameLimit()) this.flush(1);
    else this.schedule();
  }

  /**
   * Runs a flush at the end of this tick, or, once this turn of the event loop has flushed
   * that way EAGER_FLUSHES_PER_TURN times, after the turn's I/O callbacks. A window update
   * or an answer then leaves as soon as the callback that made it returns (waiting for the
   * turn's end idles both peers: bulk rate and ping latency suffer), while what many
   * sockets wrote in one turn (a thousand forwarded requests read in one poll) still goes
   * out as one writev, not one per callback.
   */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (eagerFlushesThisTurn < EAGER_FLUSHES_PER_TURN) {
      if (eagerFlushesThisTurn++ === 0) setImmediate(newTurn);
      process.nextTick(flushTick, this);
    } else {
      setImmediate(lateFlushTick, this);
    }
  }

  /**
   * Writes control frames, then up to `maxDataFrames` DATA frames round-robin, until the
   * transport pushes back; the connection calls it again on `drain`.
   */
  flush(maxDataFrames = Infinity): void {
    if (this.flushing) return; // a write callback inside takeFrame() queued more: this loop takes it
    if (maxDataFrames === Infinity) this.scheduled = false;
    const t = this.host.writableTransport();
    if (t === null || t.writableNeedDrain) return;
    const frameLimit = this.host.frameLimit();
    const recycle = recyclesWrittenBuffers(t);
    // Over TLS a frame goes out as one buffer, header included, of at most frameLimit bytes:
    // see writesRecords() for why.
    const whole = writesRecords(t);
    const payloadLimit = whole ? Math.max(frameLimit - HEADER_LENGTH, 1) : frameLimit;
    // One pooled buffer at hand for the whole flush; only a payload coalesced into it uses it up.
    let scratch: Buffer | undefined;
    let budget = FLUSH_BUDGET;
    let writable = true;
    this.flushing = true;
    t.cork();
    try {
      while (writable) {
        if (this.controlHead < this.control.length) {
          writable = this.writeControl(t);
          continue;
        }
        if (this.readyHead >= this.ready.length || budget <= 0 || maxDataFrames === 0 || this.sendCredit === 0) break;
        const stream = this.ready[this.readyHead++];
        stream.queuedForSend = false;
        if (recycle && scratch === undefined) scratch = acquireFrameBuffer();
        const limit = Math.min(payloadLimit, this.sendCredit);
        // A whole frame's buffer, sized to what the stream will give; a payload spread over
        // several writes is copied straight into it. Pooled buffers are for frames near their
        // size: a small frame would hold a whole one until the socket has written it.
        const size = whole ? Math.min(limit, stream.sendWindow, stream.queuedBytes) : 0;
        const pooled = HEADER_LENGTH + size >= FRAME_BUFFER_SIZE / 2 && HEADER_LENGTH + size <= FRAME_BUFFER_SIZE;
        const frame = pooled ? acquireFrameBuffer() : size > COPY_PAYLOAD_MAX ? Buffer.allocUnsafe(HEADER_LENGTH + size) : undefined;
        const payload =
          frame === undefined
            ? stream.takeFrame(limit, scratch)
            : stream.takeFrame(size, frame.subarray(HEADER_LENGTH, HEADER_LENGTH + size));
        if (payload === null) continue;
        this.sendCredit -= payload.length;
        const fin = stream.lastTakeFin;
        maxDataFrames--;
        const flags = fin ? Flag.FIN : 0;
        if (frame !== undefined) {
          writeHeader(frame, 0, FrameType.DATA, flags, stream.id, payload.length);
          if (payload.buffer !== frame.buffer || payload.byteOffset !== frame.byteOffset + HEADER_LENGTH) frame.set(payload, HEADER_LENGTH);
          const bytes = frame.subarray(0, HEADER_LENGTH + payload.length);
          writable = pooled ? t.write(bytes, releaseWhenWritten(frame)) : t.write(bytes);
        } else if (payload.length <= COPY_PAYLOAD_MAX) {
          // encodeFrame copies the payload, so a scratch buffer it came from stays free.
          writable = t.write(encodeFrame(FrameType.DATA, flags, stream.id, payload));
        } else {
          writable = t.write(encodeHeader(FrameType.DATA, flags, stream.id, payload.length));
          if (scratch !== undefined && payload.buffer === scratch.buffer) {
            writable = t.write(payload, releaseWhenWritten(scratch));
            scratch = undefined;
          } else {
            writable = t.write(payload);
          }
        }
        this.framesOut++;
        this.bytesOut += HEADER_LENGTH + payload.length;
        budget -= HEADER_LENGTH + payload.length;
        if (fin) stream.onFinSent();
        // Not when takeFrame's write callback queued it again already (its writer had more).
        else if (!stream.queuedForSend && stream.hasSendable()) this.pushReady(stream);
      }
    } finally {
      this.flushing = false;
      t.uncork();
      if (scratch !== undefined) releaseFrameBuffer(scratch);
    }
    this.compact();
    if (this.readingPaused && this.controlBytes <= CONTROL_BACKLOG_LIMIT / 2) {
      this.readingPaused = false;
      this.host.setReadingPaused(false);
    }
    if (!writable) {
      this.host.writeBlocked();
      return;
    }
    if (!this.hasWork()) return;
    if (maxDataFrames !== Infinity) {
      this.schedule(); // the rest goes out at the end of the tick, round-robin
    } else if (!this.scheduled) {
      // Budget spent: let I/O run, then continue.
      this.scheduled = true;
      setImmediate(flushTick, this);
    }
  }

  /**
   * Appends `stream` to the round-robin. Into an empty list it goes at the start: a bulk
   * writer's eager one-frame flushes would otherwise grow the list by one entry per frame
   * until compact() spliced it, 1,024 frames in (64 MiB), on a path the optimised flush had
   * not seen (V8 deoptimised it mid-transfer).
   */
  private pushReady(stream: MuxStream): void {
    stream.queuedForSend = true;
    if (this.readyHead === this.ready.length) {
      this.ready.length = 0;
      this.readyHead = 0;
    }
    this.ready.push(stream);
  }

  /** Writes every queued control frame now, ignoring backpressure (before ending the transport). */
  flushControl(t: Duplex): void {
    while (this.controlHead < this.control.length) this.writeControl(t);
    this.compact();
  }

  /** Drops everything queued (the connection is gone). */
  clear(): void {
    this.control.length = 0;
    this.controlHead = 0;
    // Not when nothing is queued: -0 is a double, and adding it to the account's integer
    // counters would change their representation in V8 and deoptimise every connection's code.
    if (this.controlBytes !== 0) this.host.controlQueued(-this.controlBytes);
    this.controlBytes = 0;
    for (let i = this.readyHead; i < this.ready.length; i++) this.ready[i].queuedForSend = false;
    this.ready.length = 0;
    this.readyHead = 0;
  }

  /** Something waits that may go out now (a control frame, or data with credit for it). */
  hasWork(): boolean {
    return this.controlHead < this.control.length || (this.readyHead < this.ready.length && this.sendCredit > 0);
  }

  private writeControl(t: Duplex): boolean {
    let writable = true;
    const before = this.controlBytes;
    while (this.controlHead < this.control.length && writable) {
      const frame = this.control[this.controlHead];
      this.control[this.controlHead++] = EMPTY;
      this.controlBytes -= frame.length;
      this.framesOut++;
      this.bytesOut += frame.length;
      writable = t.write(frame);
    }
    this.host.controlQueued(this.controlBytes - before);
    return writable;
  }

  // Queues are arrays with a moving head (shift() is O(n) on long arrays); trim them here.
  private compact(): void {
    if (this.controlHead === this.control.length) {
      this.control.length = 0;
      this.controlHead = 0;
    } else if (this.controlHead > 1024) {
      this.control.splice(0, this.controlHead);
      this.controlHead = 0;
    }
    if (this.readyHead === this.ready.length) {
      this.ready.length = 0;
      this.readyHead = 0;
    } else if (this.readyHead > 1024) {
      this.ready.splice(0, this.readyHead);
      this.readyHead = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The write callback that gives a pooled payload buffer back. A closure per pooled frame (one
 * per 64 KiB), because write callbacks are not always in write order (a write after end()
 * calls back at once).
 */
function releaseWhenWritten(buffer: Buffer): (err?: Error | null) => void {
  return (err) => {
    // After a failed write the transport may not be done with it: leave it to the GC.
    if (!err) releaseFrameBuffer(buffer);
  };
}

function flushTick(scheduler: WriteScheduler): void {
  scheduler.flush();
}

// newTurn, queued before it, has reset the count already; resetting here too means a lost
// newTurn (fake timers that drop pending immediates) delays flushes for one turn, not for ever.
function lateFlushTick(scheduler: WriteScheduler): void {
  eagerFlushesThisTurn = 0;
  scheduler.flush();
}
