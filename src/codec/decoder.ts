import { MuxError } from '../errors';
import { ChunkQueue } from './chunks';
import {
  Flag,
  FrameType,
  HEADER_LENGTH,
  KNOWN_FLAGS,
  MAGIC,
  MAX_CONTROL_PAYLOAD,
  MAX_STREAM_ID,
  PING_PAYLOAD_LENGTH,
  PROTOCOL_VERSION,
  RETIRED_VERSIONS,
  WINDOW_UPDATE_PAYLOAD_LENGTH,
} from '../protocol/constants';

/** Receives what a {@link FrameDecoder} parses, synchronously and in wire order. */
export interface FrameSink {
  /**
   * A piece of a DATA frame's payload, as a view into the received chunk (no copy). A frame
   * arrives as one or more pieces; `last` marks its final piece (empty when the frame is), and
   * `continued` every piece but the first (the frame began in an earlier chunk).
   */
  onData(streamId: number, flags: number, piece: Buffer, last: boolean, continued: boolean): void;
  /** Any non-DATA frame, with its whole payload. */
  onControl(type: FrameType, flags: number, streamId: number, payload: Buffer): void;
  /** An OPEN whose meta exceeds `maxMetaBytes`, reported at its header; its payload is then skipped unbuffered. */
  onOversizeOpen(streamId: number, length: number): void;
}

export interface DecoderLimits {
  /** Largest DATA payload accepted, in bytes. */
  maxFrameSize: number;
  /** Largest OPEN payload delivered; larger ones are skipped and reported. */
  maxMetaBytes: number;
  /** Largest HELLO payload accepted, in bytes (default: `maxMetaBytes`, and at least 64 KiB). */
  maxHelloBytes?: number;
}

const enum State {
  MAGIC,
  HEADER,
  CONTROL_PAYLOAD,
  DATA_PAYLOAD,
  SKIP_PAYLOAD,
}

const EMPTY = Buffer.alloc(0);
// A HELLO may always be this large, whatever maxMetaBytes: it carries the client's `hello`.
const MIN_HELLO_LIMIT = 64 * 1024;

/**
 * Incremental, I/O-free decoder: feed it buffers of any size with {@link push}; it calls the
 * sink for every frame. Every declared length is checked against a limit right after the
 * header, so a peer can never make it buffer more than one header or one bounded control
 * payload; DATA payloads are passed on as they arrive. After an error it is dead: `push`
 * keeps throwing the same `MuxError`.
 *
 * The chunk list with `consume(n)` follows ws's receiver (lib/receiver.js).
 */
export class FrameDecoder {
  private readonly queue = new ChunkQueue();
  private state: State;
  private type: FrameType = FrameType.DATA;
  private flags = 0;
  private streamId = 0;
  private remaining = 0;
  /** The frame's declared payload length, beside what `remaining` still owes of it. */
  private length = 0;
  private paused = false;
  private failure: MuxError | null = null;
  private inLoop = false;
  /** Set when the peer's header carried a retired version we can still answer in (see RETIRED_VERSIONS). */
  peerVersion: number | null = null;

  constructor(
    private readonly sink: FrameSink,
    private readonly limits: DecoderLimits,
    options: { expectMagic?: boolean } = {},
  ) {
    this.state = options.expectMagic === false ? State.HEADER : State.MAGIC;
  }

  /** Bytes received but not yet parsed. */
  get bufferedBytes(): number {
    return this.queue.bytes;
  }

