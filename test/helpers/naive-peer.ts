/**
 * A second, deliberately naive client of the tcp-stream-muxer wire protocol, written from
 * PROTOCOL.md alone: nothing here comes from src/ (no codec, no constants), so a rule the
 * library and its own codec agree on but the document does not say shows up as a failure.
 *
 * It is naive the way a quick port to another language would be: one FIFO of outgoing
 * frames, written in order, waiting for 'drain' whenever the socket says it is full, with
 * window updates and PING answers queued behind whatever DATA is already in it. It obeys
 * every window it is given exactly, and nothing more clever than that. Issue 11 point 6 is
 * about exactly this peer: in protocol version 1 the server could stop reading while such a
 * peer's window updates sat unread behind its DATA, and both sides waited forever.
 */
import * as net from 'node:net';
import { createHash, type Hash } from 'node:crypto';

/** The connection preface `TSMX` (PROTOCOL.md section 2). */
const MAGIC = Buffer.from([0x54, 0x53, 0x4d, 0x58]);
/** Every frame starts with this many header bytes (section 3). */
const HEADER_BYTES = 12;

/** Frame types (section 5). */
export const NaiveFrameType = {
  DATA: 0x0,
  WINDOW_UPDATE: 0x1,
  PING: 0x2,
  GO_AWAY: 0x3,
  OPEN: 0x4,
  ACCEPT: 0x5,
  REFUSE: 0x6,
  RESET: 0x7,
  HELLO: 0x8,
} as const;

const TYPE_NAMES = ['DATA', 'WINDOW_UPDATE', 'PING', 'GO_AWAY', 'OPEN', 'ACCEPT', 'REFUSE', 'RESET', 'HELLO'];

/** Flag bits (section 5.1). */
const FIN = 0x0001;
const ACK = 0x0002;

/** Error codes the peer itself needs (section 11); any other arrives and is reported by number. */
const PROTOCOL_ERROR = 1;
const FLOW_CONTROL_ERROR = 2;
const REFUSED = 5;

/** Section 8: an update is due after half the window was consumed, or this much, whichever is less. */
const UPDATE_CAP = 1024 * 1024;
/** Section 8: no window may grow past 2^31-1. */
const MAX_WINDOW = 2 ** 31 - 1;
/** Section 5: GO_AWAY, REFUSE and RESET carry at most 4 + 1024 bytes. */
const MAX_CODE_REASON = 4 + 1024;
/** Section 4: a receiver must accept a HELLO of up to this many bytes. */
const MAX_HELLO = 65536;
/**
 * Section 5: the payload lengths each type may have, by type; DATA is bounded by our own
 * `maxFrameSize` instead. OPEN is bounded by our `maxMetaBytes`, but the server opens nothing
 * we would take, so any OPEN up to the HELLO limit is simply read and refused.
 */
const LENGTHS: Record<number, [number, number]> = {
  [NaiveFrameType.WINDOW_UPDATE]: [4, 4],
  [NaiveFrameType.PING]: [8, 8],
  [NaiveFrameType.GO_AWAY]: [4, MAX_CODE_REASON],
  [NaiveFrameType.OPEN]: [0, MAX_HELLO],
  [NaiveFrameType.ACCEPT]: [0, 0],
  [NaiveFrameType.REFUSE]: [4, MAX_CODE_REASON],
  [NaiveFrameType.RESET]: [4, MAX_CODE_REASON],
  [NaiveFrameType.HELLO]: [0, MAX_HELLO],
};

