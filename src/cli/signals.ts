/** SIGINT / SIGTERM for the long-running commands. */

export type StopSignal = 'SIGINT' | 'SIGTERM';

/** The conventional exit code for a process ended by `signal` (130, 143). */
export function signalExitCode(signal: StopSignal): number {
  return signal === 'SIGINT' ? 130 : 143;
}

/**
 * Calls `onStop(signal)` on the first SIGINT or SIGTERM and `onForce(signal)` on any later
 * one. Returns a function that removes the handlers.
 */
export function onStopSignals(onStop: (signal: StopSignal) => void, onForce?: (signal: StopSignal) => void): () => void {
  let stopping = false;
  const handler = (signal: StopSignal): void => {
    if (!stopping) {
      stopping = true;
      onStop(signal);
    } else {
      onForce?.(signal);
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
