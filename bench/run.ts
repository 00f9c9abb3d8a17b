/**
 * `npm run bench [-- --quick] [-- --only bulk,small] [-- --reps 3]`
 * (`BENCH_SERVER_CPU_PROF=dir` also profiles the server process; run the client under `node --cpu-prof`)
 *
 * Runs every scenario for tcp-stream-muxer and the baselines (raw TCP, node:http2) in the
 * same run: server in a child process, client here, loopback. Prints the median of the
 * repetitions with ratios to each baseline and writes JSON to bench-results/.
 */
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as scenarios from './scenarios';
import { startServer, type Implementation, type ServerProcess } from './transports';

type Scenario = (ctx: scenarios.Context) => Promise<scenarios.Figures>;

const SCENARIOS: [name: string, run: Scenario, implementations: Implementation[]][] = [
  ['bulk', scenarios.bulk, ['mux', 'raw', 'http2']],
  ['parallel', scenarios.parallel, ['mux', 'raw', 'http2']],
  ['small', scenarios.small, ['mux', 'raw', 'http2']],
  ['pingpong', scenarios.pingpong, ['mux', 'raw', 'http2']],
  ['churn', scenarios.churn, ['mux', 'raw', 'http2']],
  // Raw TCP would need 10,000 sockets; the per-stream memory of a muxer is compared with http2.
  ['idle-memory', scenarios.idleMemory, ['mux', 'http2']],
  ['fairness', scenarios.fairness, ['mux', 'raw', 'http2']],
  ['wan', scenarios.wan, ['mux', 'raw']],
];

/**
 * Discarded warm-up runs go on for at least this long per implementation and scenario (at
 * most WARM_UP_MAX_RUNS): in a fresh pair of processes every implementation starts 2-3x below
 * its steady speed (mux bulk: 0.6 then 3 GB/s over the first few GiB; http2 and raw TCP ramp
 * too), and the steady speed is what a long-running service sees.
 */
const WARM_UP_MS = 4000;
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
      reps: { type: 'string', default: '3' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const sizes = values.quick ? scenarios.QUICK : scenarios.FULL;
  const reps = Number(values.reps);
  const only = values.only ? new Set(values.only.split(',')) : null;
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()}`;
  console.log(`tcp-stream-muxer benchmark (${values.quick ? 'quick' : 'full'}, ${reps} repetitions, median) on ${machine}\n`);

  const results: Record<string, Record<string, Record<string, number>>> = {};
  const raw: Record<string, Record<string, scenarios.Figures[]>> = {};
  const diagnostics: Record<string, Record<string, Diagnostics[]>> = {};
  for (const [name, run, implementations] of SCENARIOS) {
    if (only && !only.has(name)) continue;
    results[name] = {};
    const measured = await measure(name, run, implementations, sizes, reps, values.quick ? QUICK_WARM_UP_MS : WARM_UP_MS);
    raw[name] = measured.samples;
    diagnostics[name] = measured.diagnostics;
    for (const [implementation, samples] of Object.entries(raw[name])) {
      const figures: Record<string, number> = {};
      for (const key of Object.keys(samples[0] ?? {})) figures[key] = median(samples.map((s) => s[key]));
      results[name][implementation] = figures;
      if (values.verbose) {
        console.log(`  ${name}/${implementation} samples: ${JSON.stringify(samples)}`);
        console.log(`  ${name}/${implementation} cpu and faults: ${JSON.stringify(diagnostics[name][implementation])}`);
      }
    }
    printScenario(name, results[name]);
  }

  const dir = path.join(__dirname, '..', 'bench-results');
  mkdirSync(dir, { recursive: true });
  const report = { date: new Date().toISOString(), machine, quick: values.quick, reps, sizes, results, samples: raw, diagnostics };
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
): Promise<{ samples: Record<string, scenarios.Figures[]>; diagnostics: Record<string, Diagnostics[]> }> {
  const servers = new Map(await Promise.all(implementations.map(async (i) => [i, await startServer(i)] as const)));
  const samples: Record<string, scenarios.Figures[]> = Object.fromEntries(implementations.map((i) => [i, []]));
  const diagnostics: Record<string, Diagnostics[]> = Object.fromEntries(implementations.map((i) => [i, []]));
  // Full size, except the fixed-duration fairness run.
  const warmSizes = { ...sizes, fairnessMs: Math.ceil(sizes.fairnessMs / 4) };
  const once = async (implementation: Implementation, runSizes: scenarios.Sizes): Promise<[scenarios.Figures, Diagnostics]> => {
    const server = servers.get(implementation)!;
    const ctx = { implementation, server, port: server.port, sizes: runSizes };
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

function printScenario(name: string, byImplementation: Record<string, Record<string, number>>): void {
  const mux = byImplementation.mux ?? {};
  for (const metric of Object.keys(mux)) {
    if (metric === 'kept') continue;
    const raw = byImplementation.raw?.[metric];
    const h2 = byImplementation.http2?.[metric];
    const ratio = (base: number | undefined): string => (base ? `${(mux[metric] / base).toFixed(2)}×` : '-');
    console.log(
      `${name.padEnd(12)} ${metric.padEnd(16)} mux ${format(mux[metric]).padStart(12)}  raw ${format(raw).padStart(12)}  http2 ${format(h2).padStart(12)}  mux/raw ${ratio(raw).padStart(7)}  mux/http2 ${ratio(h2).padStart(7)}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
