/**
 * Issue 14's rows: nginx reached directly, through `tsmux forward` and through `ssh -L`.
 * - wrk -t2 -c1000 on a 1 KiB file: requests per second, p99 latency, errors;
 * - a large download with curl through -L, -R and -D (curl --socks5-hostname) and ssh -L;
 * - serve killed with SIGKILL while wrk runs and started again: whether the forward's port
 *   ever refused a connection, and how soon after serve is back a request succeeds.
 * Repetitions are interleaved across the tunnels, as in jobs.ts.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { lastLine, run, start, stop } from './children';
import { busyCores, machineCpu, processCpuSeconds } from './cpu';
import type { Nginx } from './nginx';
import { measureNodeFloor, type FloorSample } from './node-floor';
import type { Sshd } from './sshd';
import { startSshTunnel, startTsmuxTunnel, serveArgs, type TsmuxTunnel } from './tunnels';
import { CLI } from './tsmux';
import { runWrk, type WrkResult } from './wrk';

export type Route = 'direct' | 'tsmux' | 'ssh';
export type Shape = 'direct' | 'tsmux -L' | 'tsmux -R' | 'tsmux -D' | 'ssh -L';

export interface ForwardContext {
  nginx: Nginx;
  wrk: string | null;
  curl: string | null;
  ssh: string | null;
  sshd: Sshd | null;
  workDir: string;
  runs: number;
  /** wrk's duration per run, seconds. */
  wrkSeconds: number;
  log: (line: string) => void;
}

/** A wrk run and what the whole machine spent on it. */
export interface WrkSample extends WrkResult {
  /** Cores kept busy on average while wrk ran (of `cores`). */
  busyCores: number;
  cores: number;
  /** Busy CPU time of the whole machine per request, µs: wrk, nginx and the tunnel together. */
  machineUsPerRequest: number;
  /** tsmux only: serve's and forward's own CPU per request, µs, accounted as the Node floor is; null elsewhere. */
  processUsPerRequest: number | null;
}

export interface WrkJob {
  samples: Partial<Record<Route, WrkSample[]>>;
  skipped: Partial<Record<Route, string>>;
  /** The same wrk against the least a Node process can do per request (node-floor.ts), or why not. */
  floor: FloorSample[] | string;
}

export interface DownloadSample {
  ok: boolean;
  seconds: number;
  /** MB/s (10^6 bytes), from curl's own byte count and total time. */
  rate: number;
  error: string | null;
  /** Cores kept busy on average during the download (of `cores`), and the machine's busy CPU seconds per GB moved. */
  busyCores: number;
  cores: number;
  cpuSecondsPerGB: number;
}

export interface DownloadJob {
  bytes: number;
  samples: Partial<Record<Shape, DownloadSample[]>>;
  skipped: Partial<Record<Shape, string>>;
}

export interface RestartSample {
  /** Connections to the forward's port refused (ECONNREFUSED) from the kill until the end. */
  refused: number;
  /** From serve's "listening on" again to the end of the first request that succeeded after the kill, ms; null if none did. */
  recoveryMs: number | null;
  /** The probes (one GET every PROBE_MS) and how many failed (reset or timed out, not refused). */
  probes: number;
  probeFailures: number;
  /** serve's start-up, SIGKILL to "listening on" of the new one, ms. */
  downMs: number;
  wrk: WrkResult;
  error: string | null;
}

const PROBE_MS = 50;
const PROBE_TIMEOUT_MS = 10_000;
const WRK_THREADS = 2;
const WRK_CONNECTIONS = 1000;
/** The restart row's wrk: enough connections to keep the link busy, not so many that serve's start-up starves. */
const RESTART_CONNECTIONS = 100;

