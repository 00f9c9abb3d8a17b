/**
 * `npm run attacks -- [--only NAME[,NAME]] [--duration SECONDS] [--mixed SECONDS]
 *                     [--target echo|serve] [--json FILE] [--rss-cap-mb MiB]`
 *
 * Issue 11: runs each attack of attacks.ts against a fresh server (target.ts, in a child
 * process) on loopback while a well-behaved client (good-client.ts, another child) pings
 * and echoes beside it; then all of them at once (the mixed run). Prints one row per run
 * (the server's memory, whether it survived, what the good client saw, what the server
 * did) and writes everything, samples included, as JSON.
 *
 * Bounded: a target whose resident memory passes --rss-cap-mb is killed and reported; each
 * attack stops by itself at its duration and has a hard deadline past it; the whole run has
 * one too. Every attacker socket is destroyed at the end of its attack.
 */
import { setMaxListeners } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ATTACKS, type Attack } from './attacks';
import { GoodClientProcess } from './good-client-process';
import { describeServer, mergeReports } from './report';
import { formatRow, header, LEGEND, type Row } from './table';
import { TargetProcess, type Sample, type TargetKind } from './target-process';
import { sleep } from './timing';
import { destroyAllSockets } from './wire';

/** After an attack: the server gets this long to recover before its memory is read again. */
const COOL_DOWN_MS = 5000;
/** An attack still running this long after its duration is abandoned (its sockets cut). */
const HARD_GRACE_MS = 30_000;
/** Per run, on top of the attack and the grace: target start, good client start and stop, target stop. */
const RUN_OVERHEAD_MS = 60_000;

