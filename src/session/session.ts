import { TypedEventEmitter } from '../events';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { resolveLimits, type SessionLimits } from '../config';
import type { JsonValue } from '../meta';
import { MemoryAccount, type MemoryPool } from './memory-account';
import { WastedWork } from './wasted-work';
import { ConnectionWindow, type ConnectionWindowHost } from './connection-window';
import { encodeIJson } from '../protocol/json';
import { FrameDecoder, type FrameSink } from '../codec/decoder';
import { decodeCodeAndReason, encodeCodeAndReason, encodeFrame, encodeGoAway, encodeWindowUpdate } from '../codec/encode';
import { errorFromReset, isProtocolError, MuxError } from '../errors';
import { Flag, FrameType, MAX_WINDOW, WireErrorCode } from '../protocol/constants';
import type { PeerSettings } from '../protocol/hello';
import type { MuxStream, StreamHost } from './stream';
import { StreamPool, type StreamOpener } from './stream-pool';
import { WriteScheduler, type SchedulerHost } from './scheduler';
import { Admission, type AdmissionHost } from './admission';
import { OpenDeadlines } from './open-deadlines';
import { StreamTable } from './stream-table';
import { Liveness, type LivenessHost } from './liveness';
import { WindowBudget } from './window-budget';
import { isFastPath, windowUpdateThreshold } from './window-tuning';
import { Handshake, type HandshakeHost } from './handshake';
import { Shutdown, type ShutdownHost } from './shutdown';
import { StreamOpening, type OpeningHost } from './stream-opening';
import type { ClientInfo, ConnectionOptions, ConnectionStats, HandshakeHooks, MuxConnectionEvents, Role, SessionState } from './types';
import { debug as log } from '../debug';

export type {
  AcceptVerdict,
  ClientInfo,
  ConnectionOptions,
  ConnectionStats,
  HandshakeHooks,
  MuxConnectionEvents,
  ReconnectInfo,
  Role,
} from './types';

const kSession = Symbol('tcp-stream-muxer.session');

/** Reasons to stop reading from the transport; reading resumes when none is left. */
const enum PauseReason {
  /** `authenticate` is deciding about the client. */
  HANDSHAKE = 1,
  /** Our answers (pings, window updates) pile up: the peer does not read them. */
  CONTROL_BACKLOG = 2,
  /** One read held many tiny frames: let other connections' I/O run before the next. */
  YIELD = 4,
}

// A read that decoded more frames than this (tiny frames: under ~32 bytes each on average)
// ends this connection's turn: libuv would otherwise read dozens of such chunks from one
// socket before any other connection is heard, and each costs a millisecond or more.
const FRAMES_PER_TURN = 2048;

type Transport = Duplex & { [kSession]?: MuxConnection };

// The connection keeps the transport, the stream table, the per-frame work (DATA pieces,
// window updates, what streams ask of it) and teardown. The rest is delegated, each part in
// its own file behind a narrow host interface that this class implements: the handshake
// (handshake.ts), opening streams (stream-opening.ts, admission.ts, open-deadlines.ts),
// writing (scheduler.ts), pings (liveness.ts), window growth (window-budget.ts), the
// connection's receive window (connection-window.ts), what the peer makes it hold
// (memory-account.ts), work without data (wasted-work.ts) and the graceful close
// (shutdown.ts). State touched for every frame stays here, so the hot path reaches it
// without an extra hop.

/**
 * One multiplexed connection over any Node `Duplex`: the handshake, the stream table,
 * flow-control windows, and the write scheduler. The server's `connection` argument and
 * the `MuxClient` are instances.
 *
 * Events ({@link MuxConnectionEvents}): `connect` (handshake done), `stream` (the peer opened
 * a stream), `goaway` (code, reason), `error`, `close`.
 */