/** How the naive peer is set up; every field has the default of PROTOCOL.md section 4. */
export interface NaivePeerOptions {
  /**
   * The protocol version to speak. 1 plays a version 1 peer: header version 1, no
   * `connectionWindow` in its HELLO, and no connection window at all (it neither honours one
   * nor grants one), so a test can show the old failure against an old build.
   */
  version?: 1 | 2;
  /** HELLO `initialWindow`: what the server may send on each stream before this peer grants more. */
  initialWindow?: number;
  /** HELLO `connectionWindow` (version 2 only): what the server may send on all streams together. */
  connectionWindow?: number;
  /** HELLO `maxFrameSize`: the largest DATA payload the server may send this peer. */
  maxFrameSize?: number;
  /** HELLO `maxStreams`: streams the server may open toward this peer (it refuses them all anyway). */
  maxStreams?: number;
  /** HELLO `maxMetaBytes`. */
  maxMetaBytes?: number;
  /** HELLO `hello`: the client's greeting or credentials. */
  hello?: unknown;
  /**
   * 0 (default): the peer's application consumes every received chunk at once. Above 0, it
   * consumes the chunks of each stream one at a time, each this many milliseconds after the
   * previous one, so this side is the slow receiver and its credit comes back late.
   */
  consumeDelayMs?: number;
  /** Gives up on the handshake after this long (default 5000 ms). */
  handshakeTimeoutMs?: number;
}

/** The server's HELLO, as this peer read it. */
export interface NaiveServerSettings {
  initialWindow: number;
  /** Null for a version 1 server, which has no connection window. */
  connectionWindow: number | null;
  maxFrameSize: number;
  maxStreams: number;
  maxMetaBytes: number;
}

/** What came back on one stream, once FIN went both ways. */
export interface NaiveStreamResult {
  bytesSent: number;
  bytesReceived: number;
  /** SHA-256 (hex) of every byte received on the stream, in order. */
  sha256: string;
}

/** What the peer is doing, for a test that has to explain a hang. */
export interface NaivePeerStats {
  streamsOpened: number;
  streamsDone: number;
  streamsFailed: number;
  /** Streams with DATA still to queue, and how many of those wait for stream or connection credit. */
  streamsSending: number;
  streamsBlockedOnStreamWindow: number;
  /** DATA payload bytes queued / received / consumed by the application. */
  bytesQueued: number;
  bytesReceived: number;
  bytesConsumed: number;
  /** Frames and bytes in the outgoing FIFO, not yet handed to the socket. */
  fifoFrames: number;
  fifoBytes: number;
  /** True while the FIFO waits for the socket's 'drain'. */
  waitingForDrain: boolean;
  /** How often the FIFO waited for 'drain', and the most it ever held. */
  drainWaits: number;
  maxFifoBytes: number;
  /** WINDOW_UPDATE and PING-ACK frames queued while other frames were still ahead of them. */
  controlQueuedBehind: number;
  /** The socket's own buffer (`writableLength`). */
  socketBuffered: number;
  /** Our connection send window (null in version 1). */
  connectionSendWindow: number | null;
  framesIn: Record<string, number>;
  framesOut: Record<string, number>;
}

/** A failure the naive peer reports: a frame the server sent, or something this peer saw. */
export class NaivePeerError extends Error {
  constructor(
    message: string,
    /** What failed: a GO_AWAY, REFUSE or RESET from the server, or `local` (transport, protocol). */
    readonly kind: 'GO_AWAY' | 'REFUSE' | 'RESET' | 'local',
    /** The error code carried by the frame (section 11); null for a local failure. */
    readonly code: number | null = null,
    /** The frame's reason text. */
    readonly reason = '',
    /** The header version of the frame that failed us, when a frame did. */
    readonly headerVersion: number | null = null,
  ) {
    super(message);
    this.name = 'NaivePeerError';
  }
}

interface Header {
  version: number;
  type: number;
  flags: number;
  reserved: number;
  streamId: number;
  length: number;
}

/** Encodes one frame: header (section 3) and payload in one buffer. */
function encodeFrame(version: number, type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame.writeUInt8(version, 0);
  frame.writeUInt8(type, 1);
  frame.writeUInt16BE(flags, 2);
  frame.writeUInt32BE(streamId & 0x7fffffff, 4); // reserved top bit 0
  frame.writeUInt32BE(payload.length, 8);
  payload.copy(frame, HEADER_BYTES);
  return frame;
}

function decodeHeader(buf: Buffer, offset: number): Header {
  const word = buf.readUInt32BE(offset + 4);
  return {
    version: buf.readUInt8(offset),
    type: buf.readUInt8(offset + 1),
    flags: buf.readUInt16BE(offset + 2),
    reserved: word >>> 31,
    streamId: word & 0x7fffffff,
    length: buf.readUInt32BE(offset + 8),
  };
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value, 0);
  return b;
}

