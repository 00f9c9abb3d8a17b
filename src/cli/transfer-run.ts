/**
 * What `send` and `get` share around their transfer: the first SIGINT / SIGTERM stops it
 * (the transfer sees its signal abort), a second exits at once; the connection is made, a
 * failure is said on stderr with the exit code it calls for, and everything is cleaned up.
 */
import type { MuxClient } from '../index';
import type { HostPort } from './args';
import { connect, describeError } from './connect';
import type { Progress } from './progress';
import { onStopSignals, signalExitCode, type StopSignal } from './signals';

/** What the transfer gets from {@link runTransfer}. */
export interface TransferRun {
  /** Aborted by the first stop signal. */
  signal: AbortSignal;
  /** The signal that stopped the run, if one did. */
  stoppedBy(): StopSignal | undefined;
  /** The progress display to stop when the run ends however it ends; returns it. */
  showing(progress: Progress): Progress;
}

/** Connects to `target` and runs `transfer`, which returns the exit code. */
export async function runTransfer(
  command: 'send' | 'get',
  target: HostPort,
  auth: { token: string | undefined; tlsCa: string | undefined },
  transfer: (client: MuxClient, run: TransferRun) => Promise<number>,
): Promise<number> {
  const controller = new AbortController();
  let stoppedBy: StopSignal | undefined;
  let progress: Progress | undefined;
  let client: MuxClient | undefined;
  const removeSignals = onStopSignals(
    (signal) => {
      stoppedBy = signal;
      controller.abort(signal);
    },
    (signal) => {
      // A second signal: leave now; what the other side has stays as partial files.
      progress?.stop();
      process.exit(signalExitCode(signal));
    },
  );
  const failed = (err: unknown): number => {
    process.stderr.write(`tsmux ${command}: ${describeError(err, target)}\n`);
    return stoppedBy ? signalExitCode(stoppedBy) : 1;
  };
  try {
    try {
      client = await connect(target, { token: auth.token, tlsCa: auth.tlsCa, signal: controller.signal });
    } catch (err) {
      return failed(err);
    }
    client.on('error', () => {}); // the transfer reports a broken connection as its outcome
    return await transfer(client, {
      signal: controller.signal,
      stoppedBy: () => stoppedBy,
      showing: (shown) => (progress = shown),
    });
  } catch (err) {
    return failed(err);
  } finally {
    progress?.stop();
    removeSignals();
    if (client && !client.closing) client.destroy();
  }
}