/** wrk -t2 -c1000 on the small file: directly, through tsmux -L and through ssh -L. */
export async function wrkJob(ctx: ForwardContext): Promise<WrkJob> {
  const job: WrkJob = { samples: {}, skipped: {}, floor: 'not run' };
  if (!ctx.wrk) {
    for (const route of ['direct', 'tsmux', 'ssh'] as const) job.skipped[route] = 'wrk not found; install the Debian package wrk';
    job.floor = 'wrk not found';
    return job;
  }
  const wrk = ctx.wrk;
  await withTunnels(ctx, job.skipped, false, async (ports, tunnel) => {
    const tunnelPids = (route: Route): (number | undefined)[] =>
      route === 'tsmux' && tunnel ? [tunnel.serve.child.pid, tunnel.forward.pid] : [];
    const routes = Object.keys(ports) as Route[];
    for (const route of routes) {
      // Untimed: the first seconds of a fresh tunnel process (JIT, buffers) are not its steady speed.
      await runWrk(wrk, url(ports[route]!, ctx.nginx.small), WRK_THREADS, WRK_CONNECTIONS, 2);
      job.samples[route] = [];
    }
    for (let rep = 0; rep < ctx.runs; rep++) {
      for (const route of rotate(routes, rep)) {
        const pids = tunnelPids(route);
        const processBefore = processesCpuSeconds(pids);
        const before = machineCpu();
        const result = await runWrk(wrk, url(ports[route]!, ctx.nginx.small), WRK_THREADS, WRK_CONNECTIONS, ctx.wrkSeconds);
        const after = machineCpu();
        const processAfter = processesCpuSeconds(pids);
        const sample: WrkSample = {
          ...result,
          busyCores: busyCores(before, after),
          cores: after.cores,
          machineUsPerRequest: result.requests > 0 ? ((after.busyMs - before.busyMs) * 1000) / result.requests : 0,
          processUsPerRequest:
            processBefore === null || processAfter === null || result.requests === 0
              ? null
              : ((processAfter - processBefore) * 1e6) / result.requests,
        };
        ctx.log(
          `  wrk ${route} rep ${rep + 1}: ${result.ok ? `${result.requestsPerSecond.toFixed(0)} req/s, p99 ${result.p99Ms.toFixed(1)} ms, ${result.errors} errors, ${sample.busyCores.toFixed(2)} of ${sample.cores} cores busy, ${sample.machineUsPerRequest.toFixed(1)} µs CPU per request` : result.error}`,
        );
        job.samples[route]!.push(sample);
      }
    }
  });
  try {
    job.floor = await measureNodeFloor(wrk, WRK_THREADS, WRK_CONNECTIONS, ctx.wrkSeconds, ctx.runs);
    for (const [rep, sample] of job.floor.entries())
      ctx.log(
        `  wrk node floor rep ${rep + 1}: ${sample.wrk.requestsPerSecond.toFixed(0)} req/s, ${sample.usPerRequest?.toFixed(1) ?? '–'} µs CPU per request`,
      );
  } catch (err) {
    job.floor = (err as Error).message;
  }
  return job;
}

/** curl of the large file: directly, through tsmux -L, -R, -D and through ssh -L. */
export async function downloadJob(ctx: ForwardContext): Promise<DownloadJob> {
  const job: DownloadJob = { bytes: ctx.nginx.largeBytes, samples: {}, skipped: {} };
  if (!ctx.curl) {
    for (const shape of ['direct', 'tsmux -L', 'tsmux -R', 'tsmux -D', 'ssh -L'] as const)
      job.skipped[shape] = 'curl not found; install the Debian package curl';
    return job;
  }
  const curl = ctx.curl;
  const skippedRoutes: Partial<Record<Route, string>> = {};
  await withTunnels(ctx, skippedRoutes, true, async (ports, tunnel) => {
    const shapes: [Shape, string[]][] = [['direct', [url(ports.direct!, ctx.nginx.large)]]];
    if (tunnel) {
      shapes.push(['tsmux -L', [url(tunnel.local, ctx.nginx.large)]]);
      if (tunnel.reverse !== null) shapes.push(['tsmux -R', [url(tunnel.reverse, ctx.nginx.large)]]);
      if (tunnel.socks !== null)
        shapes.push(['tsmux -D', ['--socks5-hostname', `127.0.0.1:${tunnel.socks}`, url(ctx.nginx.port, ctx.nginx.large)]]);
    }
    if (ports.ssh !== undefined) shapes.push(['ssh -L', [url(ports.ssh, ctx.nginx.large)]]);
    // Untimed, as for wrk: a tunnel is a long-lived process, and its first 100 MiB also pay for the JIT.
    for (const [shape, args] of shapes) {
      job.samples[shape] = [];
      await download(curl, args, ctx.nginx.largeBytes);
    }
    for (let rep = 0; rep < ctx.runs; rep++) {
      for (const [shape, args] of rotate(shapes, rep)) {
        const sample = await download(curl, args, ctx.nginx.largeBytes);
        ctx.log(`  download ${shape} rep ${rep + 1}: ${sample.ok ? `${sample.rate.toFixed(0)} MB/s` : sample.error}`);
        job.samples[shape]!.push(sample);
      }
    }
  });
  if (skippedRoutes.tsmux) for (const shape of ['tsmux -L', 'tsmux -R', 'tsmux -D'] as const) job.skipped[shape] = skippedRoutes.tsmux;
  if (skippedRoutes.ssh) job.skipped['ssh -L'] = skippedRoutes.ssh;
  return job;
}

