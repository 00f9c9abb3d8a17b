/** `tsmux get HOST[:PORT]:PATH... LOCAL_DIR`: download from a `tsmux serve --export DIR`. */
import { mkdir, realpath } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { formatHostPort, parse, UsageError } from './args';
import { closeClient } from './connect';
import { Progress } from './progress';
import { signalExitCode } from './signals';
import { runTransfer } from './transfer-run';
import { runReceiver } from './sync/receiver';
import { parseRemotePath, printOutcome, SYNC_VERSION } from './sync/session';

export const GET_HELP = `Usage: tsmux get HOST[:PORT]:PATH... LOCAL_DIR [options]

Downloads files and directories from a \`tsmux serve --export DIR\` into LOCAL_DIR, as
\`rsync -a\` would: PATH is under the server's exported directory (\`.\` for all of it), a
directory arrives under its own name, with modes, modification times, empty directories and
symbolic links; files already here unchanged are skipped, and a file cut off by an earlier
run continues. The server's names are checked as the server checks uploads: absolute names,
".." segments, control characters and links that lead out of LOCAL_DIR are refused.
PORT defaults to 12345.

Options:
  --overwrite               replace local files that differ
  --checksum                compare files by SHA-256, not size and modification time
  --json                    print the summary as one JSON line
  --token T                 token the server's --token expects (or set TSMUX_TOKEN)
  --tls-ca FILE             connect over TLS, trusting this CA / certificate (PEM)
  --progress MODE           bars | plain | none (default: bars on a terminal, plain otherwise)
  -h, --help                this help

Exit codes: 0 everything is here; 1 a file failed or the connection failed; 2 bad usage;
130 / 143 interrupted by SIGINT / SIGTERM (a file cut off stays as a partial file).
`;

export async function runGet(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        overwrite: { type: 'boolean' },
        checksum: { type: 'boolean' },
        json: { type: 'boolean' },
        token: { type: 'string' },
        'tls-ca': { type: 'string' },
        progress: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(GET_HELP);
    return 0;
  }
  if (positionals.length < 2) throw new UsageError('expected HOST:PATH... and LOCAL_DIR');
  const remotes = positionals.slice(0, -1).map(parseRemotePath);
  const target = remotes[0].target;
  if (remotes.some((remote) => formatHostPort(remote.target) !== formatHostPort(target))) {
    throw new UsageError('every HOST:PATH must name the same server');
  }
  const mode = values.progress;
  if (mode !== undefined && mode !== 'bars' && mode !== 'plain' && mode !== 'none')
    throw new UsageError('--progress: expected bars, plain or none');
  const localDir = positionals[positionals.length - 1];
  await mkdir(localDir, { recursive: true, mode: 0o755 });
  const root = await realpath(localDir);

  const started = Date.now();
  const auth = { token: values.token ?? process.env.TSMUX_TOKEN, tlsCa: values['tls-ca'] };
  return runTransfer('get', target, auth, async (client, run) => {
    const stream = await client.StreamPool.createStream({
      type: 'sync',
      direction: 'get',
      version: SYNC_VERSION,
      paths: remotes.map((remote) => remote.path),
      checksum: values.checksum ?? false,
    });
    stream.on('error', () => {});
    // Stopping cuts the stream: the file in flight stays here as a partial file.
    run.signal.addEventListener('abort', () => stream.destroy(), { once: true });
    let progress: Progress | undefined;
    const outcome = await runReceiver(stream, {
      root,
      overwrite: values.overwrite ?? false,
      log: () => {}, // refusals are in the summary
      progress: (totalBytes, totalFiles) =>
        (progress = run.showing(new Progress({ verb: 'received', totalBytes, totalFiles, ...(mode ? { mode: mode } : {}) }))),
    });
    progress?.stop();
    const stoppedBy = run.stoppedBy();
    await closeClient(client, stoppedBy ? 1000 : 3000);
    if (stoppedBy) outcome.interrupted = `interrupted by ${stoppedBy}`;
    printOutcome('received', { ...outcome, seconds: (Date.now() - started) / 1000 }, values.json ?? false);
    if (stoppedBy) return signalExitCode(stoppedBy);
    return outcome.failures.length > 0 || outcome.interrupted ? 1 : 0;
  });
}
