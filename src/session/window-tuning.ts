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
 */

/** Smallest round trip, in milliseconds, on which windows may grow. */
export const MIN_RTT_FOR_GROWTH_MS = 1;
/** Round-trip samples needed before tuning trusts them (the first is often slow). */
export const MIN_RTT_SAMPLES = 2;

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
}

/** The window size to use from now on. */
export function tuneWindow(input: WindowTuningInput): number {
  const { current, elapsedMs, minRtt, samples, initialWindow, maxWindow, budgetLeft } = input;
  if (minRtt === null || samples < MIN_RTT_SAMPLES) return current;
  if (minRtt < MIN_RTT_FOR_GROWTH_MS) return Math.min(current, initialWindow);
  const factor = elapsedMs <= 2 * minRtt ? 4 : elapsedMs <= 4 * minRtt ? 2 : 1;
  const extra = Math.min(current * (factor - 1), maxWindow - current, budgetLeft);
  return extra > 0 ? current + extra : current;
}
