/** `tsmux send HOST[:PORT] FILE|DIR...`: a tree to a `tsmux serve`, like `rsync -a` without --delete. */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parse, parsePositiveInteger, parseSeconds, UsageError } from './args';
import { closeClient } from './connect';
import { escapeName } from './escape';
import { Progress } from './progress';
import { signalExitCode } from './signals';
import { runTransfer } from './transfer-run';
import { listEntries } from './sync/entries';
import { runSender } from './sync/sender';
import { parseTarget, printOutcome, SYNC_VERSION, type OutcomeReport } from './sync/session';

export const SEND_HELP = `Usage: tsmux send HOST[:PORT] FILE|DIR... [options]

Sends files and directories to a \`tsmux serve\` over ONE connection, as \`rsync -a\` does:
a directory goes recursively under its own name (\`tsmux send host photos\` stores photos/...
under the server's --dir), with file modes, modification times, empty directories and
symbolic links (as links). Files already there with the same size and modification time are
skipped, and a file cut off by an earlier run continues where it stopped. Every file is
verified (SHA-256) before it is moved into place. PORT defaults to 12345.

Options:
  --checksum                compare files by SHA-256, not size and modification time
  --json                    print the summary as one JSON line
  --token T                 token the server's --token expects (or set TSMUX_TOKEN)
  --tls-ca FILE             connect over TLS, trusting this CA / certificate (PEM)
  --progress MODE           bars | plain | none (default: bars on a terminal, plain otherwise)
  --status-timeout SECONDS  how long the server may take to answer the list of files, and
                            to confirm them after the last byte (default 30; 0 = no limit);
                            unconfirmed files count as failed
  --concurrency N           accepted for compatibility; all files share one stream
  -h, --help                this help

Progress goes to stderr; the summary (files sent and unchanged, bytes, time, failures) to stdout.
Ctrl-C / SIGTERM stops: the file being sent is kept on the server as a partial file, and the
next run continues it. Exit codes: 0 everything is there; 1 a file failed or the connection
failed; 2 bad usage; 130 / 143 interrupted by SIGINT / SIGTERM.
`;

/** How long an interrupted run waits for the server to confirm what it already has. */
const CONFIRM_AFTER_STOP_MS = 3000;

export async function runSend(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        checksum: { type: 'boolean' },
        json: { type: 'boolean' },
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
  if (positionals.length < 2) throw new UsageError('expected HOST:PORT (or HOST) and at least one FILE or DIR');
  const target = parseTarget(positionals[0]);
  parsePositiveInteger(values.concurrency, '--concurrency', 8); // still checked, though all files share one stream
  const statusTimeout = Math.round(parseSeconds(values['status-timeout'], '--status-timeout', 30) * 1000);
  const mode = values.progress;
  if (mode !== undefined && mode !== 'bars' && mode !== 'plain' && mode !== 'none')
    throw new UsageError('--progress: expected bars, plain or none');

  const started = Date.now();
  const sources = positionals.slice(1).map((arg) => ({ path: path.resolve(arg), name: path.basename(path.resolve(arg)) }));
  const listed = await listEntries(sources);
  for (const entry of listed.skipped) process.stderr.write(`tsmux send: skipping ${escapeName(entry.name)}: ${entry.reason}\n`);
  for (const problem of listed.problems) process.stderr.write(`tsmux send: cannot send ${escapeName(problem.name)}: ${problem.reason}\n`);

  const auth = { token: values.token ?? process.env.TSMUX_TOKEN, tlsCa: values['tls-ca'] };
  return runTransfer('send', target, auth, async (client, run) => {
    const stream = await client.StreamPool.createStream({
      type: 'sync',
      direction: 'push',
      version: SYNC_VERSION,
      checksum: values.checksum ?? false,
    });
    stream.on('error', () => {}); // the sender reports a broken stream as its outcome
    // Once stopped, the server gets a moment to confirm what it already has, then the stream is cut.
    run.signal.addEventListener('abort', () => setTimeout(() => stream.destroy(), CONFIRM_AFTER_STOP_MS).unref(), { once: true });
    let progress: Progress | undefined;
    const outcome = await runSender(stream, listed.entries, {
      signal: run.signal,
      statusTimeout,
      checksum: values.checksum ?? false,
      progress: (totalBytes, totalFiles) =>
        (progress = run.showing(new Progress({ verb: 'sent', totalBytes, totalFiles, ...(mode ? { mode: mode } : {}) }))),
    });
    progress?.stop();
    const stoppedBy = run.stoppedBy();
    await closeClient(client, stoppedBy ? 1000 : 3000);
    const report: OutcomeReport = {
      ...outcome,
      failures: [...listed.problems, ...outcome.failures],
      seconds: (Date.now() - started) / 1000,
    };
    printOutcome('sent', report, values.json ?? false);
    if (stoppedBy) return signalExitCode(stoppedBy);
    return report.failures.length > 0 || report.interrupted ? 1 : 0;
  });
}
