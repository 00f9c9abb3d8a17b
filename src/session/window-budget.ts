/**
 * The connection's share of receive-window auto-tuning: how far the windows of all its
 * streams together have grown beyond `initialWindow`, and taking growth back.
 *
 * window-tuning.ts decides one stream's window from timing alone; this class adds what
 * only the connection knows. Growth is paid out of `maxBufferedBytes`: all windows together
 * grow by at most that much. When the budget blocks a stream that needs more, windows that
 * other streams grew and no longer use go back to the initial size.
 *
 * The bytes waiting for the application (the other use of `maxBufferedBytes`) are counted
 * by the session itself: it counts them per DATA frame, where an extra hop would cost.
 */

import type { SessionLimits } from '../config';
import type { MuxStream } from './stream';
import { mayReclaim, tuneWindow, type RoundTrips } from './window-tuning';

// A stream counts as alone on its connection when no other stream received data this long.
const SOLO_QUIET_MS = 100;

/** Receive-window growth of one connection's streams, together, within its budget. */
export class WindowBudget {
  /** Bytes by which auto-tuning grew the windows of open streams, together. */
  private growth = 0;
  /** Streams whose receive window is above the initial one: where the budget went. */
  // Made when a window first grows: most connections never grow one.
  private grown: Set<MuxStream> | null = null;
  private lastReclaimAt = -Infinity;

  constructor(
    private readonly limits: Pick<SessionLimits, 'initialWindow' | 'maxWindow' | 'maxBufferedBytes'>,
    private readonly roundTrips: RoundTrips,
  ) {}

  /**
   * The window size `stream` uses from now on: its reader consumed half of a `current`-byte
   * window `elapsedMs` after the previous grant. `contendedAt` is when another stream last
   * received data (`performance.now()` time).
   */
  tune(stream: MuxStream, current: number, elapsedMs: number, contendedAt: number): number {
    const now = performance.now();
    // Made with the unbounded budget first: Infinity makes the field a double from the start,
    // where a whole number first and Infinity later would change its representation in V8
    // (a map deprecation that deoptimises what uses these objects, on the first tuning).
    const unbounded = {
      current,
      elapsedMs,
      minRtt: this.roundTrips.minRtt,
      samples: this.roundTrips.samples,
      initialWindow: this.limits.initialWindow,
      maxWindow: this.limits.maxWindow,
      budgetLeft: Infinity,
      solo: now - contendedAt > SOLO_QUIET_MS,
    };
    const size = tuneWindow({ ...unbounded, budgetLeft: this.limits.maxBufferedBytes - this.growth });
    if (size >= tuneWindow(unbounded) || !this.reclaim(stream, now)) return size;
    return tuneWindow({ ...unbounded, budgetLeft: this.limits.maxBufferedBytes - this.growth });
  }

  /** Bytes by which the windows of open streams have grown beyond `initialWindow`, together. */
  get grownBy(): number {
    return this.growth;
  }

  /** `stream`'s receive window changed size by `delta` bytes (it is already resized). */
  resized(stream: MuxStream, delta: number): void {
    this.growth += delta;
    if (stream.receiveWindowSize > this.limits.initialWindow) (this.grown ??= new Set()).add(stream);
    else if (this.grown !== null) this.grown.delete(stream);
  }

  /** The connection is gone: forget every stream (so none is kept alive from here). */
  clear(): void {
    this.growth = 0;
    this.grown = null;
  }

  /** `stream` closed: whatever its window grew returns to the budget. */
  release(stream: MuxStream): void {
    this.growth -= stream.receiveWindowSize - this.limits.initialWindow;
    if (this.grown !== null) this.grown.delete(stream);
  }

  /**
   * The budget blocks `needy`'s growth: gives back the windows that other streams grew and
   * no longer use (see window-tuning.ts). At most once per round trip. True if any shrank.
   */
  private reclaim(needy: MuxStream, now: number): boolean {
    const minRtt = this.roundTrips.minRtt;
    if (minRtt === null || now - this.lastReclaimAt < minRtt) return false;
    this.lastReclaimAt = now;
    const before = this.growth;
    if (this.grown === null) return false;
    for (const stream of this.grown) {
      if (stream !== needy && mayReclaim(stream.windowIdleMs(now), minRtt)) stream.shrinkWindow(this.limits.initialWindow, now);
    }
    return this.growth < before;
  }
}
