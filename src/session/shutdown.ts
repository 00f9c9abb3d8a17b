/**
 * How a ready connection winds down (PROTOCOL.md, section 10): GO_AWAY sent (`close()`, the
 * idle timeout) or received, no new streams after it, open streams given `closeTimeout` to
 * finish, then our side of the transport ended once the last control frames are out; and,
 * however it ended, which error the connection reports once its transport is gone.
 *
 * The GO_AWAY flags live here because everything that decides "may a stream still open?"
 * or "is it time to end the transport?" reads them. The session keeps the abrupt endings
 * (`destroy()`, a failed transport or protocol), which tear everything down at once.
 */

import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { SessionLimits } from '../config';
import { decodeCodeAndReason, encodeGoAway } from '../codec/encode';
import { errorFromGoAway, MuxError } from '../errors';
import { WireErrorCode } from '../protocol/constants';
import type { Admission } from './admission';
import type { MuxStream } from './stream';
import type { StreamTable } from './stream-table';
import type { Role, SessionState } from './types';
import { debug as log } from '../debug';

/** What {@link Shutdown} needs from its connection. */
export interface ShutdownHost {
  readonly state: SessionState;
  /** The connection the application knows: it emits `goaway`. */
  readonly connection: EventEmitter;
  readonly transportSocket: Duplex | null;
  queueControl(frame: Buffer): void;
  /** Write every queued control frame now, ahead of stream data. */
  flushControl(): void;
  sendReset(stream: MuxStream, code: WireErrorCode, reason: string): void;
}

// How long the peer has to close its side of the transport after we ended ours.
const END_GRACE_MS = 2000;

/** GO_AWAY both ways, the close and idle timeouts, and ending the transport, for one connection. */
export class Shutdown {
  /** We sent GO_AWAY: no new streams either way. */
  sentGoAway = false;
  /** The peer sent GO_AWAY: we open no new streams. */
  receivedGoAway = false;
  /** Why the peer went away, when it was not a normal (or idle) close. */
  peerError: MuxError | null = null;
  /** Our side of the transport is ending: nothing more will be written. */
  ending = false;
  /** The transport's first error, if it failed. */
  transportError: Error | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly host: ShutdownHost,
    private readonly streams: StreamTable,
    private readonly admission: Pick<Admission<EventEmitter>, 'pending' | 'refuseAll'>,
    private readonly limits: Pick<SessionLimits, 'closeTimeout' | 'idleTimeout'>,
    private readonly role: Role,
  ) {}

  /** Sends GO_AWAY with `code`, refuses what waits, and closes once open streams finish. */
  goAway(code: WireErrorCode, reason: string): void {
    if (log.enabled) log('%s sending GO_AWAY %s %s', this.role, WireErrorCode[code] ?? code, reason);
    this.sentGoAway = true;
    this.host.queueControl(encodeGoAway(code, reason));
    this.admission.refuseAll(WireErrorCode.GOING_AWAY, 'connection is closing');
    this.closeTimer = setTimeout(onCloseTimeout, this.limits.closeTimeout, this);
    this.closeTimer.unref();
    this.maybeFinish();
  }

  /** The peer's GO_AWAY. */
  onGoAway(payload: Buffer): void {
    const { code, reason } = decodeCodeAndReason(payload);
    this.receivedGoAway = true;
    // An idle close is as normal as a plain one: the application hears `goaway`, no error.
    if (code !== WireErrorCode.NORMAL && code !== WireErrorCode.IDLE_TIMEOUT) this.peerError = errorFromGoAway(code, reason);
    if (log.enabled) log('%s received GO_AWAY %s %s', this.role, WireErrorCode[code] ?? code, reason);
    this.host.connection.emit('goaway', code, reason);
    this.maybeFinish();
  }

  /** Ends the transport once GO_AWAY went either way and no stream is left. */
  maybeFinish(): void {
    if (!(this.sentGoAway || this.receivedGoAway) || this.streams.size > 0 || this.ending) return;
    if (this.host.state !== 'ready') return;
    // Whatever is queued (the GO_AWAY, last window updates) must reach the peer first.
    this.host.flushControl();
    this.endTransport();
  }

  /** Ends our side of the transport (once); the peer's side gets a grace period to follow. */
  endTransport(): void {
    const t = this.host.transportSocket;
    if (!t || this.ending) return;
    this.ending = true;
    if (!t.destroyed) t.end();
    // A peer that never closes its side cannot keep our socket: destroy after a grace period.
    const timer = setTimeout(() => t.destroy(), END_GRACE_MS);
    timer.unref();
    t.once('close', () => clearTimeout(timer));
  }

  /** Why the connection closes now that its transport is gone; null for a clean end. */
  closeError(): MuxError | null {
    if (this.peerError) return this.peerError;
    if (this.transportError) {
      const err = this.transportError;
      return new MuxError('ERR_CONNECTION_CLOSED', `connection lost: ${err.message}`, { cause: err });
    }
    if (this.host.state === 'handshake') return new MuxError('ERR_HANDSHAKE_FAILED', 'connection closed during the handshake');
    if (this.streams.size > 0 || this.admission.pending > 0) {
      return new MuxError('ERR_CONNECTION_CLOSED', 'connection closed with streams still open');
    }
    return null;
  }

  /** Runs the idle timer while no stream is open (and only then); call when the count may have changed. */
  updateIdleTimer(): void {
    const timeout = this.limits.idleTimeout;
    if (timeout === 0 || this.host.state !== 'ready' || this.sentGoAway) return;
    if (this.streams.size > 0) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      return;
    }
    if (this.idleTimer) this.idleTimer.refresh();
    else {
      this.idleTimer = setTimeout(onIdleTimeout, timeout, this);
      this.idleTimer.unref();
    }
  }

  /** The connection closed: no timer may fire any more. */
  stop(): void {
    for (const timer of [this.closeTimer, this.idleTimer]) if (timer) clearTimeout(timer);
    this.closeTimer = this.idleTimer = null;
  }

  /** @internal No stream for `idleTimeout` ms: go away (the peer learns why) and close. */
  idleTimedOut(): void {
    this.idleTimer = null;
    if (this.host.state !== 'ready' || this.sentGoAway || this.streams.size > 0) return;
    if (log.enabled) log('%s closing idle connection', this.role);
    this.goAway(WireErrorCode.IDLE_TIMEOUT, `no stream for ${this.limits.idleTimeout} ms`);
  }

  /** @internal closeTimeout expired: reset what is left and close. */
  closeTimedOut(): void {
    const err = new MuxError('ERR_GOING_AWAY', `stream still open ${this.limits.closeTimeout} ms after close()`);
    for (const stream of this.streams.values()) {
      this.host.sendReset(stream, WireErrorCode.GOING_AWAY, err.message);
      this.streams.remove(stream);
      stream.abort(err);
    }
    this.maybeFinish();
  }
}

function onIdleTimeout(shutdown: Shutdown): void {
  shutdown.idleTimedOut();
}

function onCloseTimeout(shutdown: Shutdown): void {
  shutdown.closeTimedOut();
}
