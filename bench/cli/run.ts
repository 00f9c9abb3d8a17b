/**
 * `npm run bench:cli [-- --quick] [-- --runs N]`
 *
 * Issue 13: `tsmux send` side by side with scp, scp -c aes128-gcm, rsync -a and tar | ssh, on
 * loopback, over a throwaway sshd (sshd.ts). Jobs (jobs.ts): a tree of small files, one large
 * file (tsmux over TLS too), the tree again unchanged, and the resume of an interrupted send.
 * Prints a Markdown table of medians against the issue's targets (table.ts) and writes every
 * sample as JSON to bench-results/cli-<date>.json.
 *
 * Installs nothing: without sshd, scp or rsync their rows are skipped with a note. Every child
 * has a deadline and is killed at the end, on an error and on Ctrl-C; the temporary directory
 * (data, keys, destinations) is removed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { killAllNow, run, stopAll } from './children';
import { makeBigFile, makeTree, type Tree } from './data';
import { copyJob, noopJob, resumeJob, type JobContext, type JobId, type JobResult } from './jobs';
import { startSshd } from './sshd';
import { formatTable, median } from './table';
import { findTools } from './tools';
import { TOOL_LABELS, type Setup } from './tools-copy';
import { CLI, makeCertificate, sendHasJson } from './tsmux';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, runs: { type: 'string' } } });
  const quick = values.quick ?? false;
  const runs = values.runs === undefined ? (quick ? 1 : 3) : Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got "${values.runs}"`);
  const treeFiles = quick ? 500 : 2000;
  const bigBytes = quick ? 256 * MiB : GiB;
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npm run build\` first (npm run bench:cli does)`);

  const root = mkdtempSync(path.join(os.tmpdir(), 'tsmux-bench-cli-'));
  installCleanup(root);
  const box = findTools();
  if (box.sshMissing) log(`note: ${box.sshMissing}; the scp, rsync and tar | ssh rows are skipped`);

  log(`making the data in ${root} ...`);
  const tree = makeTree(path.join(root, 'data', 'tree'), treeFiles);
  const big = path.join(root, 'data', 'big.bin');
  makeBigFile(big, bigBytes);

  const setup: Setup = { box, sshd: null, sshdError: null, tls: null, tlsError: null };
  if (!box.sshMissing) {
    try {
      setup.sshd = await startSshd(path.join(root, 'sshd'), box.paths['ssh-keygen']!, box.paths.ssh!);
      log(`throwaway sshd on 127.0.0.1:${setup.sshd.port} (${setup.sshd.version})`);
    } catch (err) {
      setup.sshdError = (err as Error).message;
      log(`note: ${setup.sshdError}`);
    }
  }
  if (box.paths.openssl) {
    try {
      setup.tls = await makeCertificate(box.paths.openssl, root);
    } catch (err) {
      setup.tlsError = (err as Error).message;
    }
  }

  const ctx: JobContext = { setup, destRoot: path.join(root, 'dest'), runs, log };
  const jobs: Partial<Record<JobId, JobResult>> = {};
  jobs.tree = await copyJob('tree', ['tsmux', 'scp', 'scp-gcm', 'rsync', 'tar-ssh'], tree.root, ctx);
  jobs.big = await copyJob('big', ['tsmux', 'tsmux-tls', 'scp', 'scp-gcm', 'rsync', 'tar-ssh'], big, ctx);
  jobs.noop = await noopJob(['tsmux', 'rsync'], tree.root, ctx);
  jobs.resume = await resumeJob(big, median(jobs.big, 'tsmux'), ctx);

  const titles: Record<JobId, string> = {
    tree: `small tree (${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB)`,
    big: `one ${size(bigBytes)} file`,
    noop: 'same tree, unchanged',
    resume: `resume ${size(bigBytes)} (2nd run)`,
  };
  const table = formatTable(jobs, titles);
  const notes = describe(jobs, setup, tree, bigBytes, runs);
  process.stdout.write(`\n${table}\n\n${notes.map((note) => `- ${note}`).join('\n')}\n`);
  const file = await writeReport({ quick, runs, tree, bigBytes, setup, jobs, table, notes });
  process.stdout.write(`\nraw samples: ${path.relative(process.cwd(), file)}\n`);
  return 0;
}

/** The lines under the table: how it was measured, what was skipped, what failed. */
function describe(jobs: Partial<Record<JobId, JobResult>>, setup: Setup, tree: Tree, bigBytes: number, runs: number): string[] {
  const cpus = os.cpus();
  const notes = [
    `Seconds, median of ${runs} run(s), wall time around the whole command (start, connect/handshake, copy, exit); loopback, ` +
      `warm page cache, \`sync\` before each run; ${cpus.length} × ${cpus[0]?.model ?? '?'}, Linux ${os.release()}, Node ${process.version}.`,
    `Data: ${tree.files} files of 1-64 KiB (${(tree.bytes / MiB).toFixed(1)} MiB) in 8 directories; one ${size(bigBytes)} file; random content.`,
  ];
  if (setup.sshd) notes.push(`ssh rows: ${setup.sshd.version}, throwaway sshd, default cipher unless named.`);
  if (sendHasJson() === false)
    notes.push(
      'This tsmux send has no --json (exit 2, unknown option): wire bytes are unknown (–), so no-op and resume cannot meet their targets.',
    );
  const skipped = new Map<string, string[]>();
  for (const job of Object.values(jobs)) {
    for (const [tool, reason] of Object.entries(job.skipped)) {
      const label = TOOL_LABELS[tool as keyof typeof TOOL_LABELS].replace('\\', '');
      const tools = skipped.get(reason) ?? [];
      if (!tools.includes(label)) tools.push(label);
      skipped.set(reason, tools);
    }
  }
  for (const [reason, tools] of skipped) notes.push(`Skipped ${tools.join(', ')}: ${reason}.`);
  let spread = { ratio: 1, where: '' };
  for (const job of Object.values(jobs)) {
    for (const [tool, samples] of Object.entries(job.samples)) {
      // The same failure in every run is one note, not three.
      const failures = new Map<string, number[]>();
      for (const sample of samples.filter((s) => !s.ok))
        failures.set(sample.error ?? '?', [...(failures.get(sample.error ?? '?') ?? []), sample.rep]);
      for (const [error, reps] of failures) notes.push(`Failed: ${job.id} / ${tool} / rep ${reps.join(', ')}: ${error}`);
      const times = samples.filter((s) => s.rep > 0 && s.ok).map((s) => s.seconds);
      if (times.length > 1 && Math.max(...times) / Math.min(...times) > spread.ratio)
        spread = { ratio: Math.max(...times) / Math.min(...times), where: `${job.id} / ${tool}` };
      const wire = samples.filter((s) => s.rep > 0 && s.wireBytes !== null).map((s) => s.wireBytes);
      if (wire.length > 0) notes.push(`${job.id} / ${tool}: wire bytes per run ${wire.join(', ')} (source ${job.sourceBytes}).`);
    }
  }
  // On a small or shared machine runs vary; the largest spread says how far to trust a ratio.
  if (spread.where) notes.push(`Largest spread within a cell (slowest / fastest run): ${spread.ratio.toFixed(2)}× (${spread.where}).`);
  return notes;
}

