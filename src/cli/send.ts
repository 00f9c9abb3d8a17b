/** `tsmux send HOST:PORT FILE|DIR...`: many files concurrently over one connection. */
import { parseArgs } from 'node:util';
import { util, type MuxClient } from '../index';
import { parse, parseHostPort, parsePositiveInteger, parseSeconds, UsageError } from './args';
import { closeClient, connect, describeError } from './connect';
import { collectFiles, type SourceFile } from './files';
import { Progress } from './progress';
import { onStopSignals, signalExitCode, type StopSignal } from './signals';
import { formatSummary, type Failure } from './summary/format';

export const SEND_HELP = `Usage: tsmux send HOST:PORT FILE|DIR... [options]

Sends files to a \`tsmux serve\`, many at once over ONE connection. A directory is sent
recursively under its own name, as with scp -r: \`tsmux send host:12345 photos\` stores
photos/... under the server's --dir (links to files are sent as files; links to directories,
sockets and devices are skipped). Each file is verified (size and SHA-256) by the server.

Options:
  --concurrency N           files in flight at once (default 8)
  --status-timeout SECONDS  wait this long for the server to confirm a file after its last
                            byte, then count the file as failed (default 30; 0 = no limit)
  --token T                 token the server's --token expects (or set TSMUX_TOKEN)
  --tls-ca FILE             connect over TLS, trusting this CA / certificate (PEM)
  --progress MODE           bars | plain | none (default: bars on a terminal, plain otherwise)
  -h, --help                this help

Progress goes to stderr; the summary (files, bytes, time, throughput, failures) to stdout.
Ctrl-C / SIGTERM aborts every transfer; the server deletes the partial files.
Exit codes: 0 all files sent; 1 a file failed or the connection failed; 2 bad usage;
130 / 143 interrupted by SIGINT / SIGTERM.
`;

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

export async function runSend(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        concurrency: { type: 'string' },
        'status-timeout': { type: 'string' },
        token: { type: 'string' },
        'tls-ca': { type: 'string' },
        progress: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(SEND_HELP);
    return 0;
  }
  if (positionals.length < 2) throw new UsageError('expected HOST:PORT and at least one FILE or DIR');
  const target = parseHostPort(positionals[0], 'HOST:PORT');
  const concurrency = parsePositiveInteger(values.concurrency, '--concurrency', 8);
  const statusTimeout =
    values['status-timeout'] === undefined ? undefined : toMilliseconds(parseSeconds(values['status-timeout'], '--status-timeout', 0));
  const mode = values.progress;
  if (mode !== undefined && mode !== 'bars' && mode !== 'plain' && mode !== 'none')
    throw new UsageError('--progress: expected bars, plain or none');

  const { files, problems, skipped } = await collectFiles(positionals.slice(1));
  for (const entry of skipped) process.stderr.write(`tsmux send: skipping ${entry.name}: ${entry.reason}\n`);
  for (const problem of problems) process.stderr.write(`tsmux send: cannot send ${problem.name}: ${problem.reason}\n`);

  const controller = new AbortController();
  let stoppedBy: StopSignal | undefined;
  let progress: Progress | undefined;
  const removeSignals = onStopSignals(
    (signal) => {
      stoppedBy = signal;
      controller.abort(signal);
    },
    (signal) => {
      // A second signal: leave now (the server still deletes partial files when the
      // connection drops), with the terminal's cursor restored.
      progress?.stop();
      process.exit(signalExitCode(signal));
    },
  );
  try {
    let client: MuxClient;
    try {
      client = await connect(target, {
        token: values.token ?? process.env.TSMUX_TOKEN,
        tlsCa: values['tls-ca'],
        signal: controller.signal,
      });
    } catch (err) {
      process.stderr.write(`tsmux send: ${describeError(err, target)}\n`);
      return stoppedBy ? signalExitCode(stoppedBy) : 1;
    }
    client.on('error', () => {}); // reported through the transfers and the summary
    const started = Date.now();
    const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
    progress = new Progress({ verb: 'sent', totalBytes, totalFiles: files.length, ...(mode ? { mode: mode } : {}) });
    const outcome = await sendFiles(client, files, { concurrency, progress, signal: controller.signal, statusTimeout });
    progress.stop();
    // Graceful: the resets of aborted streams reach the server before the connection ends
    // (if they cannot, the server still deletes the partial files when the connection drops).
    await closeClient(client, stoppedBy ? 1000 : 3000);
    const failures = [...problems, ...outcome.failures];
    process.stdout.write(
      formatSummary({
        verb: 'sent',
        files: outcome.sent,
        bytes: outcome.bytes,
        seconds: (Date.now() - started) / 1000,
        failures,
        interrupted: outcome.interrupted,
        notStarted: outcome.notStarted,
      }),
    );
    if (stoppedBy) return signalExitCode(stoppedBy);
    return failures.length > 0 || outcome.interrupted ? 1 : 0;
  } finally {
    removeSignals();
  }
}

/** Whole milliseconds (what the library takes); a positive number of seconds never becomes 0, which means no limit. */
function toMilliseconds(seconds: number): number {
  return seconds > 0 ? Math.max(1, Math.round(seconds * 1000)) : 0;
}
