/**
 * Opening streams, both ways (PROTOCOL.md, section 7.1): this side's OPEN until the peer's
 * ACCEPT or REFUSE, and the peer's OPEN until it is handed to admission or refused.
 *
 * It owns the checks a stream must pass before it exists on the wire: the peer's limits
 * (`maxStreams`, `maxMetaBytes`, from its HELLO) for our opens, ours for the peer's, and
 * GO_AWAY in either direction. Streams opened before the handshake completes wait here,
 * then are checked one by one once the peer's limits are known.
 */

import { MEMORY_COSTS, type SessionLimits } from '../config';
import type { JsonValue } from '../meta';
import type { MemoryAccount } from './memory-account';
import type { WastedWork } from './wasted-work';
import { encodeIJson, parseIJson } from '../protocol/json';
import { decodeCodeAndReason, encodeCodeAndReason, encodeFrame } from '../codec/encode';
import { errorFromRefusal, MuxError } from '../errors';
import { FrameType, WireErrorCode } from '../protocol/constants';
import type { PeerSettings } from '../protocol/hello';
import { BACKLOG_FULL, type Admission } from './admission';
import type { OpenDeadlines } from './open-deadlines';
import type { MuxConnection } from './session';
import type { Shutdown } from './shutdown';
import { destroyQuietly, MuxStream, OpenState, type AnyMuxStream, type StreamHost } from './stream';
import type { StreamTable } from './stream-table';
import type { Role, SessionState } from './types';
import { debug as log } from '../debug';

/** What {@link StreamOpening} needs from its connection, which is also the new streams' host. */
export interface OpeningHost extends StreamHost {
  readonly role: Role;
  readonly state: SessionState;
  /** The peer's HELLO settings; null until it arrives. */
  readonly peer: Readonly<PeerSettings> | null;
  /** What the peer makes the connection hold: its streams and metas are charged here. */
  readonly account: MemoryAccount;
  /** Work the peer causes without moving data; refusals spend it. */
  readonly wastedWork: WastedWork;
  queueControl(frame: Buffer): void;
  /** The peer wasted too much work: throws the error that ends the connection. */
  calmDown(what: string): never;
}

/** The open handshake of one connection's streams, in both directions. */
export class StreamOpening {
  /** Streams this side opened before the handshake completed; their OPEN is not sent yet. */
  private readonly waitingForReady: MuxStream[] = [];

  constructor(
    private readonly host: OpeningHost,
    private readonly streams: StreamTable,
    private readonly admission: Admission<MuxConnection>,
    private readonly deadlines: OpenDeadlines,
    private readonly shutdown: Pick<Shutdown, 'sentGoAway' | 'receivedGoAway' | 'updateIdleTimer'>,
    private readonly limits: SessionLimits,
  ) {}

  /** Opens a stream to the peer: see `StreamPool.createStream`. */
  open(meta: JsonValue | undefined, ack: ((stream: MuxStream) => void) | undefined): MuxStream | Promise<MuxStream> {
    const value: JsonValue = meta === undefined ? null : meta;
    let metaBytes: Buffer | null = null;
    let problem: MuxError | null = null;
    try {
      metaBytes = encodeIJson(value, 'meta');
    } catch (err) {
      problem = err instanceof MuxError ? err : new MuxError('ERR_INVALID_META', `meta cannot be encoded as JSON: ${String(err)}`);
    }
    const peer = this.host.peer;
    if (!problem && this.host.state === 'closed') problem = new MuxError('ERR_CONNECTION_CLOSED', 'connection is closed');
    if (!problem && peer) problem = this.checkAllowed(peer, metaBytes!);
    if (!problem && this.shutdown.sentGoAway) problem = new MuxError('ERR_GOING_AWAY', 'connection is closing; no new streams');
    const id = this.streams.peekLocalId();
    if (!problem && id === null) problem = new MuxError('ERR_STREAM_LIMIT', 'stream ids are exhausted on this connection');

    const stream = new MuxStream({
      id: problem ? 0 : id!,
      meta: value,
      host: this.host,
      recvWindow: this.limits.initialWindow,
      sendWindow: peer ? peer.initialWindow : 0,
      openState: OpenState.OPENING,
      highWaterMark: this.limits.streamHighWaterMark,
    });
    if (problem) {
      stream.closedOnWire = true;
      const err = problem;
      if (ack) {
        process.nextTick(() => destroyQuietly(stream, err));
        return stream;
      }
      stream.destroy();
      return Promise.reject(err);
    }
    this.streams.addLocal(stream);
    this.deadlines.watch(stream);
    this.shutdown.updateIdleTimer();
    stream.pendingMeta = metaBytes!;
    if (this.host.state === 'ready') this.queueOpen(stream);
    else this.waitingForReady.push(stream);

    // The streams are this very stream, so its own meta type holds for the callbacks.
    if (ack) {
      stream.onAccepted = ack as (accepted: AnyMuxStream) => void;
      return stream;
    }
    return new Promise<MuxStream>((resolve, reject) => {
      stream.onAccepted = resolve as (accepted: AnyMuxStream) => void;
      stream.onRefused = (err) => {
        reject(err);
      };
    });
  }

