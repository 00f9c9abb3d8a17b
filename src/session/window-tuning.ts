/**
 * Receive-window auto-tuning, as a pure function so its rule can be tested without timing.
 *
 * A reader that empties half its window within a couple of round trips is held back by
 * the window, not by itself: the window grows toward the bandwidth-delay product (x4 when
 * half of it was consumed within two round trips, x2 within four), up to `maxWindow`, and
 * only while the growth of all streams together fits the connection's budget.
 *
 * Windows grow only on paths whose smallest measured round trip is at least
 * MIN_RTT_FOR_GROWTH_MS. Below that the initial window already covers the product, and a
 * ping measured under load includes the queue that a bigger window builds: windows would
 * grow without end and every other stream would wait behind the queue. A window grown on
 * an early, slow sample shrinks back once the path proves fast.
 *
 * The exception: a stream that has the connection to itself (no other stream received
 * data lately) delays nobody, so on a fast path its window may double per grant up to
 * SOLO_WINDOW, which lets one writer of many small messages keep the pipe full. As soon as
 * another stream receives data, the window shrinks back to the initial one.
 *
 * The budget is shared, so a window grown for a burst must not hold it for ever: when a
 * stream's growth is blocked by the budget, windows of other streams that have not consumed
 * half of themselves for RECLAIM_IDLE_RTTS round trips go back to the initial size (their
 * credit already granted stays valid; they simply grant less until they are back inside it).
 */

/**
 * Smallest round trip, in milliseconds, on which windows may grow. Pings between two busy
 * Node processes on one machine take a millisecond or more; a real long path takes longer.
 */
export const MIN_RTT_FOR_GROWTH_MS = 5;
/** Round-trip samples needed before tuning trusts them (the first is often slow). */
export const MIN_RTT_SAMPLES = 2;
/**
 * Most bytes consumed before a window update goes back on a long or unmeasured path, in
 * bytes. Half a 256 KiB window is below it; half of a window grown for a long path (8 MiB of
 * 16) would sit unacknowledged for a round trip and cap the path's rate at half the window
 * per round trip.
 */
export const WINDOW_UPDATE_STEP = 1024 * 1024;
/**
 * Largest window on a fast path for a stream that has the connection to itself, in bytes. A
 * process young enough that its per-frame path is not optimised yet needs this much in flight
 * to keep the pipe full: 1 GiB from new processes moved at 1.3–1.7 GB/s with 2 MiB and
 * 1.9–2.0 GB/s with 8 MiB (16 MiB added little), with no change to the fairness figure.
 */
export const SOLO_WINDOW = 8 * 1024 * 1024;
/** The round-trip figures tuning relies on (the connection's `Liveness` measures them). */
export interface RoundTrips {
  /** Smallest round trip measured on a quiet connection, in milliseconds (null: none yet). */
  readonly minRtt: number | null;
  /** Quiet round trips measured so far. */
  readonly samples: number;
}

/** The path's smallest round trip once MIN_RTT_SAMPLES quiet samples measured it; null before. */
function measuredRtt({ minRtt, samples }: RoundTrips): number | null {
  return samples >= MIN_RTT_SAMPLES ? minRtt : null;
}

/** A path measured to be shorter than windows grow for (loopback, a LAN). */
export function isFastPath(roundTrips: RoundTrips): boolean {
  const rtt = measuredRtt(roundTrips);
  return rtt !== null && rtt < MIN_RTT_FOR_GROWTH_MS;
}

/**
 * Bytes to consume before a `window`-byte receive window sends its update. Half the window
 * (yamux's rule) up to WINDOW_UPDATE_STEP. Beyond that, on a fast path, a quarter of the
 * window: its update is back long before the peer could use the quarter held back, and every
 * update is a write on one side and a read on the other (a fresh process moving 1 GiB through
 * an 8 MiB window sent 1,640 of them at 1 MiB, and its server spent 8% less CPU at 2 MiB).
 */
export function windowUpdateThreshold(window: number, fastPath: boolean): number {
  // Whole numbers: the result is kept in a field of every stream, and one odd window's half
  // would make that field a double in V8 (a representation change that deoptimises).
  const half = Math.floor(window / 2);
  if (half <= WINDOW_UPDATE_STEP) return half;
  return fastPath ? Math.max(WINDOW_UPDATE_STEP, Math.floor(window / 4)) : WINDOW_UPDATE_STEP;
}

/**
 * Round trips after which a grown window that has not consumed half of itself may be given
 * back to the budget: a reader that slow needs at most an eighth of its window.
 */
export const RECLAIM_IDLE_RTTS = 8;

/**
 * Whether a grown window, last tuned `idleMs` ago, may be shrunk for another stream whose
 * growth the budget blocks. Never on an unmeasured path, where nothing grows but solo windows.
 */
export function mayReclaim(idleMs: number, minRtt: number | null): boolean {
  return minRtt !== null && idleMs >= RECLAIM_IDLE_RTTS * Math.max(minRtt, MIN_RTT_FOR_GROWTH_MS);
}

export interface WindowTuningInput {
  /** The stream's receive window now, in bytes. */
  current: number;
  /** Time since the previous grant on this stream, in milliseconds. */
  elapsedMs: number;
  /** Smallest round trip measured on a quiet connection, in milliseconds (null: none yet). */
  minRtt: number | null;
  /** Round trips measured on a quiet connection so far. */
  samples: number;
  initialWindow: number;
  maxWindow: number;
  /** Bytes the connection's budget still allows all windows together to grow. */
  budgetLeft: number;
  /** No other stream on the connection received data lately. */
  solo?: boolean;
}

/** The window size to use from now on. */
export function tuneWindow(input: WindowTuningInput): number {
  const { current, elapsedMs, initialWindow, maxWindow, budgetLeft } = input;
  const rtt = measuredRtt(input);
  // On a fast path, and until enough samples arrive, windows do not grow by timing. A lone
  // stream may grow meanwhile (a slow first sample from a cold peer must not hold it at the
  // initial window); any other stays at the initial window.
  if (rtt === null || rtt < MIN_RTT_FOR_GROWTH_MS) {
    if (!input.solo) return Math.min(current, initialWindow);
    const cap = Math.max(initialWindow, Math.min(SOLO_WINDOW, maxWindow));
    if (current >= cap) return cap;
    const extra = Math.min(current, cap - current, budgetLeft);
    return extra > 0 ? current + extra : current;
  }
  const factor = elapsedMs <= 2 * rtt ? 4 : elapsedMs <= 4 * rtt ? 2 : 1;
  const extra = Math.min(current * (factor - 1), maxWindow - current, budgetLeft);
  return extra > 0 ? current + extra : current;
}
