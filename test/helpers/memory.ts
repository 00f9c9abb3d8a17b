import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/** A full garbage collection, if one can be had: `--expose-gc`, or the flag set at run time. */
export function collectGarbage(): (() => void) | null {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return exposed as () => void;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

/** Heap plus memory outside it (Buffers), after a full collection when one can be had. */
export function liveBytes(): number {
  collectGarbage()?.();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}
