/**
 * `npm run bench [-- --quick] [-- --only bulk,small] [-- --reps 3]`
 * (`BENCH_SERVER_CPU_PROF=dir` also profiles the server process; run the client under `node --cpu-prof`;
 * `BENCH_FRESH_CPU_PROF=dir` profiles both processes of every fresh repetition)
 *
 * Runs every scenario for tcp-stream-muxer and the baselines (raw TCP, node:http2) in the
 * same run: server in a child process, client here, loopback; the fresh and connections
 * scenarios run their clients in child processes too. Prints the median of the repetitions
 * with ratios to each baseline, the spread (min–max) of the ratios repetition by repetition,
 * and every repetition's figures; writes JSON to bench-results/ with the Node version and CPU.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import * as scenarios from './scenarios';
import type { ServerSetup, TlsFiles } from './server-setup';
import { startServer, type Implementation, type ServerProcess } from './transports';
import { DEFAULTS } from '../dist/cjs/index';

type Scenario = (ctx: scenarios.Context) => Promise<scenarios.Figures>;
type Measure = (
  name: string,
  run: Scenario,
  implementations: Implementation[],
  sizes: scenarios.Sizes,
  reps: number,
  warmUpMs: number,
) => Promise<Measured>;

interface Measured {
  samples: Record<string, scenarios.Figures[]>;
  diagnostics: Record<string, Diagnostics[]>;
}

/** No samples yet, for each of `implementations`. */
function emptyMeasured(implementations: Implementation[]): Measured {
  return {
    samples: Object.fromEntries(implementations.map((i) => [i, []])),
    diagnostics: Object.fromEntries(implementations.map((i) => [i, []])),
  };
}

const SCENARIOS: [name: string, run: Scenario, implementations: Implementation[], how?: Measure][] = [
  ['bulk', scenarios.bulk, ['mux', 'raw', 'http2']],
  ['parallel', scenarios.parallel, ['mux', 'raw', 'http2']],
  ['small', scenarios.small, ['mux', 'raw', 'http2']],
  ['pingpong', scenarios.pingpong, ['mux', 'raw', 'http2']],
  ['churn', scenarios.churn, ['mux', 'raw', 'http2']],
  // Raw TCP would need 10,000 sockets; the per-stream memory of a muxer is compared with http2.
  ['idle-memory', scenarios.idleMemory, ['mux', 'http2']],
  ['fairness', scenarios.fairness, ['mux', 'raw', 'http2']],
  ['wan', scenarios.wan, ['mux', 'raw']],
  // New processes for every repetition: what a CLI run or a short-lived worker gets.
  ['fresh', scenarios.bulk, ['mux', 'raw'], measureFresh],
  ['tls', scenarios.tls, ['mux', 'raw'], measureTls],
  // Raw TCP is the floor (a bare socket); http2 is the target to meet.
  ['connections', scenarios.bulk, ['mux', 'http2', 'raw'], measureConnections],
];

/**
 * Discarded warm-up runs go on for at least this long per implementation and scenario (at
 * most WARM_UP_MAX_RUNS): in a fresh pair of processes every implementation starts 2-3x below
 * its steady speed (mux bulk: 0.6 then 3 GB/s over the first few GiB; http2 and raw TCP ramp
 * too), and the steady speed is what a long-running service sees.
 */
const WARM_UP_MS = 4000;
// Scenarios measured with sizes.issue16Reps repetitions.
const ISSUE_16_SCENARIOS = new Set(['fresh', 'tls', 'connections']);
const QUICK_WARM_UP_MS = 1500;
const WARM_UP_MAX_RUNS = 20;
const WAN_DELAY_MS = 50;
// Linux's default ceiling for a TCP receive buffer (net.ipv4.tcp_rmem max): the window a
// real path would allow raw TCP.
const WAN_IN_FLIGHT = 6 * 1024 * 1024;

