import type { EventEmitter } from 'node:events';
import { encodeCodeAndReason, encodeFrame } from '../codec/encode';
import type { JsonValue } from '../meta';
import { MuxError } from '../errors';
import { FrameType, WireErrorCode } from '../protocol/constants';
import type { OpenDeadlines } from './open-deadlines';
import { OpenState, type MuxStream } from './stream';
import { debug } from '../debug';

/** What {@link Admission} needs from its connection. */
export interface AdmissionHost<Connection extends EventEmitter> {
  /** The connection the application knows: it emits `stream` and is `acceptStream`'s argument. */
  readonly connection: Connection;
  readonly ready: boolean;
  queueControl(frame: Buffer): void;
}

/** Reason sent with a REFUSE when streams wait for the application and the queue is full. */
export const BACKLOG_FULL = 'too many streams waiting for the application';

/**
 * Streams the peer opens, on their way to the application: the `acceptStream` verdict, then
 * the `stream` event and an ACCEPT, or a wait in a bounded backlog until someone listens for
 * `stream`, or a REFUSE with the reason.
 */
export class Admission<Connection extends EventEmitter> {
  private readonly backlog: MuxStream[] = [];
  private drainScheduled = false;
  /** Streams handed to the application so far. */
  accepted = 0;

  constructor(
    private readonly host: AdmissionHost<Connection>,
    /** A stream waiting in the backlog has the connection's open deadline. */
    private readonly deadlines: OpenDeadlines,
    private readonly maxPending: number,
    private readonly acceptStream: ((meta: JsonValue, connection: Connection) => unknown) | undefined,
  ) {}

  /** Streams waiting for a `stream` listener. */
  get pending(): number {
    return this.backlog.length;
  }

  /** True when a stream offered now would have to wait in the backlog, and it is full. */
  get full(): boolean {
    const waits = this.backlog.length > 0 || this.host.connection.listenerCount('stream') === 0;
    return waits && this.backlog.length >= this.maxPending;
  }

  /** Runs `acceptStream` (if any, sync or async) on a stream the peer opened, then offers it. */
  admit(stream: MuxStream, meta: JsonValue): void {
    if (!this.acceptStream) return this.offer(stream);
    let verdict: unknown;
    try {
      verdict = this.acceptStream(meta, this.host.connection);
    } catch (err) {
      return this.refuse(stream, WireErrorCode.REFUSED, reasonOf(err));
    }
    if (typeof verdict === 'object' && verdict !== null && 'then' in verdict) {
      Promise.resolve(verdict).then(
        (result) => this.judge(stream, result),
        (err: unknown) => this.refuse(stream, WireErrorCode.REFUSED, reasonOf(err)),
      );
      return;
    }
    this.judge(stream, verdict);
  }

  /** Refuses `stream` on the wire and ends it locally. */
  refuse(stream: MuxStream, code: WireErrorCode, reason: string): void {
    if (stream.closedOnWire) return;
    const index = this.backlog.indexOf(stream);
    if (index >= 0) this.backlog.splice(index, 1);
    if (debug.enabled) debug('refused stream %d: %s', stream.id, reason);
    this.host.queueControl(encodeFrame(FrameType.REFUSE, 0, stream.id, encodeCodeAndReason(code, reason)));
    stream.abort(new MuxError('ERR_STREAM_REFUSED', `stream refused: ${reason}`));
  }

  /** Refuses every waiting stream (the connection is going away). */
  refuseAll(code: WireErrorCode, reason: string): void {
    for (const stream of this.backlog.splice(0)) this.refuse(stream, code, reason);
  }

  /** Forgets the waiting streams (the connection is gone; they are aborted elsewhere). */
  clear(): void {
    this.backlog.length = 0;
  }

  /** A `stream` listener was added: deliver what waits, once the listener is in place. */
  scheduleDrain(): void {
    if (this.drainScheduled || this.backlog.length === 0) return;
    this.drainScheduled = true;
    process.nextTick(drainTick, this);
  }

  /** @internal */
  drain(): void {
    this.drainScheduled = false;
    while (this.backlog.length > 0 && this.host.connection.listenerCount('stream') > 0 && this.host.ready) {
      const stream = this.backlog.shift()!;
      if (!stream.destroyed) this.deliver(stream);
    }
  }

  private judge(stream: MuxStream, verdict: unknown): void {
    if (stream.destroyed || !this.host.ready) return;
    if (verdict === true || verdict === undefined) return this.offer(stream);
    this.refuse(stream, WireErrorCode.REFUSED, typeof verdict === 'string' ? verdict : 'refused by the application');
  }

  /** Hands an accepted stream to the application, or parks it until someone listens. */
  private offer(stream: MuxStream): void {
    if (stream.destroyed) return;
    const listening = this.host.connection.listenerCount('stream') > 0;
    if (listening && this.backlog.length === 0) return this.deliver(stream);
    if (this.full) return this.refuse(stream, WireErrorCode.STREAM_LIMIT, BACKLOG_FULL);
    this.backlog.push(stream);
    this.deadlines.watch(stream);
    if (listening) this.scheduleDrain();
  }

  private deliver(stream: MuxStream): void {
    this.deadlines.forget(stream);
    stream.openState = OpenState.OPEN;
    this.accepted++;
    this.host.queueControl(encodeFrame(FrameType.ACCEPT, 0, stream.id));
    this.host.connection.emit('stream', stream);
  }
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function drainTick(admission: Admission<EventEmitter>): void {
  admission.drain();
}