async function writeReport(report: {
  quick: boolean;
  runs: number;
  tree: Tree;
  bigBytes: number;
  setup: Setup;
  jobs: Partial<Record<JobId, JobResult>>;
  table: string;
  notes: string[];
}): Promise<string> {
  const date = new Date().toISOString();
  const rsync = report.setup.box.paths.rsync ? await run(report.setup.box.paths.rsync, ['--version'], { timeoutMs: 5000 }) : null;
  const dir = path.join(__dirname, '..', '..', 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `cli-${date.replace(/[:.]/g, '-')}.json`);
  const json = {
    date,
    options: { quick: report.quick, runs: report.runs },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory: os.totalmem(), kernel: os.release(), node: process.version },
    versions: { ssh: report.setup.sshd?.version ?? null, rsync: rsync ? rsync.stdout.split('\n')[0] : null },
    data: { treeFiles: report.tree.files, treeBytes: report.tree.bytes, bigBytes: report.bigBytes },
    sendJson: sendHasJson() ?? null,
    jobs: report.jobs,
    table: report.table,
    notes: report.notes,
  };
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  return file;
}

/** Children and the temporary directory go away however the benchmark ends. */
function installCleanup(root: string): void {
  const removeRoot = (): void => rmSync(root, { recursive: true, force: true });
  process.once('exit', () => {
    killAllNow();
    removeRoot();
  });
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the children and removing ${root}`);
      void stopAll().finally(() => process.exit(code));
    });
  }
}

function size(bytes: number): string {
  return bytes >= GiB ? `${bytes / GiB} GiB` : `${bytes / MiB} MiB`;
}

main().then(
  async (code) => {
    await stopAll();
    process.exitCode = code;
  },
  async (err: unknown) => {
    log(`bench:cli: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    process.exitCode = 1;
  },
);