/**
 * tsmux -L with wrk running through it; after a third of wrk's time serve is killed with
 * SIGKILL and started again on its port, while a GET goes through the forward every
 * PROBE_MS. The forward runs with its defaults (backoff from 250 ms, doubling).
 */
export async function restartJob(ctx: ForwardContext): Promise<RestartSample[] | string> {
  if (!ctx.wrk) return 'wrk not found; install the Debian package wrk';
  const samples: RestartSample[] = [];
  for (let rep = 0; rep < ctx.runs; rep++) {
    let tunnel: TsmuxTunnel;
    try {
      tunnel = await startTsmuxTunnel(path.join(ctx.workDir, `restart-${rep}`), ctx.nginx.port, { allShapes: false });
    } catch (err) {
      return (err as Error).message;
    }
    let second: ReturnType<typeof start> | null = null;
    try {
      const probes = new Prober(url(tunnel.local, ctx.nginx.small));
      const load = runWrk(ctx.wrk, url(tunnel.local, ctx.nginx.small), WRK_THREADS, RESTART_CONNECTIONS, ctx.wrkSeconds);
      await sleep((ctx.wrkSeconds * 1000) / 3);
      const killedAt = Date.now();
      probes.markKill(killedAt);
      tunnel.serve.child.kill('SIGKILL');
      await new Promise((resolve) => tunnel.serve.child.once('exit', resolve));
      const args = [CLI, 'serve', '--port', String(tunnel.serve.port), '--dir', path.join(ctx.workDir, `restart-${rep}`)];
      second = start(process.execPath, [...args, ...serveArgs(ctx.nginx.port)]);
      const backAt = await listeningAt(second);
      const wrk = await load;
      await probes.stop();
      const recovered = probes.firstSuccessAfterKill();
      const sample: RestartSample = {
        refused: probes.refused,
        recoveryMs: recovered === null ? null : Math.max(0, recovered - backAt),
        probes: probes.count,
        probeFailures: probes.failures,
        downMs: backAt - killedAt,
        wrk,
        error: null,
      };
      ctx.log(
        `  restart rep ${rep + 1}: serve down ${sample.downMs} ms, first request OK ${sample.recoveryMs ?? '–'} ms after it was back, ${sample.refused} refused, wrk ${wrk.requests} requests, ${wrk.errors} errors`,
      );
      samples.push(sample);
    } catch (err) {
      samples.push({
        refused: 0,
        recoveryMs: null,
        probes: 0,
        probeFailures: 0,
        downMs: 0,
        wrk: failedWrk(),
        error: (err as Error).message,
      });
    } finally {
      if (second) await stop(second);
      await tunnel.stop();
    }
  }
  return samples;
}