interface NaiveStream {
  id: number;
  payload: Buffer;
  /** How much of `payload` is queued as DATA so far. */
  queued: number;
  finQueued: boolean;
  /** The server's ACCEPT arrived. */
  accepted: boolean;
  /** What the server's credit still lets us send on this stream. */
  sendWindow: number;
  /** What we still let the server send on this stream (checked on every DATA). */
  recvCredit: number;
  consumedSinceUpdate: number;
  finReceived: boolean;
  /** Received chunks the application has not consumed yet. */
  appQueue: Buffer[];
  appBusy: boolean;
  hash: Hash;
  received: number;
  resolve(result: NaiveStreamResult): void;
  reject(err: Error): void;
}

/**
 * The naive client. {@link NaivePeer.connect} does the handshake; {@link NaivePeer.openStream}
 * sends a payload on a new stream and resolves with the hash of what came back.
 */
export class NaivePeer {
  /** The server's settings from its HELLO; set once {@link connect} resolved. */
  server!: NaiveServerSettings;

  private readonly version: number;
  private readonly initialWindow: number;
  private readonly connectionWindow: number;
  private readonly maxFrameSize: number;
  private readonly consumeDelayMs: number;
  private readonly options: NaivePeerOptions;
  private socket!: net.Socket;

  // Outgoing: one FIFO, in order, control frames included.
  private readonly fifo: Buffer[] = [];
  private fifoHead = 0;
  private fifoBytes = 0;
  private waitingForDrain = false;
  private drainWaits = 0;
  private maxFifoBytes = 0;
  private controlQueuedBehind = 0;

  // Incoming.
  private inbuf: Buffer = Buffer.alloc(0);
  private gotMagic = false;
  private ready = false;
  private failure: NaivePeerError | null = null;
  private onHandshake: { resolve(): void; reject(err: Error): void } | null = null;

  // Streams and windows.
  private readonly streams = new Map<number, NaiveStream>();
  /** Streams with DATA (or FIN) still to queue, in the order they get their turn. */
  private readonly sending = new Set<NaiveStream>();
  private nextId = 1;
  private connSendWindow = 0;
  private connRecvCredit = 0;
  private connConsumedSinceUpdate = 0;
  private goAwayReceived = false;

  private counts = { opened: 0, done: 0, failed: 0, bytesQueued: 0, bytesReceived: 0, bytesConsumed: 0 };
  private readonly framesIn: Record<string, number> = {};
  private readonly framesOut: Record<string, number> = {};

  private constructor(options: NaivePeerOptions) {
    this.options = options;
    this.version = options.version ?? 2;
    this.initialWindow = options.initialWindow ?? 262144;
    this.connectionWindow = options.connectionWindow ?? 16 * 1024 * 1024;
    this.maxFrameSize = options.maxFrameSize ?? 65536;
    this.consumeDelayMs = options.consumeDelayMs ?? 0;
    this.connRecvCredit = this.connectionWindow;
  }

  /**
   * Connects to a muxer server, sends the magic and a HELLO, and resolves once the server's
   * magic and HELLO arrived. Rejects with a {@link NaivePeerError} when the server answers
   * with a GO_AWAY (its `code`, `reason` and `headerVersion` say what and in which framing)
   * or the handshake fails otherwise.
   */
  static async connect(port: number, host: string, options: NaivePeerOptions = {}): Promise<NaivePeer> {
    const peer = new NaivePeer(options);
    await peer.start(port, host);
    return peer;
  }

