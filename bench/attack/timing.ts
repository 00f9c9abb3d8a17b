/**
 * Waits that end early when an attack is stopped: every await in the harness goes through
 * one of these (or has its own deadline), so that no attack can outlive its signal.
 */
import type { Writable } from 'node:stream';

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** One turn of the event loop: lets timers, IPC and other sockets run between batches. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Resolves `true` once `socket` wants more (`drain`), `false` if it closes or `signal`
 * aborts first. Never rejects.
 */
export function drained(socket: Writable, signal: AbortSignal): Promise<boolean> {
  if (!socket.writableNeedDrain) return Promise.resolve(!socket.destroyed && !signal.aborted);
  return new Promise((resolve) => {
    const finish = (value: boolean): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onDrain = (): void => finish(true);
    const onClose = (): void => finish(false);
    const onAbort = (): void => finish(false);
    if (socket.destroyed || signal.aborted) return resolve(false);
    socket.once('drain', onDrain);
    socket.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** An AbortSignal that aborts with `parent` or after `ms`, whichever comes first. */
export function within(parent: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([parent, AbortSignal.timeout(ms)]);
}

/** The median and the 99th percentile and maximum of `values` (null when empty). */
export function percentiles(values: number[]): { median: number; p99: number; max: number } | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}