let unhandled = 0;
process.on('unhandledRejection', (err) => {
  unhandled++;
  console.error('unhandled rejection (a harness bug):', err);
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      duration: { type: 'string', default: '20' },
      mixed: { type: 'string', default: '60' },
      target: { type: 'string', default: 'echo' },
      json: { type: 'string' },
      'rss-cap-mb': { type: 'string', default: '3072' },
    },
  });
  const durationMs = seconds(values.duration, '--duration') * 1000;
  const mixedMs = seconds(values.mixed, '--mixed') * 1000;
  const capMb = seconds(values['rss-cap-mb'], '--rss-cap-mb');
  if (values.target !== 'echo' && values.target !== 'serve') usage(`--target must be echo or serve, not ${values.target}`);
  const kind: TargetKind = values.target;
  const names = values.only ? values.only.split(',').map((name) => name.trim()) : Object.keys(ATTACKS);
  for (const name of names) if (!ATTACKS[name]) usage(`unknown attack ${name}; known: ${Object.keys(ATTACKS).join(', ')}`);

  const runs: { label: string; attacks: [string, Attack][]; ms: number }[] = names.map((name) => ({
    label: name,
    attacks: [[name, ATTACKS[name]]],
    ms: durationMs,
  }));
  if (mixedMs > 0 && names.length > 1) runs.push({ label: 'mixed', attacks: names.map((name) => [name, ATTACKS[name]]), ms: mixedMs });

  const date = new Date().toISOString();
  const file = values.json ?? path.join(__dirname, '..', '..', 'bench-results', `attacks-${date.replace(/[:.]/g, '-')}.json`);
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()}`;
  const rows: Row[] = [];
  const save = (): void => {
    mkdirSync(path.dirname(file), { recursive: true });
    const options = { durationMs, mixedMs, target: kind, rssCapMb: capMb, only: values.only ?? null };
    writeFileSync(file, `${JSON.stringify({ date, machine, options, rows }, null, 2)}\n`);
  };

  // The whole run's deadline: every run's own budget, plus a minute.
  const budgetMs = runs.reduce((sum, run) => sum + run.ms + HARD_GRACE_MS + RUN_OVERHEAD_MS, 60_000);
  setTimeout(() => {
    console.error(`\nthe whole run passed its deadline of ${Math.round(budgetMs / 1000)} s; stopping`);
    save();
    process.exit(2);
  }, budgetMs).unref();

  console.log(
    `attacks on the ${kind} target, ${durationMs / 1000} s each${runs.at(-1)?.label === 'mixed' ? `, mixed ${mixedMs / 1000} s` : ''}`,
  );
  console.log(`RSS cap ${capMb} MiB, loopback, ${machine}\n`);
  console.log(header());
  for (const run of runs) {
    const row = await runOne(run.label, run.attacks, run.ms, kind, capMb * 1024 * 1024).catch((err: unknown) =>
      failedRow(run.label, kind, run.ms, err),
    );
    rows.push(row);
    console.log(formatRow(row));
    save();
  }
  console.log(`\n${LEGEND.join('\n')}`);
  console.log(`\nresults written to ${path.relative(process.cwd(), file)}`);
  if (unhandled > 0) console.error(`${unhandled} unhandled rejection(s): see above`);
  process.exitCode = unhandled > 0 ? 1 : 0;
}

/**
 * One run: a fresh target, the good client, the attacks for `durationMs`, the cool-down,
 * then the row.
 */
async function runOne(label: string, attacks: [string, Attack][], durationMs: number, kind: TargetKind, rssCap: number): Promise<Row> {
  const target = await TargetProcess.start(kind, rssCap);
  const harness: string[] = [];
  try {
    const good = await GoodClientProcess.start(target.port, target.metas.echo);
    if (!good.ready) harness.push('good client not ready before the attack');
    const before = target.latest();
    const startedAt = Date.now();
    const stop = new AbortController();
    setMaxListeners(0, stop.signal); // one listener per attack and per wait on it
    const timer = setTimeout(() => stop.abort(), durationMs);
    // A dead server ends the attack at once: there is nothing left to measure.
    void target.whenGone.then(() => stop.abort());
    good.begin();
    // The attacker's own event loop: when it lags, slow handshakes may be the attacker's doing, not the server's.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const running = Promise.all(attacks.map(([, attack]) => attack(target.port, { durationMs, signal: stop.signal, metas: target.metas })));
    running.catch(() => {}); // the attacks do not reject; this is only for an abandoned one
    let reports = await Promise.race([running, sleep(durationMs + HARD_GRACE_MS).then(() => null)]);
    clearTimeout(timer);
    stop.abort();
    if (reports === null) {
      harness.push(`an attack did not stop within ${HARD_GRACE_MS / 1000} s of its end; its sockets were cut`);
      destroyAllSockets();
      reports = [];
    }
    const endedAt = Date.now();
    loop.disable();
    const [goodClient] = await Promise.all([good.stop(), target.gone ? Promise.resolve() : sleep(COOL_DOWN_MS)]);
    const end = await target.settle();
    const left = destroyAllSockets();
    if (left > 0) harness.push(`${left} attacker sockets were still open`);

    const window = target.samples.filter((s) => s.at >= startedAt);
    const proc = window.filter((s) => s.source === 'proc');
    const rssPeak = max([...proc.map((s) => s.rss), end.proc.rssPeak ?? lastOf(proc, (s) => s.rssPeak)]);
    const died = target.gone !== null;
    const reaction = describeServer(reports.length === 1 ? reports[0] : mergeReports(label, reports), died);
    return {
      attack: label,
      target: kind,
      durationMs,
      rssMiB: { start: mib(before?.rss), peak: mib(rssPeak), end: target.gone ? null : mib(end.proc.rss) },
      heapPeakMiB: mib(max(window.map((s) => s.heapUsed))),
      heapEndMiB: mib(end.self?.heapUsed),
      fdsPeak: max(proc.map((s) => s.fds)),
      cpuPercent: cpuPercent(before, proc, endedAt),
      attackerLoopDelayMs: { p50: nsToMs(loop.percentile(50)), p99: nsToMs(loop.percentile(99)), max: nsToMs(loop.max) },
      alive: aliveText(target, startedAt),
      gone: target.gone && { ...target.gone, afterMs: target.gone.at - startedAt },
      goodClientReady: good.ready,
      goodClient,
      reaction,
      harness,
      reports: reports.length > 1 ? [mergeReports(label, reports), ...reports] : reports,
      samples: target.samples,
    };
  } finally {
    destroyAllSockets();
    await target.stop();
  }
}

/** The row of a run that could not take place (the target did not start). */
function failedRow(label: string, kind: TargetKind, durationMs: number, err: unknown): Row {
  return {
    attack: label,
    target: kind,
    durationMs,
    rssMiB: { start: null, peak: null, end: null },
    heapPeakMiB: null,
    heapEndMiB: null,
    fdsPeak: null,
    cpuPercent: null,
    attackerLoopDelayMs: null,
    alive: 'did not start',
    gone: null,
    goodClientReady: false,
    goodClient: null,
    reaction: '-',
    harness: [(err as Error).message.split('\n')[0]],
    reports: [],
    samples: [],
  };
}

function aliveText(target: TargetProcess, startedAt: number): string {
  const gone = target.gone;
  if (!gone) return 'yes';
  const at = `${((gone.at - startedAt) / 1000).toFixed(1)} s`;
  return `${gone.reason === 'exceeded' ? 'killed' : 'died'} at ${at}: ${gone.text}`;
}

/** Server CPU over the attack, in percent of one core, from the /proc samples. */
function cpuPercent(before: Sample | undefined, proc: Sample[], endedAt: number): number | null {
  const last = [...proc].reverse().find((s) => s.at <= endedAt + 300 && s.cpuMs !== null && s.cpuMs !== undefined);
  if (!before || !last || before.cpuMs == null || last.cpuMs == null || last.at <= before.at) return null;
  return ((last.cpuMs - before.cpuMs) / (last.at - before.at)) * 100;
}

function max(values: (number | null | undefined)[]): number | null {
  let best: number | null = null;
  for (const value of values) if (typeof value === 'number' && (best === null || value > best)) best = value;
  return best;
}

function lastOf(samples: Sample[], pick: (s: Sample) => number | null | undefined): number | null {
  for (let i = samples.length - 1; i >= 0; i--) {
    const value = pick(samples[i]);
    if (typeof value === 'number') return value;
  }
  return null;
}

function nsToMs(ns: number): number {
  return Math.round(ns / 1e5) / 10;
}

function mib(bytes: number | null | undefined): number | null {
  return typeof bytes === 'number' ? Math.round(bytes / 1048576) : null;
}

function seconds(text: string | undefined, flag: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) usage(`${flag} must be a non-negative number, not ${text}`);
  return value;
}

function usage(message: string): never {
  console.error(`npm run attacks: ${message}`);
  process.exit(2);
}

main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