/** Starts the routes that can run (direct always), hands their -L ports to `body`, stops them after. */
async function withTunnels(
  ctx: ForwardContext,
  skipped: Partial<Record<Route, string>>,
  allShapes: boolean,
  body: (ports: Partial<Record<Route, number>>, tunnel: TsmuxTunnel | null) => Promise<void>,
): Promise<void> {
  const ports: Partial<Record<Route, number>> = { direct: ctx.nginx.port };
  const stops: (() => Promise<void>)[] = [];
  let tunnel: TsmuxTunnel | null = null;
  try {
    try {
      tunnel = await startTsmuxTunnel(path.join(ctx.workDir, allShapes ? 'download' : 'wrk'), ctx.nginx.port, { allShapes });
      stops.push(tunnel.stop);
      ports.tsmux = tunnel.local;
    } catch (err) {
      skipped.tsmux = (err as Error).message;
    }
    if (!ctx.ssh || !ctx.sshd) skipped.ssh = 'no sshd (see the note above)';
    else {
      try {
        const ssh = await startSshTunnel(ctx.ssh, ctx.sshd, ctx.nginx.port);
        stops.push(ssh.stop);
        ports.ssh = ssh.local;
      } catch (err) {
        skipped.ssh = (err as Error).message;
      }
    }
    await body(ports, tunnel);
  } finally {
    for (const stopOne of stops) await stopOne();
  }
}

async function download(curl: string, args: string[], bytes: number): Promise<DownloadSample> {
  const before = machineCpu();
  const outcome = await run(curl, ['-s', '-S', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', ...args], { timeoutMs: 300_000 });
  const after = machineCpu();
  const cpu = {
    busyCores: busyCores(before, after),
    cores: after.cores,
    cpuSecondsPerGB: (after.busyMs - before.busyMs) / 1000 / (bytes / 1e9),
  };
  const [size, seconds] = outcome.stdout.trim().split(' ').map(Number);
  if (outcome.code !== 0 || size !== bytes || !(seconds > 0)) {
    const why = outcome.timedOut ? 'timed out' : `exit ${outcome.code}, ${size} of ${bytes} bytes: ${lastLine(outcome.stderr)}`;
    return { ok: false, seconds: outcome.seconds, rate: 0, error: `curl ${why}`, ...cpu };
  }
  return { ok: true, seconds, rate: bytes / seconds / 1e6, error: null, ...cpu };
}

/** One GET every PROBE_MS through the forward, each on a new connection; what became of each. */
class Prober {
  refused = 0;
  failures = 0;
  count = 0;
  private killedAt = Infinity;
  private readonly successes: number[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly target: string) {
    this.timer = setInterval(() => this.probe(), PROBE_MS);
  }

  markKill(at: number): void {
    this.killedAt = at;
  }

  /** When the first request that succeeded after the kill ended, or null. */
  firstSuccessAfterKill(): number | null {
    const after = this.successes.filter((at) => at > this.killedAt);
    return after.length > 0 ? Math.min(...after) : null;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.pending);
  }

  private probe(): void {
    this.count++;
    const done = new Promise<void>((resolve) => {
      const req = http.get(this.target, { agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
        res.resume();
        res.once('end', () => {
          if (res.statusCode === 200) this.successes.push(Date.now());
          else this.failures++;
          resolve();
        });
        res.once('error', () => {
          this.failures++;
          resolve();
        });
      });
      req.once('timeout', () => req.destroy(new Error('timed out')));
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') this.refused++;
        else this.failures++;
        resolve();
      });
    });
    this.pending.add(done);
    void done.then(() => this.pending.delete(done));
  }
}

/** When the child printed "listening on" (ms since the epoch); rejects if it exits first. */
async function listeningAt(child: ReturnType<typeof start>): Promise<number> {
  let text = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.resume();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve did not start again within 15 s')), 15_000);
    child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      if (/listening on/.test(text)) {
        clearTimeout(timer);
        resolve(Date.now());
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}) when started again: ${text}`)));
  });
}

function failedWrk(): WrkResult {
  return { ok: false, requestsPerSecond: 0, p99Ms: 0, requests: 0, errors: 0, connectErrors: 0, errorDetail: '', error: 'not run' };
}

/** The CPU seconds of all of `pids` together; null if there are none or one cannot be read. */
function processesCpuSeconds(pids: (number | undefined)[]): number | null {
  let total = 0;
  for (const pid of pids) {
    const seconds = processCpuSeconds(pid);
    if (seconds === null) return null;
    total += seconds;
  }
  return pids.length === 0 ? null : total;
}

function url(port: number, pathname: string): string {
  return `http://127.0.0.1:${port}${pathname}`;
}

function rotate<T>(items: T[], by: number): T[] {
  const shift = by % Math.max(items.length, 1);
  return [...items.slice(shift), ...items.slice(0, shift)];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
