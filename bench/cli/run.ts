/**
 * `npm run bench:cli [-- --quick] [-- --runs N] [-- --only files,forward] [-- --no-install]`
 *
 * Issue 13 (files): `tsmux send` side by side with scp, scp -c aes128-gcm, rsync -a and
 * tar | ssh, on loopback, over a throwaway sshd (sshd.ts). Jobs (jobs.ts): a tree of small
 * files, one large file (tsmux over TLS too), the tree again unchanged, and the resume of an
 * interrupted send.
 * Issue 14 (forward): `tsmux forward` against `ssh -L` in front of a throwaway nginx
 * (forward-jobs.ts): wrk with 1,000 connections, a large download through -L, -R and -D, and
 * serve killed under load.
 * Prints Markdown tables of medians against the issues' targets (table.ts, forward-table.ts)
 * and writes every sample as JSON to bench-results/cli-<date>.json.
 *
 * As root on Debian, installs the missing comparison tools with apt-get first (--no-install
 * does not); a tool still missing skips its rows with a note. Every child has a deadline and
 * is killed at the end, on an error and on Ctrl-C; the temporary directory (data, keys,
 * destinations) is removed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { killAllNow, run, stopAll } from './children';
import { makeBigFile, makeTree, type Tree } from './data';
import { copyJob, noopJob, resumeJob, type JobContext, type JobId, type JobResult } from './jobs';
import { startSshd } from './sshd';
import { downloadJob, restartJob, wrkJob, type ForwardContext } from './forward-jobs';
import { floorNote, formatForwardTable, type ForwardResults } from './forward-table';
import { startNginx } from './nginx';
import { formatTable, median } from './table';
import { findTools, installMissing } from './tools';
import { TOOL_LABELS, type Setup } from './tools-copy';
import { CLI, makeCertificate, sendHasJson } from './tsmux';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

const SECTIONS = ['files', 'forward'] as const;
type Section = (typeof SECTIONS)[number];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, runs: { type: 'string' }, only: { type: 'string' }, 'no-install': { type: 'boolean' } },
  });
  const quick = values.quick ?? false;
  const runs = values.runs === undefined ? (quick ? 1 : 3) : Number(values.runs);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got "${values.runs}"`);
  const only = (values.only ?? SECTIONS.join(',')).split(',').map((name) => name.trim());
  const unknown = only.filter((name) => !(SECTIONS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`--only: unknown section "${unknown[0]}" (expected ${SECTIONS.join(', ')})`);
  const sections = new Set(only as Section[]);
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npm run build\` first (npm run bench:cli does)`);
  if (!values['no-install']) {
    const needed = ['sshd', 'ssh', 'ssh-keygen', 'scp', 'rsync'] as const;
    installMissing([...needed, ...(sections.has('forward') ? (['nginx', 'wrk', 'curl'] as const) : [])], log);
  }

  const root = mkdtempSync(path.join(os.tmpdir(), 'tsmux-bench-cli-'));
  installCleanup(root);
  const box = findTools();
  if (box.sshMissing) log(`note: ${box.sshMissing}; the scp, rsync, tar | ssh and ssh -L rows are skipped`);
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

  const report: Report = { quick, runs, setup, tables: [], notes: [] };
  if (sections.has('files')) await filesSection(root, setup, report);
  if (sections.has('forward')) await forwardSection(root, setup, report);
  process.stdout.write(`\n${report.tables.join('\n\n')}\n\n${report.notes.map((note) => `- ${note}`).join('\n')}\n`);
  const file = await writeReport(report);
  process.stdout.write(`\nraw samples: ${path.relative(process.cwd(), file)}\n`);
  return 0;
}

interface Report {
  quick: boolean;
  runs: number;
  setup: Setup;
  tables: string[];
  notes: string[];
  files?: { tree: Tree; bigBytes: number; jobs: Partial<Record<JobId, JobResult>> };
  forward?: ForwardResults;
}

/** Issue 13's rows: tsmux send against scp, rsync and tar | ssh. */
async function filesSection(root: string, setup: Setup, report: Report): Promise<void> {
  const { quick, runs } = report;
  const treeFiles = quick ? 500 : 2000;
  const bigBytes = quick ? 256 * MiB : GiB;
  log(`making the data in ${root} ...`);
  const tree = makeTree(path.join(root, 'data', 'tree'), treeFiles);
  const big = path.join(root, 'data', 'big.bin');
  makeBigFile(big, bigBytes);
  if (setup.box.paths.openssl) {
    try {
      setup.tls = await makeCertificate(setup.box.paths.openssl, root);
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
  rmSync(path.join(root, 'data'), { recursive: true, force: true });
  rmSync(ctx.destRoot, { recursive: true, force: true });

  const titles: Record<JobId, string> = {
    tree: `small tree (${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB)`,
    big: `one ${size(bigBytes)} file`,
    noop: 'same tree, unchanged',
    resume: `resume ${size(bigBytes)} (2nd run)`,
  };
  report.tables.push(formatTable(jobs, titles));
  report.notes.push(...describe(jobs, setup, tree, bigBytes, runs));
  report.files = { tree, bigBytes, jobs };
}

/** Issue 14's rows: tsmux forward against ssh -L, in front of nginx. */
async function forwardSection(root: string, setup: Setup, report: Report): Promise<void> {
  const { box } = setup;
  const wrkSeconds = report.quick ? 5 : 10;
  const results: ForwardResults = { wrk: null, download: null, restart: null, wrkSeconds };
  if (!box.paths.nginx) {
    report.notes.push('Forwarding rows skipped: nginx not found; install the Debian package nginx-light.');
    return;
  }
  const dir = path.join(root, 'forward');
  log('forwarding: starting nginx ...');
  const nginx = await startNginx(box.paths.nginx, path.join(dir, 'nginx'), 100 * MiB);
  try {
    const ctx: ForwardContext = {
      nginx,
      wrk: box.paths.wrk ?? null,
      curl: box.paths.curl ?? null,
      ssh: box.paths.ssh ?? null,
      sshd: setup.sshd,
      workDir: dir,
      runs: report.runs,
      wrkSeconds,
      log,
    };
    log('forwarding: wrk ...');
    results.wrk = await wrkJob(ctx);
    log('forwarding: downloads ...');
    results.download = await downloadJob(ctx);
    log('forwarding: serve killed under load ...');
    results.restart = await restartJob(ctx);
  } finally {
    await nginx.stop();
  }
  report.tables.push(formatForwardTable(results));
  report.notes.push(...describeForward(results, setup));
  const floor = results.wrk ? floorNote(results.wrk) : null;
  if (floor !== null) report.notes.push(floor);
  report.forward = results;
}

/** The lines under the forwarding table: how it was measured, what was skipped or failed. */
function describeForward(results: ForwardResults, setup: Setup): string[] {
  const notes = [
    `Forwarding: nginx (1 worker) on loopback; wrk -t2 -c1000 for ${results.wrkSeconds} s per run after 2 s untimed, ` +
      `median of the runs; downloads with curl (-D: --socks5-hostname) after one untimed, MB/s = 10^6 bytes/s; ` +
      `ssh -L ${setup.sshd ? `(${setup.sshd.version}) ` : ''}with -c aes128-gcm@openssh.com; every tunnel process started fresh for the row.`,
    'Restart row: tsmux forward -L with its defaults, wrk -c100 through it; serve is SIGKILLed after a third of the run and ' +
      'started again on its port at once; a GET goes through the forward every 50 ms. Recovery = from serve listening again ' +
      'to the end of the first GET that succeeded; refusals = connections to the forward port refused (probes and wrk).',
  ];
  const skipped = new Map<string, string[]>();
  const add = (what: string, reason: string | undefined): void => {
    if (reason) skipped.set(reason, [...(skipped.get(reason) ?? []), what]);
  };
  for (const [route, reason] of Object.entries(results.wrk?.skipped ?? {})) add(`wrk ${route}`, reason);
  for (const [shape, reason] of Object.entries(results.download?.skipped ?? {})) add(`download ${shape}`, reason);
  if (typeof results.restart === 'string') add('restart', results.restart);
  for (const [reason, what] of skipped) notes.push(`Skipped ${what.join(', ')}: ${reason}.`);
  for (const [route, samples] of Object.entries(results.wrk?.samples ?? {}))
    for (const sample of samples)
      if (!sample.ok) notes.push(`Failed: wrk ${route}: ${sample.error}`);
      else if (sample.errors > 0) notes.push(`wrk ${route}: ${sample.errors} errors (${sample.errorDetail}) in one run.`);
  for (const [shape, samples] of Object.entries(results.download?.samples ?? {}))
    for (const sample of samples) if (!sample.ok) notes.push(`Failed: download ${shape}: ${sample.error}`);
  if (Array.isArray(results.restart))
    for (const sample of results.restart)
      notes.push(
        sample.error
          ? `Failed: restart: ${sample.error}`
          : `Restart run: serve down ${sample.downMs} ms; recovery ${sample.recoveryMs ?? '–'} ms; ${sample.probes} probes, ` +
              `${sample.probeFailures} failed (in flight at the kill), ${sample.refused} refused; wrk ${sample.wrk.requests} requests, ` +
              `${sample.wrk.errors} errors${sample.wrk.errorDetail ? ` (${sample.wrk.errorDetail})` : ''}.`,
      );
  return notes;
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

async function writeReport(report: Report): Promise<string> {
  const date = new Date().toISOString();
  const { box } = report.setup;
  const rsync = box.paths.rsync ? await run(box.paths.rsync, ['--version'], { timeoutMs: 5000 }) : null;
  const dir = path.join(__dirname, '..', '..', 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `cli-${date.replace(/[:.]/g, '-')}.json`);
  const json = {
    date,
    options: { quick: report.quick, runs: report.runs },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory: os.totalmem(), kernel: os.release(), node: process.version },
    versions: { ssh: report.setup.sshd?.version ?? null, rsync: rsync ? rsync.stdout.split('\n')[0] : null },
    data: report.files ? { treeFiles: report.files.tree.files, treeBytes: report.files.tree.bytes, bigBytes: report.files.bigBytes } : null,
    sendJson: sendHasJson() ?? null,
    jobs: report.files?.jobs ?? null,
    forward: report.forward ?? null,
    tables: report.tables,
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