  private start(port: number, host: string): Promise<void> {
    const handshake = new Promise<void>((resolve, reject) => {
      this.onHandshake = { resolve, reject };
    });
    const timer = setTimeout(
      () => this.fail(new NaivePeerError(`no HELLO from the server within ${this.options.handshakeTimeoutMs ?? 5000} ms`, 'local')),
      this.options.handshakeTimeoutMs ?? 5000,
    );
    const socket = net.connect({ port, host });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', (err) => this.fail(new NaivePeerError(`transport error: ${err.message}`, 'local')));
    socket.on('close', () => this.fail(new NaivePeerError('the connection closed', 'local')));
    // Section 2: the magic once, then our HELLO, fields in the order of the table in section 4.
    this.push(MAGIC);
    this.pushFrame(NaiveFrameType.HELLO, 0, 0, Buffer.from(this.helloJson(), 'utf8'));
    return handshake.finally(() => clearTimeout(timer));
  }

  /** Our HELLO as compact JSON, `hello` last. A version 1 peer has no `connectionWindow`. */
  private helloJson(): string {
    const o = this.options;
    const fields = [`"initialWindow":${this.initialWindow}`];
    if (this.version >= 2) fields.push(`"connectionWindow":${this.connectionWindow}`);
    fields.push(
      `"maxFrameSize":${this.maxFrameSize}`,
      `"maxStreams":${o.maxStreams ?? 16384}`,
      `"maxMetaBytes":${o.maxMetaBytes ?? 65536}`,
    );
    fields.push(`"hello":${JSON.stringify(o.hello ?? null)}`);
    return `{${fields.join(',')}}`;
  }