  /** Feeds bytes. Throws a `MuxError` if they break the protocol. */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.run();
  }

  /** Stops delivering frames (bytes keep buffering) until {@link resume}. */
  pause(): void {
    this.paused = true;
  }

  /** Continues delivery; like {@link push}, throws a `MuxError` if buffered bytes break the protocol. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.failure) return;
    this.run();
  }

  private run(): void {
    // A sink callback may call resume() or push() re-entrantly; the outer loop carries on.
    if (this.inLoop) return;
    this.inLoop = true;
    try {
      this.loop();
    } catch (err) {
      this.failure = err instanceof MuxError ? err : new MuxError('ERR_PROTOCOL', `frame handling failed: ${String(err)}`, { cause: err });
      this.queue.clear();
      throw this.failure;
    } finally {
      this.inLoop = false;
    }
  }

  private loop(): void {
    while (!this.paused) {
      switch (this.state) {
        case State.MAGIC:
          if (this.queue.bytes < MAGIC.length) return;
          this.readMagic();
          break;
        case State.HEADER:
          if (this.queue.bytes < HEADER_LENGTH) return;
          this.readHeader();
          break;
        case State.CONTROL_PAYLOAD: {
          if (this.queue.bytes < this.remaining) return;
          const payload = this.remaining === 0 ? EMPTY : this.consume(this.remaining);
          this.state = State.HEADER;
          this.sink.onControl(this.type, this.flags, this.streamId, payload);
          break;
        }
        case State.DATA_PAYLOAD: {
          if (this.remaining === 0) {
            this.state = State.HEADER;
            this.sink.onData(this.streamId, this.flags, EMPTY, true, false);
            break;
          }
          if (this.queue.bytes === 0) return;
          const continued = this.remaining !== this.length;
          const piece = this.consumeUpTo(this.remaining);
          this.remaining -= piece.length;
          const last = this.remaining === 0;
          if (last) this.state = State.HEADER;
          this.sink.onData(this.streamId, this.flags, piece, last, continued);
          break;
        }
        case State.SKIP_PAYLOAD: {
          if (this.remaining === 0) {
            this.state = State.HEADER;
            break;
          }
          if (this.queue.bytes === 0) return;
          this.remaining -= this.consumeUpTo(this.remaining).length;
          break;
        }
      }
    }
  }

  private readMagic(): void {
    const magic = this.consume(MAGIC.length);
    if (!magic.equals(MAGIC)) {
      throw new MuxError(
        'ERR_HANDSHAKE_FAILED',
        `peer is not a tcp-stream-muxer endpoint (expected magic 0x${MAGIC.toString('hex')}, got 0x${magic.toString('hex')})`,
      );
    }
    this.state = State.HEADER;
  }

  private readHeader(): void {
    const header = this.consume(HEADER_LENGTH);
    const version = header[0];
    if (version !== PROTOCOL_VERSION) {
      if (RETIRED_VERSIONS.includes(version)) this.peerVersion = version;
      throw new MuxError('ERR_VERSION_MISMATCH', `peer speaks protocol version ${version}; this side speaks version ${PROTOCOL_VERSION}`);
    }
    const type = header[1] as FrameType;
    const flags = header.readUInt16BE(2);
    const streamId = header.readUInt32BE(4);
    const length = header.readUInt32BE(8);
    if (streamId > MAX_STREAM_ID) throw protocolError(`stream id ${streamId} has the reserved top bit set`);
    if ((flags & ~KNOWN_FLAGS) !== 0) throw protocolError(`unknown flags 0x${flags.toString(16)}`);
    this.type = type;
    this.flags = flags;
    this.streamId = streamId;
    this.remaining = this.length = length;
    this.state = State.CONTROL_PAYLOAD;
    switch (type) {
      case FrameType.DATA:
        requireStream(type, streamId);
        if (flags & Flag.ACK) throw protocolError('DATA frame with the ACK flag');
        if (length > this.limits.maxFrameSize) {
          throw new MuxError('ERR_FRAME_TOO_LARGE', `DATA frame of ${length} bytes exceeds maxFrameSize ${this.limits.maxFrameSize}`);
        }
        this.state = State.DATA_PAYLOAD;
        return;
      case FrameType.WINDOW_UPDATE:
        // Stream 0 is the connection's window; any other id is a stream's.
        requireNoFlags(type, flags);
        requireLength(type, length, WINDOW_UPDATE_PAYLOAD_LENGTH, WINDOW_UPDATE_PAYLOAD_LENGTH);
        return;
      case FrameType.PING:
        requireSession(type, streamId);
        if (flags & Flag.FIN) throw protocolError('PING frame with the FIN flag');
        requireLength(type, length, PING_PAYLOAD_LENGTH, PING_PAYLOAD_LENGTH);
        return;
      case FrameType.GO_AWAY:
        requireSession(type, streamId);
        requireNoFlags(type, flags);
        requireLength(type, length, 4, MAX_CONTROL_PAYLOAD);
        return;
      case FrameType.OPEN:
        requireStream(type, streamId);
        requireNoFlags(type, flags);
        if (length > this.limits.maxMetaBytes) {
          // Reported at once, so the session can refuse (or fail) without waiting for a
          // payload that may be gigabytes long; the bytes are then skipped unbuffered.
          this.state = State.SKIP_PAYLOAD;
          this.sink.onOversizeOpen(streamId, length);
        }
        return;
      case FrameType.ACCEPT:
        requireStream(type, streamId);
        requireNoFlags(type, flags);
        requireLength(type, length, 0, 0);
        return;
      case FrameType.REFUSE:
      case FrameType.RESET:
        requireStream(type, streamId);
        requireNoFlags(type, flags);
        requireLength(type, length, 4, MAX_CONTROL_PAYLOAD);
        return;
      case FrameType.HELLO:
        requireSession(type, streamId);
        requireNoFlags(type, flags);
        requireLength(type, length, 0, this.limits.maxHelloBytes ?? Math.max(this.limits.maxMetaBytes, MIN_HELLO_LIMIT));
        return;
      default:
        throw protocolError(`unknown frame type 0x${(type as number).toString(16)}`);
    }
  }

  /** Exactly `n` bytes (n <= buffered): a view when they lie in one chunk, else a copy. */
  private consume(n: number): Buffer {
    return this.queue.take(n);
  }

  /** Up to `n` bytes from the head chunk only: always a view, never a copy. */
  private consumeUpTo(n: number): Buffer {
    return this.queue.take(Math.min(n, this.queue.headLength));
  }
}

function protocolError(message: string): MuxError {
  return new MuxError('ERR_PROTOCOL', message);
}

function requireStream(type: FrameType, streamId: number): void {
  if (streamId === 0) throw protocolError(`${FrameType[type]} frame on stream 0`);
}

function requireSession(type: FrameType, streamId: number): void {
  if (streamId !== 0) throw protocolError(`${FrameType[type]} frame on stream ${streamId}; it belongs on stream 0`);
}

function requireNoFlags(type: FrameType, flags: number): void {
  if (flags !== 0) throw protocolError(`${FrameType[type]} frame with flags 0x${flags.toString(16)}`);
}

function requireLength(type: FrameType, length: number, min: number, max: number): void {
  if (length < min || length > max) {
    const expected = min === max ? `${min}` : `${min} to ${max}`;
    throw new MuxError(
      max < length ? 'ERR_FRAME_TOO_LARGE' : 'ERR_PROTOCOL',
      `${FrameType[type]} frame payload of ${length} bytes; expected ${expected}`,
    );
  }
}
