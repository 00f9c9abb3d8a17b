/**
 * This side's receive window for a whole connection (PROTOCOL.md, section 8): the DATA the
 * peer may send on all streams together, given back as bytes leave the memory account, and
 * grown toward what the streams' windows offer together.
 *
 * It starts at `connectionWindow`. At each grant, or when a stream's window grows, it grows
 * toward the sum of the open streams' windows (at most doubling), up to
 * `maxConnectionWindow`, and on a server only while the memory pool covers what has been
 * promised: a busy or distant connection gets room, and thousands of idle peers are promised
 * little. HTTP/2 leaves this to the application.
 */

import type { SessionLimits } from '../config';
import { encodeWindowUpdate } from '../codec/encode';
import { MuxError } from '../errors';
import type { MemoryAccount } from './memory-account';
import { windowUpdateThreshold } from './window-tuning';

/** What a {@link ConnectionWindow} needs from its connection. */
export interface ConnectionWindowHost {
  /** Grants may go out (the connection is ready). */
  readonly ready: boolean;
  /** What the open streams' receive windows offer together, in bytes. */
  streamWindowsTotal(): number;
  queueControl(frame: Buffer): void;
  /** Bytes a `window`-byte receive window lets the reader consume before its update goes back. */
  windowUpdateThreshold(window: number): number;
}

/** The connection-level receive window of one connection. */
export class ConnectionWindow {
  /** DATA bytes the peer may still send. */
  private credit: number;
  /** Bytes read or dropped since the last grant. */
  private unacked = 0;
  private size: number;
  /** Released bytes that send an update: set at each grant, as the window and the path change. */
  private updateAfter: number;

  constructor(
    private readonly host: ConnectionWindowHost,
    private readonly limits: Pick<SessionLimits, 'connectionWindow' | 'maxConnectionWindow'>,
    private readonly account: Pick<MemoryAccount, 'reserveGrowth'>,
  ) {
    this.credit = this.size = limits.connectionWindow;
    this.updateAfter = windowUpdateThreshold(this.size, false);
  }

  /** `bytes` of DATA arrived; throws `ERR_FLOW_CONTROL` past the credit. */
  receive(bytes: number): void {
    if (bytes > this.credit) {
      throw new MuxError('ERR_FLOW_CONTROL', `received ${bytes} bytes of DATA with only ${this.credit} bytes of connection window left`);
    }
    this.credit -= bytes;
    // The peer is about to run out while it is owed credit: give it back now, not at the next read.
    if (this.unacked !== 0 && this.unacked >= this.credit) this.release(0);
  }

  /**
   * `bytes` left the account (read, or dropped): the peer may send as many again. Batched as
   * stream updates are (windowUpdateThreshold), unless the peer has less credit left than it
   * is owed: with other streams' unread bytes keeping theirs, half a window may never come
   * back, and the stream being read would wait for ever.
   */
  release(bytes: number): void {
    this.unacked += bytes;
    const owed = this.unacked;
    if ((owed < this.updateAfter && owed < this.credit) || !this.host.ready) return;
    this.unacked = 0;
    this.grant(owed + this.growth());
  }

  /**
   * A stream's window update is being queued: what the connection owes goes in the same write.
   * Batched on their own, the two counts cross their thresholds at different reads, and each
   * update is a write on this side and a read on the peer's.
   */
  releaseWithStreamUpdate(): void {
    if (this.unacked === 0 || !this.host.ready) return;
    const owed = this.unacked;
    this.unacked = 0;
    this.grant(owed + this.growth());
  }

  /** A stream's window grew: the connection's follows at once, or it would cap the stream. */
  streamWindowGrew(): void {
    if (!this.host.ready) return;
    const growth = this.growth();
    if (growth !== 0) this.grant(growth);
  }

  /** How much the window grows now (it is already resized), within its limits and the pool. */
  private growth(): number {
    const target = Math.min(this.limits.maxConnectionWindow, this.host.streamWindowsTotal());
    if (this.size >= target) return 0;
    const growth = Math.min(this.size, target - this.size);
    if (!this.account.reserveGrowth(growth)) return 0;
    this.size += growth;
    return growth;
  }

  private grant(increment: number): void {
    this.credit += increment;
    this.updateAfter = this.host.windowUpdateThreshold(this.size);
    this.host.queueControl(encodeWindowUpdate(0, increment));
  }
}