  /**
   * Opens a stream (OPEN with meta `{"i":N}`, N counting this peer's opens from 0), sends
   * `payload` right away within the windows (section 7.1 allows DATA before the ACCEPT),
   * then FIN. Resolves once the server's FIN arrived and the application consumed
   * everything, with the SHA-256 of what came back; rejects on REFUSE, RESET, GO_AWAY or a
   * broken connection.
   */
  openStream(payload: Buffer): Promise<NaiveStreamResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.ready) return Promise.reject(new NaivePeerError('not connected', 'local'));
    if (this.goAwayReceived) return Promise.reject(new NaivePeerError('the server sent GO_AWAY: no new streams', 'local'));
    if (this.streams.size >= this.server.maxStreams) {
      return Promise.reject(new NaivePeerError(`the server allows at most ${this.server.maxStreams} streams`, 'local'));
    }
    const meta = Buffer.from(`{"i":${this.counts.opened}}`, 'utf8');
    if (meta.length > this.server.maxMetaBytes) return Promise.reject(new NaivePeerError('meta too large', 'local'));
    const id = this.nextId;
    this.nextId += 2;
    this.counts.opened++;
    return new Promise<NaiveStreamResult>((resolve, reject) => {
      const stream: NaiveStream = {
        id,
        payload,
        queued: 0,
        finQueued: false,
        accepted: false,
        sendWindow: this.server.initialWindow,
        recvCredit: this.initialWindow,
        consumedSinceUpdate: 0,
        finReceived: false,
        appQueue: [],
        appBusy: false,
        hash: createHash('sha256'),
        received: 0,
        resolve,
        reject,
      };
      this.streams.set(id, stream);
      this.pushFrame(NaiveFrameType.OPEN, 0, id, meta);
      this.sending.add(stream);
      this.pump();
    });
  }

  /** What the peer is doing right now. */
  stats(): NaivePeerStats {
    let blocked = 0;
    for (const s of this.sending) if (s.sendWindow === 0) blocked++;
    return {
      streamsOpened: this.counts.opened,
      streamsDone: this.counts.done,
      streamsFailed: this.counts.failed,
      streamsSending: this.sending.size,
      streamsBlockedOnStreamWindow: blocked,
      bytesQueued: this.counts.bytesQueued,
      bytesReceived: this.counts.bytesReceived,
      bytesConsumed: this.counts.bytesConsumed,
      fifoFrames: this.fifo.length - this.fifoHead,
      fifoBytes: this.fifoBytes,
      waitingForDrain: this.waitingForDrain,
      drainWaits: this.drainWaits,
      maxFifoBytes: this.maxFifoBytes,
      controlQueuedBehind: this.controlQueuedBehind,
      socketBuffered: this.socket?.writableLength ?? 0,
      connectionSendWindow: this.version >= 2 ? this.connSendWindow : null,
      framesIn: { ...this.framesIn },
      framesOut: { ...this.framesOut },
    };
  }

  /** Closes the connection at once; streams still open fail. */
  destroy(): void {
    this.fail(new NaivePeerError('destroyed by the test', 'local'));
  }

  // ---- outgoing: one FIFO -------------------------------------------------------------

  private pushFrame(type: number, flags: number, streamId: number, payload?: Buffer): void {
    const name = TYPE_NAMES[type] ?? String(type);
    this.framesOut[name] = (this.framesOut[name] ?? 0) + 1;
    const control = type === NaiveFrameType.WINDOW_UPDATE || type === NaiveFrameType.PING;
    // Behind our FIFO or the socket's own buffer, which is just the FIFO's tail.
    if (control && (this.fifoBytes > 0 || this.socket.writableLength > 0)) this.controlQueuedBehind++;
    this.push(encodeFrame(this.version, type, flags, streamId, payload));
  }

  /** Appends to the FIFO; control frames get no priority over DATA queued before them. */
  private push(bytes: Buffer): void {
    if (this.failure) return;
    this.fifo.push(bytes);
    this.fifoBytes += bytes.length;
    if (this.fifoBytes > this.maxFifoBytes) this.maxFifoBytes = this.fifoBytes;
    this.flush();
  }

  /** Writes frames in order until the socket says it is full, then waits for 'drain'. */
  private flush(): void {
    while (!this.waitingForDrain && this.fifoHead < this.fifo.length && !this.failure) {
      const frame = this.fifo[this.fifoHead++];
      this.fifoBytes -= frame.length;
      if (this.fifoHead >= 4096) {
        this.fifo.splice(0, this.fifoHead);
        this.fifoHead = 0;
      }
      if (!this.socket.write(frame)) {
        this.waitingForDrain = true;
        this.drainWaits++;
        this.socket.once('drain', () => {
          this.waitingForDrain = false;
          this.flush();
        });
      }
    }
  }

  /**
   * Queues DATA for every stream that has bytes left, one frame per stream per turn, but only
   * as much as both windows allow right now: the FIFO never holds DATA beyond credit.
   */
  private pump(): void {
    if (!this.ready || this.failure) return;
    let progress = true;
    while (progress && this.sending.size > 0) {
      progress = false;
      for (const s of [...this.sending]) {
        const left = s.payload.length - s.queued;
        const connection = this.version >= 2 ? this.connSendWindow : Infinity;
        const n = Math.min(left, s.sendWindow, connection, this.server.maxFrameSize);
        if (n === 0 && left > 0) continue; // waits for credit
        const last = s.queued + n === s.payload.length;
        this.pushFrame(NaiveFrameType.DATA, last ? FIN : 0, s.id, s.payload.subarray(s.queued, s.queued + n));
        s.queued += n;
        s.sendWindow -= n;
        if (this.version >= 2) this.connSendWindow -= n;
        this.counts.bytesQueued += n;
        progress = true;
        if (last) {
          s.finQueued = true;
          this.sending.delete(s);
          this.maybeDone(s);
        }
      }
    }
  }

  // ---- incoming ------------------------------------------------------------------------

  private onBytes(chunk: Buffer): void {
    if (this.failure) return;
    this.inbuf = this.inbuf.length === 0 ? chunk : Buffer.concat([this.inbuf, chunk]);
    let offset = 0;
    if (!this.gotMagic) {
      if (this.inbuf.length < MAGIC.length) return;
      if (!this.inbuf.subarray(0, MAGIC.length).equals(MAGIC)) {
        return this.fail(new NaivePeerError('the server did not send the magic TSMX', 'local'));
      }
      this.gotMagic = true;
      offset = MAGIC.length;
    }
    while (this.inbuf.length - offset >= HEADER_BYTES && !this.failure) {
      const h = decodeHeader(this.inbuf, offset);
      const problem = this.checkHeader(h);
      if (problem !== null) return this.fail(problem);
      if (this.inbuf.length - offset - HEADER_BYTES < h.length) break; // payload not all here yet
      const payload = this.inbuf.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + h.length);
      offset += HEADER_BYTES + h.length;
      this.onFrame(h, payload);
    }
    this.inbuf = this.inbuf.subarray(offset);
  }

  /** Section 3: everything judged from the header alone, before the payload is read. */
  private checkHeader(h: Header): NaivePeerError | null {
    if (h.version !== this.version) {
      return new NaivePeerError(`version mismatch: header version ${h.version}, this peer speaks ${this.version}`, 'local');
    }
    if (h.reserved !== 0) return new NaivePeerError('reserved stream id bit set', 'local');
    if ((h.flags & ~(FIN | ACK)) !== 0) return new NaivePeerError(`unknown flags ${h.flags}`, 'local');
    if (h.type > NaiveFrameType.HELLO) return new NaivePeerError(`unknown frame type ${h.type}`, 'local');
    // Section 5: which stream ids a type goes on (WINDOW_UPDATE: any), which flag it may carry.
    const session = h.type === NaiveFrameType.PING || h.type === NaiveFrameType.GO_AWAY || h.type === NaiveFrameType.HELLO;
    if (h.type !== NaiveFrameType.WINDOW_UPDATE && session !== (h.streamId === 0)) {
      return new NaivePeerError(`${TYPE_NAMES[h.type]} on stream ${h.streamId}`, 'local');
    }
    const allowed = h.type === NaiveFrameType.DATA ? FIN : h.type === NaiveFrameType.PING ? ACK : 0;
    if ((h.flags & ~allowed) !== 0) return new NaivePeerError(`flags ${h.flags} on ${TYPE_NAMES[h.type]}`, 'local');
    const [min, max] = LENGTHS[h.type] ?? [0, this.maxFrameSize];
    if (h.length < min || h.length > max) {
      return new NaivePeerError(`${TYPE_NAMES[h.type]} of ${h.length} bytes, not within ${min}..${max}`, 'local');
    }
    return null;
  }

  private onFrame(h: Header, payload: Buffer): void {
    const name = TYPE_NAMES[h.type];
    this.framesIn[name] = (this.framesIn[name] ?? 0) + 1;
    if (!this.ready) return this.onHandshakeFrame(h, payload);
    switch (h.type) {
      case NaiveFrameType.DATA:
        return this.onData(h, payload);
      case NaiveFrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(h, payload);
      case NaiveFrameType.PING:
        // Answered through the same FIFO, behind any DATA already queued.
        if ((h.flags & ACK) === 0) this.pushFrame(NaiveFrameType.PING, ACK, 0, Buffer.from(payload));
        return;
      case NaiveFrameType.GO_AWAY: {
        this.goAwayReceived = true;
        const { code, reason } = codeAndReason(payload);
        return this.fail(new NaivePeerError(`GO_AWAY code ${code}: ${reason}`, 'GO_AWAY', code, reason, h.version));
      }
      case NaiveFrameType.OPEN:
        // This client serves nothing: every stream the server opens is refused.
        return this.pushFrame(
          NaiveFrameType.REFUSE,
          0,
          h.streamId,
          Buffer.concat([u32(REFUSED), Buffer.from('naive peer accepts no streams')]),
        );
      case NaiveFrameType.ACCEPT: {
        // Our DATA went out before the answer already; the ACCEPT only lets the server's own DATA in.
        const s = this.streams.get(h.streamId);
        if (s?.accepted === true) return this.fail(new NaivePeerError(`a second ACCEPT for stream ${s.id}`, 'local', PROTOCOL_ERROR));
        if (s !== undefined) s.accepted = true;
        return;
      }
      case NaiveFrameType.REFUSE:
      case NaiveFrameType.RESET: {
        const { code, reason } = codeAndReason(payload);
        const kind = h.type === NaiveFrameType.REFUSE ? 'REFUSE' : 'RESET';
        return this.failStream(
          h.streamId,
          new NaivePeerError(`${kind} stream ${h.streamId} code ${code}: ${reason}`, kind, code, reason, h.version),
        );
      }
      default:
        return this.fail(new NaivePeerError(`unexpected ${name} after the handshake`, 'local', PROTOCOL_ERROR));
    }
  }

  private onHandshakeFrame(h: Header, payload: Buffer): void {
    if (h.type === NaiveFrameType.GO_AWAY) {
      const { code, reason } = codeAndReason(payload);
      return this.fail(new NaivePeerError(`GO_AWAY during the handshake, code ${code}: ${reason}`, 'GO_AWAY', code, reason, h.version));
    }
    if (h.type !== NaiveFrameType.HELLO) return this.fail(new NaivePeerError(`first frame is ${TYPE_NAMES[h.type]}, not HELLO`, 'local'));
    let settings: Record<string, unknown>;
    try {
      settings = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.fail(new NaivePeerError('the server HELLO is not JSON', 'local'));
    }
    const int = (key: string, min: number): number => {
      const v = settings[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_WINDOW) {
        throw new NaivePeerError(`server HELLO field ${key} is ${JSON.stringify(v)}`, 'local');
      }
      return v;
    };
    try {
      this.server = {
        initialWindow: int('initialWindow', 1024),
        connectionWindow: this.version >= 2 ? int('connectionWindow', 1024) : null,
        maxFrameSize: int('maxFrameSize', 1024),
        maxStreams: int('maxStreams', 0),
        maxMetaBytes: int('maxMetaBytes', 2),
      };
    } catch (err) {
      return this.fail(err as NaivePeerError);
    }
    this.connSendWindow = this.server.connectionWindow ?? 0;
    this.ready = true;
    this.onHandshake?.resolve();
    this.onHandshake = null;
  }

  private onData(h: Header, payload: Buffer): void {
    const n = payload.length;
    if (this.version >= 2) {
      // Section 8: every DATA byte counts against the connection window, even for a closed stream.
      if (n > this.connRecvCredit) {
        return this.fail(
          new NaivePeerError(`the server sent ${n} bytes with ${this.connRecvCredit} of connection credit`, 'local', FLOW_CONTROL_ERROR),
        );
      }
      this.connRecvCredit -= n;
    }
    this.counts.bytesReceived += n;
    const s = this.streams.get(h.streamId);
    if (s === undefined) {
      if (h.streamId >= this.nextId || h.streamId % 2 === 0) {
        return this.fail(new NaivePeerError(`DATA for stream ${h.streamId}, never opened`, 'local', PROTOCOL_ERROR));
      }
      return this.consumedConnection(n); // crossed a close in flight: dropped, credit given back
    }
    // Section 7.1: before its ACCEPT the accepting side sends nothing on the stream but the answer.
    if (!s.accepted) return this.fail(new NaivePeerError(`DATA on stream ${s.id} before its ACCEPT`, 'local', PROTOCOL_ERROR));
    if (s.finReceived) return this.fail(new NaivePeerError(`DATA after FIN on stream ${s.id}`, 'local', PROTOCOL_ERROR));
    if (n > s.recvCredit) {
      return this.fail(new NaivePeerError(`stream ${s.id}: ${n} bytes with ${s.recvCredit} of stream credit`, 'local', FLOW_CONTROL_ERROR));
    }
    s.recvCredit -= n;
    // Keep a copy: the parse buffer it was cut from would otherwise stay pinned while the
    // application takes its time.
    if (n > 0) s.appQueue.push(this.consumeDelayMs > 0 ? Buffer.from(payload) : payload);
    if ((h.flags & FIN) !== 0) s.finReceived = true;
    this.runApp(s);
  }

  private onWindowUpdate(h: Header, payload: Buffer): void {
    const increment = payload.length === 4 ? payload.readUInt32BE(0) : 0;
    if (increment === 0) return this.fail(new NaivePeerError('WINDOW_UPDATE of 0 or of a bad length', 'local', PROTOCOL_ERROR));
    if (h.streamId === 0) {
      if (this.version < 2) return this.fail(new NaivePeerError('WINDOW_UPDATE on stream 0 in version 1', 'local', PROTOCOL_ERROR));
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW) return this.fail(new NaivePeerError('connection window overflow', 'local', FLOW_CONTROL_ERROR));
    } else {
      const s = this.streams.get(h.streamId);
      if (s === undefined) return; // closed stream: ignored
      s.sendWindow += increment;
      if (s.sendWindow > MAX_WINDOW) return this.fail(new NaivePeerError(`stream ${s.id} window overflow`, 'local', FLOW_CONTROL_ERROR));
    }
    this.pump();
  }

  // ---- the application: consumes what arrived, then credit goes back ---------------------

  private runApp(s: NaiveStream): void {
    if (this.consumeDelayMs === 0) {
      for (const chunk of s.appQueue) this.consume(s, chunk);
      s.appQueue.length = 0;
      return this.maybeDone(s);
    }
    if (s.appBusy) return;
    if (s.appQueue.length === 0) return this.maybeDone(s);
    s.appBusy = true;
    setTimeout(() => {
      s.appBusy = false;
      if (this.failure || !this.streams.has(s.id)) return;
      this.consume(s, s.appQueue.shift()!);
      this.runApp(s);
    }, this.consumeDelayMs);
  }

  private consume(s: NaiveStream, chunk: Buffer): void {
    s.hash.update(chunk);
    s.received += chunk.length;
    this.counts.bytesConsumed += chunk.length;
    // Section 8: stream credit after half the window (or 1 MiB) was consumed, none after FIN.
    s.consumedSinceUpdate += chunk.length;
    if (!s.finReceived && s.consumedSinceUpdate >= Math.min(this.initialWindow / 2, UPDATE_CAP)) {
      this.pushFrame(NaiveFrameType.WINDOW_UPDATE, 0, s.id, u32(s.consumedSinceUpdate));
      s.recvCredit += s.consumedSinceUpdate;
      s.consumedSinceUpdate = 0;
    }
    this.consumedConnection(chunk.length);
  }

  /** Connection credit back (stream 0) after half the connection window (or 1 MiB) left us. */
  private consumedConnection(n: number): void {
    if (this.version < 2 || n === 0) return;
    this.connConsumedSinceUpdate += n;
    if (this.connConsumedSinceUpdate >= Math.min(this.connectionWindow / 2, UPDATE_CAP)) {
      this.pushFrame(NaiveFrameType.WINDOW_UPDATE, 0, 0, u32(this.connConsumedSinceUpdate));
      this.connRecvCredit += this.connConsumedSinceUpdate;
      this.connConsumedSinceUpdate = 0;
    }
  }

  private maybeDone(s: NaiveStream): void {
    if (!s.finQueued || !s.finReceived || s.appBusy || s.appQueue.length > 0) return;
    if (!this.streams.delete(s.id)) return;
    this.counts.done++;
    s.resolve({ bytesSent: s.payload.length, bytesReceived: s.received, sha256: s.hash.digest('hex') });
  }

  // ---- failures ----------------------------------------------------------------------------

  private failStream(id: number, err: NaivePeerError): void {
    const s = this.streams.get(id);
    if (s === undefined) return; // a stream already closed: ignored
    this.streams.delete(id);
    this.sending.delete(s);
    this.counts.failed++;
    // What its application never read leaves us anyway: the connection gets that credit back.
    let unread = 0;
    for (const chunk of s.appQueue) unread += chunk.length;
    s.appQueue.length = 0;
    this.consumedConnection(unread);
    s.reject(err);
  }

  /** The connection is over: the handshake and every open stream fail with `err`. */
  private fail(err: NaivePeerError): void {
    if (this.failure) return;
    this.failure = err;
    this.onHandshake?.reject(err);
    this.onHandshake = null;
    for (const s of this.streams.values()) {
      this.counts.failed++;
      s.reject(err);
    }
    this.streams.clear();
    this.sending.clear();
    this.socket?.destroy();
  }
}

/** Section 5: a u32 code followed by UTF-8 reason text. */
function codeAndReason(payload: Buffer): { code: number; reason: string } {
  if (payload.length < 4) return { code: -1, reason: `(a payload of ${payload.length} bytes)` };
  return { code: payload.readUInt32BE(0), reason: payload.subarray(4).toString('utf8') };
}