  /** The handshake is done: the streams opened meanwhile go, one by one against the peer's limits. */
  openWaiting(peer: Readonly<PeerSettings>): void {
    const waiting = this.waitingForReady.splice(0);
    let admitted = 0;
    for (const stream of waiting) {
      if (stream.destroyed) continue;
      stream.sendWindow = peer.initialWindow;
      const problem = this.checkAllowed(peer, stream.pendingMeta!, admitted);
      if (problem) {
        this.streams.remove(stream);
        stream.pendingMeta = null;
        stream.abort(problem);
        continue;
      }
      admitted++;
      this.queueOpen(stream);
    }
  }

  /** The connection closed: hands over the streams still waiting for the handshake. */
  takeWaiting(): MuxStream[] {
    return this.waitingForReady.splice(0);
  }

  /**
   * The peer's OPEN: a new stream for admission, unless a limit, GO_AWAY or the memory
   * account refuses it. The cheap refusals come before the meta is parsed, so a flood of
   * opens that will be refused costs no parsing.
   */
  onOpen(streamId: number, payload: Buffer): void {
    this.streams.claimRemoteId(streamId);
    if (this.shutdown.receivedGoAway) throw new MuxError('ERR_PROTOCOL', `OPEN for stream ${streamId} after the peer's own GO_AWAY`);
    if (this.shutdown.sentGoAway) return this.refuseId(streamId, WireErrorCode.GOING_AWAY, 'connection is closing');
    if (this.streams.remoteOpen >= this.limits.maxStreams) {
      return this.refuseId(streamId, WireErrorCode.STREAM_LIMIT, `at most ${this.limits.maxStreams} concurrent streams`);
    }
    // Refused before a stream object is built: an open flood must cost little per frame.
    if (this.admission.full) return this.refuseId(streamId, WireErrorCode.STREAM_LIMIT, BACKLOG_FULL);
    // A meta costs at least its bytes: when even that does not fit, refuse without parsing.
    // Refusing a large meta costs as much work as it weighs, so a flood of them is cut short.
    const weight = 1 + (payload.length >>> 12);
    let full = this.host.account.admit(MEMORY_COSTS.stream + payload.length, payload.length);
    if (full !== null) return this.refuseId(streamId, WireErrorCode.OVERLOADED, full, weight);
    const parsed = parseIJson(payload, `meta of stream ${streamId}`, 'ERR_INVALID_META');
    const cost = MEMORY_COSTS.stream + parsed.cost;
    full = this.host.account.admit(cost, parsed.cost);
    if (full !== null) return this.refuseId(streamId, WireErrorCode.OVERLOADED, full, weight);
    const stream = new MuxStream({
      id: streamId,
      meta: parsed.value,
      host: this.host,
      recvWindow: this.limits.initialWindow,
      sendWindow: this.host.peer!.initialWindow,
      openState: OpenState.PENDING,
      highWaterMark: this.limits.streamHighWaterMark,
    });
    stream.chargedCost = cost;
    stream.chargedMeta = parsed.cost;
    this.host.account.chargeStream(cost, parsed.cost);
    this.streams.addRemote(stream);
    this.shutdown.updateIdleTimer();
    this.admission.admit(stream, parsed.value);
  }