async function withProxy<T>(targetPort: number, body: (port: number) => Promise<T>): Promise<T> {
  const proxy = fork(path.join(__dirname, 'delay-proxy.ts'), [String(targetPort), String(WAN_DELAY_MS), String(WAN_IN_FLIGHT)], {
    execArgv: ['--import', 'tsx'],
  });
  try {
    const port = await new Promise<number>((resolve) => proxy.once('message', (m: { port: number }) => resolve(m.port)));
    return await body(port);
  } finally {
    proxy.kill();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function format(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      reps: { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const sizes = values.quick ? scenarios.QUICK : scenarios.FULL;
  const only = values.only ? new Set(values.only.split(',')) : null;
  const cpu = os.cpus()[0]?.model ?? 'cpu';
  const machine = `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const reps = values.reps === undefined ? 3 : Number(values.reps);
  console.log(
    `tcp-stream-muxer benchmark (${values.quick ? 'quick' : 'full'}, ${reps} repetitions (fresh, tls, connections: ${values.reps ?? sizes.issue16Reps}), median) on ${machine}, load ${os.loadavg()[0].toFixed(2)}\n`,
  );

  const results: Record<string, Record<string, Record<string, number>>> = {};
  const raw: Record<string, Record<string, scenarios.Figures[]>> = {};
  const diagnostics: Record<string, Record<string, Diagnostics[]>> = {};
  const ratios: Record<string, Record<string, RatioSpread>> = {};
  for (const [name, run, implementations, how] of SCENARIOS) {
    if (only && !only.has(name)) continue;
    results[name] = {};
    const scenarioReps = ISSUE_16_SCENARIOS.has(name) && values.reps === undefined ? sizes.issue16Reps : reps;
    const measured = await (how ?? measure)(name, run, implementations, sizes, scenarioReps, values.quick ? QUICK_WARM_UP_MS : WARM_UP_MS);
    raw[name] = measured.samples;
    diagnostics[name] = measured.diagnostics;
    for (const [implementation, samples] of Object.entries(raw[name])) {
      const figures: Record<string, number> = {};
      for (const key of Object.keys(samples[0] ?? {})) figures[key] = median(samples.map((s) => s[key]));
      results[name][implementation] = figures;
      if (values.verbose) console.log(`  ${name}/${implementation} cpu and faults: ${JSON.stringify(diagnostics[name][implementation])}`);
    }
    ratios[name] = printScenario(name, results[name], raw[name]);
  }

  const dir = path.join(__dirname, '..', 'bench-results');
  mkdirSync(dir, { recursive: true });
  const report = {
    date: new Date().toISOString(),
    machine,
    node: process.version,
    v8: process.versions.v8,
    cpu,
    cpus: os.cpus().length,
    loadavg: os.loadavg(),
    quick: values.quick,
    reps,
    sizes,
    results,
    ratios,
    samples: raw,
    diagnostics,
  };
  const file = path.join(dir, `${values.quick ? 'quick' : 'full'}-${report.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nresults written to ${path.relative(process.cwd(), file)}`);
}

/** Per repetition: CPU time of each process, and the server's minor page faults (Linux). */
interface Diagnostics {
  clientCpuMs: number;
  serverCpuMs?: number;
  serverMinorFaults?: number;
}

async function withDiagnostics(server: ServerProcess, body: () => Promise<scenarios.Figures>): Promise<[scenarios.Figures, Diagnostics]> {
  const before = server.usage();
  const clientBefore = process.cpuUsage();
  const figures = await body();
  const client = process.cpuUsage(clientBefore);
  const after = server.usage();
  const diagnostics: Diagnostics = { clientCpuMs: Math.round((client.user + client.system) / 1000) };
  if (before && after) {
    diagnostics.serverCpuMs = after.cpuMs - before.cpuMs;
    diagnostics.serverMinorFaults = after.minorFaults - before.minorFaults;
  }
  return [figures, diagnostics];
}

/**
 * Runs one scenario for every implementation. Repetitions are interleaved (mux, raw, http2,
 * mux, ...) so that noise from a shared machine falls on all of them alike, after one
 * discarded warm-up runs each, for at least WARM_UP_MS (JIT, heap growth, socket buffers).
 */
async function measure(
  name: string,
  run: Scenario,
  implementations: Implementation[],
  sizes: scenarios.Sizes,
  reps: number,
  warmUpMs: number,
  setup: ServerSetup = {},
): Promise<Measured> {
  const servers = new Map(await Promise.all(implementations.map(async (i) => [i, await startServer(i, setup)] as const)));
  const { samples, diagnostics } = emptyMeasured(implementations);
  // Full size, except the fixed-duration fairness run.
  const warmSizes = { ...sizes, fairnessMs: Math.ceil(sizes.fairnessMs / 4) };
  const once = async (implementation: Implementation, runSizes: scenarios.Sizes): Promise<[scenarios.Figures, Diagnostics]> => {
    const server = servers.get(implementation)!;
    const ctx = { implementation, server, port: server.port, sizes: runSizes, tls: setup.tls };
    return withDiagnostics(server, () => (name === 'wan' ? withProxy(server.port, (port) => run({ ...ctx, port })) : run(ctx)));
  };
  const failed = new Set<Implementation>();
  const attempt = async (implementation: Implementation, runSizes: scenarios.Sizes): Promise<[scenarios.Figures, Diagnostics] | null> => {
    if (failed.has(implementation)) return null;
    try {
      return await once(implementation, runSizes);
    } catch (err) {
      failed.add(implementation);
      console.error(`${name}/${implementation} failed:`, err);
      return null;
    }
  };
  try {
    if (name !== 'wan' && name !== 'idle-memory') {
      for (const implementation of implementations) {
        // JIT tiers, heap sizing and socket buffers settle over a second or more of work.
        const warmUntil = Date.now() + warmUpMs;
        for (let run = 0; run < WARM_UP_MAX_RUNS && Date.now() < warmUntil; run++) await attempt(implementation, warmSizes);
      }
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const implementation of implementations) {
        const outcome = await attempt(implementation, sizes);
        if (outcome) {
          samples[implementation].push(outcome[0]);
          diagnostics[implementation].push(outcome[1]);
        }
      }
    }
  } finally {
    await Promise.all([...servers.values()].map((server) => server.stop()));
  }
  return { samples, diagnostics };
}

/** A ratio of medians, and the smallest and largest of the ratios of each repetition's pair. */
interface RatioSpread {
  median: number;
  min: number;
  max: number;
}

function ratioSpread(mux: number[], base: number[]): RatioSpread | null {
  if (mux.length === 0 || base.length === 0) return null;
  // Repetitions are interleaved, so the i-th of each ran side by side: pair them.
  const n = Math.min(mux.length, base.length);
  const paired = Array.from({ length: n }, (_, i) => mux[i] / base[i]);
  return { median: median(mux) / median(base), min: Math.min(...paired), max: Math.max(...paired) };
}

function formatRatio(r: RatioSpread | null | undefined): string {
  if (!r || !Number.isFinite(r.median)) return '-';
  return `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
}

/** A self-signed P-256 certificate for 127.0.0.1, made now by the openssl command line. */
function makeCertificate(dir: string): TlsFiles {
  const files = { key: path.join(dir, 'bench.key'), cert: path.join(dir, 'bench.crt') };
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      files.key,
      '-out',
      files.cert,
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return files;
}

/** The tls scenario: the usual warm-up and interleaving, with every server and client on TLS. */
async function measureTls(
  name: string,
  run: Scenario,
  implementations: Implementation[],
  sizes: scenarios.Sizes,
  reps: number,
  warmUpMs: number,
): Promise<Measured> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-tls-'));
  try {
    return await measure(name, run, implementations, sizes, reps, warmUpMs, { tls: makeCertificate(dir) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function forkChild(script: string, args: string[], profileDir?: string): ChildProcess {
  return fork(path.join(__dirname, script), args, {
    execArgv: ['--expose-gc', '--import', 'tsx', ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

function nextMessage<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`${child.spawnargs.join(' ')} exited with ${String(code)}`));
    child.once('exit', onExit);
    child.once('message', (message: T) => {
      child.off('exit', onExit);
      resolve(message);
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/**
 * The fresh scenario: every repetition starts a new server process and a new client process
 * (mux and raw TCP interleaved), moves `freshWarmUpBytes` on the connection, then times
 * `freshBytes` on one stream in 64 KiB writes. No warm-up beyond that: what a CLI run gets.
 */
async function measureFresh(
  _name: string,
  _run: Scenario,
  implementations: Implementation[],
  sizes: scenarios.Sizes,
  reps: number,
): Promise<Measured> {
  const { samples, diagnostics } = emptyMeasured(implementations);
  const profileDir = process.env.BENCH_FRESH_CPU_PROF;
  for (let rep = 0; rep < reps; rep++) {
    for (const implementation of implementations) {
      const server = await startServer(implementation, {}, profileDir);
      try {
        const client = forkChild(
          'fresh-client.ts',
          [implementation, String(server.port), String(sizes.freshWarmUpBytes), String(sizes.freshBytes)],
          profileDir,
        );
        const figures = await nextMessage<scenarios.Figures>(client);
        await exited(client);
        const usage = server.usage();
        samples[implementation].push(figures);
        // The client's CPU is not read here: it has exited (0 stands for "not measured").
        diagnostics[implementation].push({
          clientCpuMs: 0,
          ...(usage ? { serverCpuMs: usage.cpuMs, serverMinorFaults: usage.minorFaults } : {}),
        });
      } finally {
        await server.stop();
      }
    }
  }
  return { samples, diagnostics };
}

// The connections scenario's setup: this many connections being set up at once (under the
// server's maxHandshakes), and the keepalive interval while its CPU is measured, scaled to
// the default interval afterwards (a shorter one makes many pings happen in a short run).
const CONNECT_CONCURRENCY = 200;
const KEEPALIVE_MEASURE_INTERVAL_MS = 1000;
const SETTLE_MS = 1500;

/**
 * The connections scenario, per implementation and repetition (interleaved), in fresh
 * processes: the server alone, then `connections` idle clients from one client process.
 * Figures: connections set up per second; the server's heap + external memory per
 * connection (after full collections, before and after); and, in a second server with the
 * keepalive interval at KEEPALIVE_MEASURE_INTERVAL_MS on both sides, the server's CPU while
 * the idle connections only ping, as a share of one core at the default interval.
 */
async function measureConnections(
  _name: string,
  _run: Scenario,
  implementations: Implementation[],
  sizes: scenarios.Sizes,
  reps: number,
): Promise<Measured> {
  const { samples, diagnostics } = emptyMeasured(implementations);
  const n = sizes.connections;
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const connectAll = async (server: ServerProcess, implementation: Implementation, keepAlive?: number): Promise<[ChildProcess, number]> => {
    const args = [implementation, String(server.port), String(n), String(CONNECT_CONCURRENCY), ...(keepAlive ? [String(keepAlive)] : [])];
    const client = forkChild('connections-client.ts', args);
    const { setupMs } = await nextMessage<{ setupMs: number }>(client);
    return [client, setupMs];
  };
  const closeClients = async (client: ChildProcess): Promise<void> => {
    client.send({ type: 'close' });
    await exited(client);
  };
  for (let rep = 0; rep < reps; rep++) {
    for (const implementation of implementations) {
      const figures: scenarios.Figures = {};
      const diag: Diagnostics = { clientCpuMs: 0 };
      // Setup rate and memory, with the defaults users get.
      let server = await startServer(implementation);
      try {
        await sleep(200);
        const before = await server.memory();
        const [client, setupMs] = await connectAll(server, implementation);
        await sleep(SETTLE_MS);
        const after = await server.memory();
        if (after.connections !== n) throw new Error(`${implementation} server holds ${after.connections} connections, expected ${n}`);
        figures['setup conn/s'] = n / (setupMs / 1000);
        figures['server B/conn'] = (after.heap - before.heap) / n;
        await closeClients(client);
      } finally {
        await server.stop();
      }
      // Keepalive: the interval shortened on both sides, the server's CPU over a window.
      if (implementation !== 'raw') {
        server = await startServer(implementation, { keepAliveInterval: KEEPALIVE_MEASURE_INTERVAL_MS });
        try {
          const [client] = await connectAll(server, implementation, KEEPALIVE_MEASURE_INTERVAL_MS);
          await sleep(Math.max(SETTLE_MS, 2 * KEEPALIVE_MEASURE_INTERVAL_MS));
          const start = server.usage();
          const startedAt = performance.now();
          await sleep(sizes.keepAliveWindowMs);
          const end = server.usage();
          const elapsed = performance.now() - startedAt;
          if (start && end) {
            const share = (end.cpuMs - start.cpuMs) / elapsed;
            figures['keepalive % core'] = 100 * share * (KEEPALIVE_MEASURE_INTERVAL_MS / DEFAULTS.keepAliveInterval);
            diag.serverCpuMs = end.cpuMs - start.cpuMs;
            diag.serverMinorFaults = end.minorFaults - start.minorFaults;
          }
          const memory = await server.memory();
          if (memory.connections !== n)
            throw new Error(`${implementation} lost connections under keepalive: ${memory.connections} of ${n}`);
          await closeClients(client);
        } finally {
          await server.stop();
        }
      }
      samples[implementation].push(figures);
      diagnostics[implementation].push(diag);
    }
  }
  return { samples, diagnostics };
}

function printScenario(
  name: string,
  byImplementation: Record<string, Record<string, number>>,
  samples: Record<string, scenarios.Figures[]>,
): Record<string, RatioSpread> {
  const mux = byImplementation.mux ?? {};
  const spreads: Record<string, RatioSpread> = {};
  const series = (implementation: string, metric: string): number[] =>
    (samples[implementation] ?? []).map((s) => s[metric]).filter((v) => v !== undefined && !Number.isNaN(v));
  for (const metric of Object.keys(mux)) {
    if (metric === 'kept') continue;
    const raw = byImplementation.raw?.[metric];
    const h2 = byImplementation.http2?.[metric];
    const vsRaw = ratioSpread(series('mux', metric), series('raw', metric));
    const vsH2 = ratioSpread(series('mux', metric), series('http2', metric));
    if (vsRaw) spreads[`${metric} vs raw`] = vsRaw;
    if (vsH2) spreads[`${metric} vs http2`] = vsH2;
    console.log(
      `${name.padEnd(12)} ${metric.padEnd(17)} mux ${format(mux[metric]).padStart(12)}  raw ${format(raw).padStart(12)}  http2 ${format(h2).padStart(12)}  mux/raw ${formatRatio(vsRaw).padStart(19)}  mux/http2 ${formatRatio(vsH2).padStart(19)}`,
    );
    const each = Object.keys(samples)
      .map((i) => `${i} ${series(i, metric).map(format).join(' / ')}`)
      .filter((line) => !line.endsWith(' '));
    console.log(`${''.padEnd(31)}each repetition: ${each.join('; ')}`);
  }
  return spreads;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
