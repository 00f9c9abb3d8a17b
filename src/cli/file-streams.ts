/**
 * One stream per file through the library's `util.sendFileOver`, as any application would send
 * files: what `tsmux demo` shows beside its chat. (`tsmux send` uses a sync stream instead.)
 */
import { util, type MuxClient } from '../index';
import { describeError } from './connect';
import type { SourceFile } from './files';
import type { Progress } from './progress';
import type { Failure } from './summary/format';

export interface SendOutcome {
  sent: number;
  bytes: number;
  failures: Failure[];
  notStarted: number;
  /** Why the run stopped early, if it did. */
  interrupted: string | undefined;
}

export interface SendFilesOptions {
  concurrency: number;
  progress: Progress;
  signal: AbortSignal;
  /** Milliseconds to wait for the server's verdict after a file's last byte (default: the library's, 30 s; 0 = no limit). */
  statusTimeout?: number | undefined;
}

/**
 * Sends `files` over `client`, `concurrency` at a time, each as a `{ type: 'file', name, size }`
 * stream. A failed file is reported and the others go on; an abort or a lost connection
 * stops starting new ones.
 */
export async function sendFiles(client: MuxClient, files: SourceFile[], options: SendFilesOptions): Promise<SendOutcome> {
  const { progress, signal, statusTimeout } = options;
  const outcome: SendOutcome = { sent: 0, bytes: 0, failures: [], notStarted: 0, interrupted: undefined };
  let lost: string | undefined;
  const onClose = (): void => {
    lost ??= 'connection lost';
  };
  // The server is shutting down: files in flight may finish, no new ones can start.
  const onGoAway = (): void => {
    lost ??= 'the server is going away';
  };
  client.once('close', onClose);
  client.once('goaway', onGoAway);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length && !signal.aborted && lost === undefined) {
      const file = files[next++];
      const view = progress.begin(file.name, file.size);
      try {
        const result = await util.sendFileOver(client, file.path, {
          name: file.name,
          signal,
          onProgress: (bytes) => view.update(bytes),
          statusTimeout,
        });
        view.done();
        outcome.sent++;
        outcome.bytes += result.size;
      } catch (err) {
        const reason = describeError(err);
        view.fail(reason);
        outcome.failures.push({ name: file.name, reason });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, files.length) }, worker));
  client.off('close', onClose);
  client.off('goaway', onGoAway);
  outcome.notStarted = files.length - next;
  // A lost connection or a going-away server matters only if it kept files from starting
  // (files it broke are failures already).
  if (signal.aborted) outcome.interrupted = `interrupted${typeof signal.reason === 'string' ? ` by ${signal.reason}` : ''}`;
  else if (outcome.notStarted > 0) outcome.interrupted = lost;
  return outcome;
}