export class MuxConnection
  extends TypedEventEmitter<MuxConnectionEvents>
  implements
    StreamHost,
    FrameSink,
    StreamOpener,
    SchedulerHost,
    LivenessHost,
    AdmissionHost<MuxConnection>,
    HandshakeHost,
    ShutdownHost,
    OpeningHost,
    ConnectionWindowHost
{
  private lazyStreamPool: StreamPool | null = null;
  /** Which end of the connection this is. */
  readonly role: Role;
  /** @internal */ readonly limits: SessionLimits;
  /** The options the connection was made with. */
  protected readonly options: ConnectionOptions;

  // Everything below is per link: initLink() makes it anew for a MuxClient that reconnects.
  /** @internal */ state: SessionState = 'idle';
  private transport: Transport | null = null;
  private decoder!: FrameDecoder;
  private streams!: StreamTable;
  /** @internal The peer's HELLO settings; null until it arrives. */
  peer: Readonly<PeerSettings> | null = null;
  /** The peer's `hello` value from the handshake (server side); `null` if none was sent. */
  peerHello: JsonValue = null;
  private hooks: HandshakeHooks | null = null;
  private ownsTransport = false;
  /** Who the peer is when the transport cannot tell (a PROXY protocol header said so). */
  private peerAddress: ClientInfo | null = null;
  private closeCallbacks: ((err?: Error) => void)[] | null = null;

  private scheduler!: WriteScheduler;
  /** Until the connection is ready; then its counts move to the scheduler's and it is dropped. */
  private handshake: Handshake | null = null;
  // Made on first use (see their getters): an idle connection never needs them, and ten
  // thousand idle connections would hold them for nothing.
  private lazyOpenDeadlines: OpenDeadlines | null = null;
  private lazyAdmission: Admission<MuxConnection> | null = null;
  private lazyOpening: StreamOpening | null = null;
  private lazyWindowBudget: WindowBudget | null = null;
  private lazyConnectionWindow: ConnectionWindow | null = null;
  private liveness!: Liveness;
  private lazyShutdown: Shutdown | null = null;

  // Updated for every DATA frame, so kept here rather than one object further away.
  private bytesIn = 0;
  private framesIn = 0;
  /** Received stream bytes the application has not read yet. */
  private receivedBuffered = 0;
  /** @internal Everything the peer makes this connection hold (see memory-account.ts). */
  account!: MemoryAccount;
  /** Streams with small pieces staged for a waiting reader, delivered once the current read is decoded. */
  private toDeliver: MuxStream[] | null = null;
  /** @internal Work the peer causes without moving data. */
  wastedWork!: WastedWork;
  /** Why reading from the transport is paused (PauseReason bits); 0 = reading. */
  private pausedFor = 0;
  private lastDataStreamId = 0;
  /** Last time a stream other than the previous one received data (`performance.now()`): window tuning's `solo`. */
  private contendedAt = -Infinity;

  /**
   * Runs a connection over `transport` (any duplex byte stream), or over one attached
   * later (MuxClient does that once its socket connects).
   */
  constructor(transport: Duplex | null, options: ConnectionOptions = {}) {
    super();
    this.options = options;
    this.role = options.role ?? 'client';
    if (this.role !== 'client' && this.role !== 'server') {
      throw new MuxError('ERR_INVALID_CONFIG', `option role must be 'client' or 'server', got ${String(this.role)}`);
    }
    // A server resolves its options once and hands every connection the same frozen limits.
    this.limits = (options as { resolvedLimits?: SessionLimits }).resolvedLimits ?? resolveLimits(options);
    if (options.hello !== undefined) checkHello(options.hello);
    this.initLink();
    this.on('newListener', onNewListener);
    if (transport) this.attach(transport);
  }

  /**
   * Makes everything that belongs to one link: the decoder, the stream table, the windows, the
   * scheduler and the timers. Called by the constructor, and by a reconnecting MuxClient once
   * the previous link is torn down.
   */
  private initLink(): void {
    this.state = 'idle';
    this.transport = null;
    this.peer = null;
    this.peerHello = null;
    this.hooks = null;
    this.peerAddress = null;
    this.bytesIn = this.framesIn = 0;
    this.receivedBuffered = 0;
    this.toDeliver = null;
    this.pausedFor = 0;
    this.lastDataStreamId = 0;
    this.contendedAt = -Infinity;
    this.appDestroyed = false;
    this.scheduler = new WriteScheduler(this);
    const pool = (this.options as { memoryPool?: MemoryPool }).memoryPool ?? null;
    this.account = new MemoryAccount(this.limits.maxBufferedBytes, 2 * this.limits.maxConnectionWindow, pool);
    this.lazyConnectionWindow = null;
    this.wastedWork = new WastedWork(this.limits.wastedWorkBurst, this.limits.wastedWorkPerSecond);
    // Twice the initial window may move during a quiet round trip: a window's worth is what a
    // long path has in flight before tuning has grown anything.
    this.liveness = new Liveness(this, this.limits.keepAliveInterval, this.limits.keepAliveTimeout, 2 * this.limits.initialWindow);
    this.streams = new StreamTable(this.role, this);
    this.decoder = new FrameDecoder(this, this.limits);
    this.lazyOpenDeadlines = this.lazyAdmission = this.lazyOpening = null;
    this.lazyWindowBudget = null;
    this.handshake = new Handshake(this, this.role, this.limits, this.options);
    this.lazyShutdown = null;
  }

  /** GO_AWAY, the close and idle timeouts: made when first needed (an idle connection never does). */
  private get shutdown(): Shutdown {
    return (this.lazyShutdown ??= new Shutdown(this, this.streams, this, this.limits, this.role));
  }

  private get openDeadlines(): OpenDeadlines {
    return (this.lazyOpenDeadlines ??= new OpenDeadlines(this.limits.openTimeout, this));
  }

  private get admission(): Admission<MuxConnection> {
    return (this.lazyAdmission ??= new Admission<MuxConnection>(
      this,
      this.openDeadlines,
      this.limits.maxPendingStreams,
      this.options.acceptStream,
    ));
  }

  private get opening(): StreamOpening {
    return (this.lazyOpening ??= new StreamOpening(this, this.streams, this.admission, this.openDeadlines, this.shutdown, this.limits));
  }

  private get windowBudget(): WindowBudget {
    return (this.lazyWindowBudget ??= new WindowBudget(this.limits, this.liveness));
  }

  /** What the peer may send on all streams together (see connection-window.ts). */
  private get connectionWindow(): ConnectionWindow {
    return (this.lazyConnectionWindow ??= new ConnectionWindow(this, this.limits, this.account));
  }

  /** @internal An open's deadline passed (OpenDeadlines). */
  openExpired(stream: MuxStream): void {
    this.opening.expire(stream);
  }

  /** @internal Shutdown: streams the peer opened that wait for the application. */
  get pending(): number {
    return this.lazyAdmission === null ? 0 : this.lazyAdmission.pending;
  }

  /** @internal Shutdown: refuses every waiting stream (the connection is going away). */
  refuseAll(code: WireErrorCode, reason: string): void {
    if (this.lazyAdmission !== null) this.lazyAdmission.refuseAll(code, reason);
  }

  /** @internal A reconnecting MuxClient starts a new link once the old one is torn down. */
  protected relink(): void {
    if (this.state !== 'closed') return;
    // The old socket still emits (its 'close' comes after the error that ended the link):
    // those events must not reach the new link, or they would tear it down too.
    const old = this.transport;
    if (old) {
      old.off('data', transportOnData);
      old.off('end', transportOnEnd);
      old.off('close', transportOnClose);
      old.off('drain', transportOnDrain);
      old.off('error', transportOnError);
      old.on('error', () => {});
      delete old[kSession];
    }
    this.initLink();
  }

  /** The seed library's name for the stream opener; see {@link StreamPool}. */
  get StreamPool(): StreamPool {
    return (this.lazyStreamPool ??= new StreamPool(this));
  }

  /** Same object as {@link StreamPool}. */
  get streamPool(): StreamPool {
    return this.StreamPool;
  }

  /**
   * The peer's address when the transport is a socket; behind a load balancer that sends the
   * PROXY protocol (MuxServer's `proxyProtocol`), the client's address from its header.
   */
  get remoteAddress(): string | undefined {
    if (this.peerAddress) return this.peerAddress.remoteAddress;
    return (this.transport as { remoteAddress?: string } | null)?.remoteAddress;
  }

  /** The peer's port when the transport is a TCP socket; from the PROXY header as {@link remoteAddress}. */
  get remotePort(): number | undefined {
    if (this.peerAddress) return this.peerAddress.remotePort;
    return (this.transport as { remotePort?: number } | null)?.remotePort;
  }

  /** The transport this connection runs over (a `net.Socket` for MuxServer and MuxClient). */
  get transportSocket(): Duplex | null {
    return this.transport;
  }

  /** True once the handshake is done and until the connection closes. */
  get ready(): boolean {
    return this.state === 'ready';
  }

  /** True after `close()` or `destroy()` began, or the peer went away. */
  get closing(): boolean {
    const shutdown = this.lazyShutdown;
    return (shutdown !== null && (shutdown.sentGoAway || shutdown.receivedGoAway)) || this.state === 'closed';
  }

  /** @internal Streams open in both directions. */
  get openStreamCount(): number {
    return this.streams.size;
  }

  /** Figures for monitoring: stream counts, traffic, buffered bytes and the last ping RTT. */
  stats(): ConnectionStats {
    return {
      streamsOpenLocal: this.streams.localOpen,
      streamsOpenRemote: this.streams.remoteOpen,
      pendingStreams: this.pending,
      bytesIn: this.bytesIn,
      bytesOut: (this.handshake === null ? 0 : this.handshake.bytesOut) + this.scheduler.bytesOut,
      framesIn: this.framesIn,
      framesOut: (this.handshake === null ? 0 : this.handshake.framesOut) + this.scheduler.framesOut,
      bufferedIn: this.receivedBuffered,
      bufferedOut: this.scheduler.pendingControlBytes + (this.transport?.writableLength ?? 0),
      memoryUsed: this.account.used,
      memoryBudget: this.limits.maxBufferedBytes,
      lastRtt: this.liveness.lastRtt,
    };
  }

  // ---- attaching and the handshake: see handshake.ts -----------------------------------

  /**
   * @internal Starts the protocol on `transport`; `peer`, when given, is who the peer really
   * is (the transport's own address is a proxy's). `ownsTransport`: the library opened or
   * accepted the socket, so its options (noDelay) apply to it; a socket given to wrap() is
   * left as its owner set it.
   */
  attach(transport: Duplex, hooks: HandshakeHooks | null = null, peer: ClientInfo | null = null, ownsTransport = false): void {
    if (this.state !== 'idle') throw new MuxError('ERR_INVALID_ARGUMENT', 'connection already has a transport');
    this.hooks = hooks;
    this.peerAddress = peer;
    this.ownsTransport = ownsTransport;
    const t = transport as Transport;
    t[kSession] = this;
    this.transport = t;
    this.disableNagle();
    this.state = 'handshake';
    t.on('data', transportOnData);
    t.on('end', transportOnEnd);
    t.on('error', transportOnError);
    t.on('close', transportOnClose);
    t.on('drain', transportOnDrain);
    if (log.enabled) log('%s connection started over %s', this.role, transport.constructor.name);
    this.handshake!.start();
    if (t.destroyed) process.nextTick(() => this.teardown(new MuxError('ERR_CONNECTION_CLOSED', 'transport was already closed')));
  }

  /**
   * @internal StreamTable: a stream was added. Only with the link's first are the round trips
   * measured and Nagle's delay turned off: an idle link sends one small write at a time (HELLO,
   * keepalive), which Nagle never holds, and ten thousand idle clients skip a probe and a
   * setsockopt each. Later streams may measure again (Liveness.measurePath).
   */
  streamAdded(first: boolean): void {
    this.liveness.measurePath();
    if (first) this.disableNagle();
  }

  /** Nagle off on a socket the library opened or accepted, once the link has a stream (a stream opened before the link is attached waits for it). */
  private disableNagle(): void {
    if (!this.ownsTransport || !this.limits.noDelay || !this.streams.began) return;
    const socket = this.transport as Partial<Pick<Socket, 'setNoDelay'>> | null;
    if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
  }

  /** @internal HandshakeHost */
  helloReceived(settings: Readonly<PeerSettings>): void {
    this.peer = settings;
    if (this.role === 'server') this.peerHello = settings.hello;
  }

  /** @internal HandshakeHost */
  holdFrames(): void {
    this.decoder.pause();
    this.pauseReading(PauseReason.HANDSHAKE);
  }

  /** @internal HandshakeHost */
  releaseFrames(): void {
    this.resumeReading(PauseReason.HANDSHAKE);
    try {
      this.decoder.resume();
    } catch (err) {
      this.failProtocol(err);
    }
    if (this.toDeliver !== null && this.toDeliver.length !== 0) this.deliverStaged();
  }

  /** @internal HandshakeHost: starts the connection's work and lets the streams opened meanwhile go. */
  becomeReady(): void {
    this.state = 'ready';
    const handshake = this.handshake!;
    this.scheduler.framesOut += handshake.framesOut;
    this.scheduler.bytesOut += handshake.bytesOut;
    this.handshake = null;
    this.liveness.start();
    if (this.limits.idleTimeout !== 0) this.shutdown.updateIdleTimer();
    const peer = this.peer!;
    this.scheduler.addSendCredit(peer.connectionWindow);
    if (this.lazyOpening !== null) this.lazyOpening.openWaiting(peer); // streams opened during the handshake
    if (log.enabled) log('%s connection ready (peer window %d, peer max streams %d)', this.role, peer.initialWindow, peer.maxStreams);
    this.emit('connect');
    if (this.hooks) this.hooks.onReady(this);
    // What was queued during the handshake goes out now; most links have nothing yet.
    if (this.scheduler.hasWork()) this.scheduler.schedule();
  }

  // ---- opening streams: see stream-opening.ts and admission.ts ---------------------------

  /** @internal Implements `StreamPool.createStream`. */
  openStream(meta: JsonValue | undefined, ack: ((stream: MuxStream) => void) | undefined): MuxStream | Promise<MuxStream> {
    return this.opening.open(meta, ack);
  }

  /** @internal AdmissionHost, ShutdownHost */
  get connection(): MuxConnection {
    return this;
  }

  /** @internal A `stream` listener was added. */
  scheduleBacklog(): void {
    if (this.lazyAdmission !== null) this.lazyAdmission.scheduleDrain();
  }

  // ---- frames from the peer --------------------------------------------------------------

  /** @internal FrameSink */
  onData(streamId: number, flags: number, piece: Buffer, last: boolean, continued: boolean): void {
    if (this.state !== 'ready') throw new MuxError('ERR_HANDSHAKE_FAILED', 'DATA before the handshake completed');
    const stream = this.streams.get(streamId);
    const size = piece.length;
    if (size > 0) {
      this.connectionWindow.receive(size);
    }
    if (stream === undefined) {
      if (!this.streams.wasOpened(streamId)) throw new MuxError('ERR_PROTOCOL', `DATA for stream ${streamId}, which was never opened`);
      // Late data for a stream we already closed: dropped, and its credit goes straight back.
      if (size > 0) this.connectionWindow.release(size);
      else if (!(flags & Flag.FIN) && !this.wastedWork.spend(1)) this.calmDown('empty DATA frames');
      return;
    }
    if (stream.finReceived) throw new MuxError('ERR_PROTOCOL', `DATA on stream ${streamId} after its FIN`);
    if (size > 0) {
      if (size > stream.receiveWindow) {
        throw new MuxError(
          'ERR_FLOW_CONTROL',
          `stream ${streamId} received ${size} bytes with only ${stream.receiveWindow} bytes of window left`,
        );
      }
      this.receivedBuffered += size;
      if (streamId !== this.lastDataStreamId) {
        // Another stream receives data: no stream has the connection to itself (window tuning).
        if (this.lastDataStreamId !== 0) this.contendedAt = performance.now();
        this.lastDataStreamId = streamId;
      }
      const cost = stream.onData(piece, continued);
      if (cost !== 0) {
        this.account.chargeData(cost);
        if (this.account.exceeded) this.overBudget();
      }
    } else if (last && !(flags & Flag.FIN) && !this.wastedWork.spend(1)) {
      this.calmDown('empty DATA frames');
    }
    if (last) {
      this.framesIn++;
      if (flags & Flag.FIN) stream.onFin();
    }
  }

  /** @internal FrameSink */
  onControl(type: FrameType, flags: number, streamId: number, payload: Buffer): void {
    this.framesIn++;
    if (this.state === 'handshake') return this.handshake!.onFrame(type, payload);
    switch (type) {
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdateFrame(streamId, payload.readUInt32BE(0));
      case FrameType.PING:
        if (!(flags & Flag.ACK) && !this.wastedWork.spend(1)) this.calmDown('pings');
        return this.liveness.onPing(flags, payload);
      case FrameType.GO_AWAY:
        return this.shutdown.onGoAway(payload);
      case FrameType.OPEN:
        return this.opening.onOpen(streamId, payload);
      case FrameType.ACCEPT:
        return this.opening.onAccept(streamId);
      case FrameType.REFUSE:
        return this.opening.onRefuse(streamId, payload);
      case FrameType.RESET: {
        const stream = this.streams.lookup(streamId, 'RESET');
        const { code, reason } = decodeCodeAndReason(payload);
        if (log.enabled) log('%s stream %d reset by the peer: %s %s', this.role, streamId, WireErrorCode[code] ?? code, reason);
        if (!this.wastedWork.spend(1)) this.calmDown('stream resets');
        if (stream) stream.abort(errorFromReset(code, reason));
        return;
      }
      case FrameType.HELLO:
        throw new MuxError('ERR_PROTOCOL', 'HELLO after the handshake');
      default:
        throw new MuxError('ERR_PROTOCOL', `unexpected frame type ${String(type)}`);
    }
  }

  /** @internal FrameSink */
  onOversizeOpen(streamId: number, length: number): void {
    this.opening.onOversizeOpen(streamId, length);
  }

  private onWindowUpdateFrame(streamId: number, increment: number): void {
    if (increment === 0) throw new MuxError('ERR_PROTOCOL', `WINDOW_UPDATE of 0 on stream ${streamId}`);
    if (streamId === 0) {
      if (!this.scheduler.addSendCredit(increment)) {
        throw new MuxError('ERR_FLOW_CONTROL', `connection WINDOW_UPDATE grows the window past ${MAX_WINDOW}`);
      }
      return;
    }
    const stream = this.streams.lookup(streamId, 'WINDOW_UPDATE');
    if (!stream) return;
    if (stream.sendWindow + increment > MAX_WINDOW) {
      throw new MuxError('ERR_FLOW_CONTROL', `WINDOW_UPDATE on stream ${streamId} grows the window past ${MAX_WINDOW}`);
    }
    stream.onWindowUpdate(increment);
  }

  // ---- ping and keepalive: see liveness.ts -----------------------------------------------

  /** Sends a PING and resolves to the round-trip time in milliseconds. */
  ping(): Promise<number> {
    if (this.state === 'closed' || (this.lazyShutdown !== null && this.lazyShutdown.ending)) {
      return Promise.reject(new MuxError('ERR_CONNECTION_CLOSED', 'connection is closed'));
    }
    return this.liveness.ping();
  }

  /** @internal LivenessHost */
  bytesMoved(): number {
    return this.bytesIn + (this.handshake === null ? 0 : this.handshake.bytesOut) + this.scheduler.bytesOut;
  }

  /** @internal LivenessHost */
  onKeepAliveTimeout(err: MuxError): void {
    this.destroyWith(err);
  }

  // ---- writing ---------------------------------------------------------------------------

  /** @internal LivenessHost */
  queueControl(frame: Buffer): void {
    this.scheduler.queueControl(frame);
  }

  /** @internal StreamHost */
  scheduleSend(stream: MuxStream): void {
    // Before the handshake completes, becomeReady() queues what waits.
    if (stream.id !== 0 && this.state === 'ready') this.scheduler.queueStream(stream);
  }

  /** @internal StreamHost */
  sendWindowUpdate(stream: MuxStream, increment: number): void {
    if (this.state === 'closed') return;
    this.queueControl(encodeWindowUpdate(stream.id, increment));
    this.connectionWindow.releaseWithStreamUpdate();
  }

  /** @internal StreamHost */
  sendReset(stream: MuxStream, code: WireErrorCode, reason: string): void {
    if (stream.id === 0 || this.streams.get(stream.id) !== stream || this.state === 'closed') return;
    if (stream.pendingMeta) return; // its OPEN never left: nothing to reset
    if (log.enabled) log('%s resetting stream %d: %s %s', this.role, stream.id, WireErrorCode[code] ?? code, reason);
    this.queueControl(encodeFrame(FrameType.RESET, 0, stream.id, encodeCodeAndReason(code, reason)));
  }

  /** @internal StreamHost */
  streamClosed(stream: MuxStream): void {
    if (this.lazyOpenDeadlines !== null) this.lazyOpenDeadlines.forget(stream);
    if (stream.chargedCost !== 0) {
      this.account.releaseStream(stream.chargedCost, stream.chargedMeta);
      stream.chargedCost = stream.chargedMeta = 0;
    }
    if (!this.streams.remove(stream)) return;
    // A closed stream contends with nobody: the next one to receive data may have the connection to itself.
    if (stream.id === this.lastDataStreamId) this.lastDataStreamId = 0;
    if (this.lazyWindowBudget !== null) this.lazyWindowBudget.release(stream);
    if (this.streams.size === 0) this.shutdown.updateIdleTimer();
    this.shutdown.maybeFinish();
  }

  /** @internal StreamHost */
  releaseReceived(bytes: number, cost: number): void {
    if (cost !== 0) this.account.releaseData(cost);
    if (bytes === 0) return;
    this.receivedBuffered -= bytes;
    this.connectionWindow.release(bytes);
  }

  /** @internal StreamHost */
  deliverLater(stream: MuxStream): void {
    (this.toDeliver ??= []).push(stream);
  }

  /** The peer made us hold more than `maxBufferedBytes`: it broke its credit or stopped reading. */
  private overBudget(): void {
    const { data, streams, control } = this.account;
    throw new MuxError(
      'ERR_BUFFER_LIMIT',
      `the peer made this connection hold ${data + streams + control} bytes (data ${data}, streams ${streams}, queued answers ${control}); the limit is ${this.limits.maxBufferedBytes}`,
    );
  }

  /** @internal The peer wasted too much of our work: go away with ENHANCE_YOUR_CALM. */
  calmDown(what: string): never {
    throw new MuxError(
      'ERR_RATE_LIMIT',
      `too much work without data (${what}): more than ${this.limits.wastedWorkBurst} at once or ${this.limits.wastedWorkPerSecond} a second`,
    );
  }

  /** @internal StreamHost: see window-budget.ts. */
  tuneWindow(stream: MuxStream, current: number, elapsedMs: number): number {
    return this.windowBudget.tune(stream, current, elapsedMs, this.contendedAt);
  }

  /** @internal StreamHost, ConnectionWindowHost */
  windowUpdateThreshold(window: number): number {
    return windowUpdateThreshold(window, isFastPath(this.liveness));
  }

  /** @internal StreamHost */
  windowResized(stream: MuxStream, delta: number): void {
    this.windowBudget.resized(stream, delta);
    // A reader that pauses would otherwise hold the connection window before its stream's fills.
    if (delta > 0) this.connectionWindow.streamWindowGrew();
  }

  /** @internal SchedulerHost */
  writableTransport(): Duplex | null {
    const t = this.transport;
    if (t === null || this.state !== 'ready' || t.destroyed || t.writableEnded) return null;
    return t;
  }

  /** @internal SchedulerHost */
  frameLimit(): number {
    return Math.min(this.peer!.maxFrameSize, this.limits.maxFrameSize);
  }

  /** @internal ConnectionWindowHost */
  streamWindowsTotal(): number {
    return this.streams.size * this.limits.initialWindow + (this.lazyWindowBudget === null ? 0 : this.lazyWindowBudget.grownBy);
  }

  /** @internal SchedulerHost */
  controlQueued(delta: number): void {
    this.account.addControl(delta);
  }

  /** @internal SchedulerHost */
  writeBlocked(): void {
    if (this.state === 'ready') this.liveness.writeBlocked();
  }

  /** @internal The transport drained. */
  onDrain(): void {
    this.liveness.writeDrained();
    this.scheduler.flush();
  }

  /** @internal Other connections had their turn. */
  endYield(): void {
    this.resumeReading(PauseReason.YIELD);
  }

  /** @internal SchedulerHost: control frames pile up because the peer does not read them. */
  setReadingPaused(paused: boolean): void {
    if (paused) this.pauseReading(PauseReason.CONTROL_BACKLOG);
    else this.resumeReading(PauseReason.CONTROL_BACKLOG);
  }

  private pauseReading(reason: PauseReason): void {
    const wasReading = this.pausedFor === 0;
    this.pausedFor |= reason;
    if (!wasReading || !this.transport) return;
    this.transport.pause();
    if (this.state === 'ready' && reason !== PauseReason.YIELD) this.liveness.setReading(false);
  }

  private resumeReading(reason: PauseReason): void {
    if ((this.pausedFor & reason) === 0) return;
    this.pausedFor &= ~reason;
    if (this.pausedFor !== 0 || !this.transport || this.state === 'closed') return;
    this.liveness.setReading(true);
    this.transport.resume();
  }

  /** @internal Writes what is queued; the transport's `drain` calls it too. */
  flush(): void {
    this.scheduler.flush();
  }

  // ---- transport events --------------------------------------------------------------------

  /** @internal */
  onTransportData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.bytesIn += chunk.length;
    const framesBefore = this.framesIn;
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.failProtocol(err);
    }
    if (this.toDeliver !== null && this.toDeliver.length !== 0) this.deliverStaged();
    if (this.framesIn - framesBefore > FRAMES_PER_TURN && this.state === 'ready') {
      this.pauseReading(PauseReason.YIELD);
      setImmediate(resumeAfterYield, this);
    }
  }

  /** Small pieces decoded from one read reach each waiting reader as one chunk. */
  private deliverStaged(): void {
    const streams = this.toDeliver!;
    for (let i = 0; i < streams.length; i++) streams[i].deliverStaged();
    streams.length = 0;
  }

  private failProtocol(err: unknown): void {
    const error = err instanceof MuxError ? err : new MuxError('ERR_PROTOCOL', String(err), { cause: err });
    if (log.enabled) log('%s protocol failure: %s %s', this.role, error.code, error.message);
    // Tell a muxer peer why, unless it never spoke our protocol at all.
    if (this.state === 'ready') this.writeControlNow(encodeGoAway(error.wireCode, error.message));
    else if (this.state === 'handshake' && isProtocolError(error)) this.handshake!.explainFailure(error, this.decoder.peerVersion);
    this.shutdown.endTransport();
    this.teardown(error);
  }

  /** Puts pending control frames and `frame` on the transport now, ahead of any stream data. */
  private writeControlNow(frame: Buffer): void {
    const t = this.transport;
    if (!t || t.destroyed || t.writableEnded) return;
    this.scheduler.queueControl(frame);
    this.scheduler.flushControl(t);
  }

  /** @internal */
  onTransportEnd(): void {
    // The peer finished sending. Our side follows (net sockets do so on their own).
    const t = this.transport;
    if (t && !t.writableEnded && !t.destroyed) {
      if (this.state === 'ready') this.flush();
      t.end();
    }
  }

  /** @internal */
  onTransportError(err: Error): void {
    if (!this.shutdown.transportError) this.shutdown.transportError = err;
    if (log.enabled) log('%s transport error: %s', this.role, err.message);
    if (this.transport && !this.transport.destroyed) this.transport.destroy();
    this.teardown(this.shutdown.closeError());
  }

  /** @internal */
  onTransportClose(): void {
    this.teardown(this.shutdown.closeError());
  }

  // ---- closing: the graceful part is in shutdown.ts ----------------------------------------

  /**
   * Graceful close: sends GO_AWAY, refuses new streams both ways, lets open streams finish
   * (at most `closeTimeout` ms, then they are reset), then closes. Idempotent.
   */
  close(callback?: (err?: Error) => void): void {
    if (callback) {
      if (this.state === 'closed') {
        process.nextTick(callback);
        return;
      }
      (this.closeCallbacks ??= []).push(callback);
    }
    if (this.state === 'closed' || this.shutdown.sentGoAway) return;
    if (this.state !== 'ready') {
      this.destroy();
      return;
    }
    this.shutdown.goAway(WireErrorCode.NORMAL, 'closing');
  }

  /** @internal ShutdownHost */
  flushControl(): void {
    const t = this.transport;
    if (t && !t.destroyed && !t.writableEnded) this.scheduler.flushControl(t);
  }

  /**
   * Closes at once: every open stream errors with `ERR_CONNECTION_CLOSED`. With `err`, the
   * peer is told (GO_AWAY) and this connection emits `error` if anyone listens. Idempotent.
   */
  destroy(err?: Error): void {
    if (this.state === 'closed') return;
    const t = this.transport;
    if (err && t && this.state === 'ready' && !t.destroyed) {
      const muxErr = err instanceof MuxError ? err : new MuxError('ERR_CONNECTION_CLOSED', err.message, { cause: err });
      this.writeControlNow(encodeGoAway(muxErr.wireCode, muxErr.message));
    }
    this.appDestroyed = !err;
    if (t && !t.destroyed) {
      if (err) this.shutdown.endTransport();
      else t.destroy();
    }
    this.teardown(err ? (err instanceof MuxError ? err : new MuxError('ERR_CONNECTION_CLOSED', err.message, { cause: err })) : null);
  }

  /** @internal Ends the connection because of `err` (a timeout), telling the peer. */
  destroyWith(err: MuxError): void {
    this.destroy(err);
    this.appDestroyed = false;
  }

  /** @internal Set when the application itself destroyed the connection without an error. */
  protected appDestroyed = false;

  /** @internal Tears everything down once; `err` is why (null for a clean close). */
  teardown(err: MuxError | null): void {
    if (this.state === 'closed') return;
    const wasHandshaking = this.state === 'handshake' || this.state === 'idle';
    this.state = 'closed';
    if (this.handshake !== null) this.handshake.stop();
    if (this.lazyShutdown !== null) this.lazyShutdown.stop();
    if (this.lazyOpenDeadlines !== null) this.lazyOpenDeadlines.clear();
    const t = this.transport;
    if (t && !(this.lazyShutdown !== null && this.lazyShutdown.ending) && !t.destroyed) t.destroy();

    // Made only when a stream or a ping is there to receive it: an idle connection's close is cheap.
    let streamErr: MuxError | null = null;
    const closedError = (): MuxError =>
      (streamErr ??= new MuxError('ERR_CONNECTION_CLOSED', err ? `connection closed: ${err.message}` : 'connection closed', {
        cause: err ?? undefined,
      }));
    const streams = this.streams.clear();
    if (this.lazyOpening !== null) streams.push(...this.lazyOpening.takeWaiting());
    if (this.lazyAdmission !== null) this.lazyAdmission.clear();
    this.scheduler.clear();
    if (this.lazyWindowBudget !== null) this.lazyWindowBudget.clear();
    this.account.close();
    this.toDeliver = null;
    for (const stream of streams) stream.abort(closedError());
    this.liveness.stop(closedError);

    const reportErr = this.appDestroyed ? null : err;
    if (log.enabled) log('%s connection closed%s', this.role, reportErr ? `: ${reportErr.code} ${reportErr.message}` : '');
    // A client that reconnects reports `reconnecting` instead, and is not closed.
    if (this.linkLost(reportErr, this.appDestroyed)) return;
    this.onClosed(reportErr, wasHandshaking);
    if (this.closeCallbacks !== null) for (const callback of this.closeCallbacks.splice(0)) callback();
    if (this.hooks !== null && this.hooks.onClose) this.hooks.onClose(this);
    this.emit('close', reportErr !== null);
  }

  /** @internal The link is gone; true if a new one is on its way (MuxClient's reconnect). */
  protected linkLost(_err: MuxError | null, _byApplication: boolean): boolean {
    return false;
  }

  /** @internal How the error is reported; MuxClient and the server hooks refine it. */
  protected onClosed(err: MuxError | null, wasHandshaking: boolean): void {
    if (wasHandshaking && this.hooks) {
      if (err) this.hooks.onHandshakeFailed(this, err);
      return;
    }
    if (err && this.listenerCount('error') > 0) this.emit('error', err);
  }
}

/** A `hello` that could not be sent fails at construction, not later inside the handshake. */
function checkHello(hello: unknown): void {
  try {
    encodeIJson(hello, 'hello');
  } catch (err) {
    throw new MuxError('ERR_INVALID_CONFIG', `option ${(err as Error).message}`, { cause: err });
  }
}

// Module-level listeners: no closure per connection, and clear names in stack traces.
function resumeAfterYield(connection: MuxConnection): void {
  connection.endYield();
}
function transportOnData(this: Transport, chunk: Buffer): void {
  this[kSession]!.onTransportData(chunk);
}
function transportOnEnd(this: Transport): void {
  this[kSession]!.onTransportEnd();
}
function transportOnError(this: Transport, err: Error): void {
  this[kSession]!.onTransportError(err);
}
function transportOnClose(this: Transport): void {
  this[kSession]!.onTransportClose();
}
function transportOnDrain(this: Transport): void {
  this[kSession]!.onDrain();
}
function onNewListener(this: MuxConnection, event: string | symbol): void {
  if (event === 'stream') this.scheduleBacklog();
}