  /** An OPEN whose meta is over `maxMetaBytes`: refused unread. */
  onOversizeOpen(streamId: number, length: number): void {
    if (this.host.state !== 'ready') throw new MuxError('ERR_HANDSHAKE_FAILED', 'OPEN before the handshake completed');
    this.streams.claimRemoteId(streamId);
    if (this.shutdown.receivedGoAway) throw new MuxError('ERR_PROTOCOL', `OPEN for stream ${streamId} after the peer's own GO_AWAY`);
    this.refuseId(streamId, WireErrorCode.META_TOO_LARGE, `meta of ${length} bytes exceeds maxMetaBytes ${this.limits.maxMetaBytes}`);
  }

  /** The peer accepted one of our streams. */
  onAccept(streamId: number): void {
    const stream = this.streams.lookupLocal(streamId, 'ACCEPT');
    if (stream && stream.openState !== OpenState.OPENING) {
      throw new MuxError('ERR_PROTOCOL', `ACCEPT for stream ${streamId}, which is not waiting for one`);
    }
    if (stream) {
      this.deadlines.forget(stream);
      stream.onAccept();
    }
  }

  /** The peer refused one of our streams. */
  onRefuse(streamId: number, payload: Buffer): void {
    const stream = this.streams.lookupLocal(streamId, 'REFUSE');
    if (stream && stream.openState !== OpenState.OPENING) {
      throw new MuxError('ERR_PROTOCOL', `REFUSE for stream ${streamId}, which is already accepted`);
    }
    const { code, reason } = decodeCodeAndReason(payload);
    if (log.enabled) log('%s stream %d refused by the peer: %s %s', this.host.role, streamId, WireErrorCode[code] ?? code, reason);
    if (stream) stream.abort(errorFromRefusal(code, reason));
  }

  /** A stream's open was not accepted within `openTimeout`. */
  expire(stream: MuxStream): void {
    const message = `stream ${stream.id} not accepted within ${this.limits.openTimeout} ms`;
    if (stream.openState === OpenState.OPENING) {
      destroyQuietly(stream, new MuxError('ERR_OPEN_TIMEOUT', message));
      return;
    }
    this.admission.refuse(stream, WireErrorCode.OPEN_TIMEOUT, message);
  }

  /** Why a stream with this meta may not be opened now (with `open` local streams), or null. */
  private checkAllowed(peer: Readonly<PeerSettings>, metaBytes: Buffer, open = this.streams.localOpen): MuxError | null {
    if (this.shutdown.sentGoAway || this.shutdown.receivedGoAway) {
      return new MuxError('ERR_GOING_AWAY', 'connection is closing; no new streams');
    }
    if (metaBytes.length > peer.maxMetaBytes) {
      return new MuxError('ERR_META_TOO_LARGE', `meta is ${metaBytes.length} bytes; the peer accepts at most ${peer.maxMetaBytes}`);
    }
    if (open >= peer.maxStreams) {
      return new MuxError('ERR_STREAM_LIMIT', `the peer allows at most ${peer.maxStreams} concurrent streams from this side`);
    }
    return null;
  }

  private queueOpen(stream: MuxStream): void {
    const metaBytes = stream.pendingMeta!;
    stream.pendingMeta = null;
    this.host.queueControl(encodeFrame(FrameType.OPEN, 0, stream.id, metaBytes));
    this.host.scheduleSend(stream);
  }

  private refuseId(streamId: number, code: WireErrorCode, reason: string, work = 1): void {
    if (!this.host.wastedWork.spend(work)) this.host.calmDown('refused opens');
    if (log.enabled) log('%s refused stream %d: %s', this.host.role, streamId, reason);
    this.host.queueControl(encodeFrame(FrameType.REFUSE, 0, streamId, encodeCodeAndReason(code, reason)));
  }
}
