/**
 * The forwarding table: median of the runs per tunnel, and issue 14's targets with the ratio
 * measured in the same run. A tunnel with a failed run shows "failed", and a target that
 * depends on it is not met.
 */
import type { DownloadJob, RestartSample, Route, Shape, WrkJob, WrkSample } from './forward-jobs';
import { SSH_CIPHER } from './tunnels';

export interface ForwardResults {
  wrk: WrkJob | null;
  download: DownloadJob | null;
  restart: RestartSample[] | string | null;
  wrkSeconds: number;
}

const ROUTES: Route[] = ['tsmux', 'ssh', 'direct'];

/** The Markdown table. */
export function formatForwardTable(results: ForwardResults): string {
  const lines = ['| forwarding | tsmux | ssh -L | direct | target | ratio | met? |', '| --- | ---: | ---: | ---: | --- | ---: | --- |'];
  const { wrk, download, restart } = results;
  if (wrk) {
    const rate = (route: Route): number | null => middleOf(wrk.samples[route], (r) => r.requestsPerSecond);
    const p99 = (route: Route): number | null => middleOf(wrk.samples[route], (r) => r.p99Ms);
    const errors = (route: Route): number | null => (wrk.samples[route] ? sum(wrk.samples[route].map((r) => r.errors)) : null);
    const ratio = divide(rate('tsmux'), rate('ssh'));
    const errorFree = errors('tsmux') === 0;
    lines.push(
      row(
        `wrk -c1000 -d${results.wrkSeconds}s, 1 KiB: req/s (errors)`,
        ROUTES.map((route) => wrkCell(wrk, route, () => `${thousands(rate(route))} (${errors(route) ?? '–'})`)),
        'tsmux ≥ 1.2 × ssh, 0 errors',
        ratio === null ? '–' : `${ratio.toFixed(2)}×`,
        ratio === null ? 'no (no ssh row)' : yesNo(ratio >= 1.2 && errorFree),
      ),
    );
    const p99Ratio = divide(p99('tsmux'), p99('ssh'));
    lines.push(
      row(
        'wrk p99 latency, ms',
        ROUTES.map((route) => wrkCell(wrk, route, () => (p99(route) ?? 0).toFixed(1))),
        'tsmux ≤ ssh',
        p99Ratio === null ? '–' : `${p99Ratio.toFixed(2)}×`,
        p99Ratio === null ? 'no (no ssh row)' : yesNo(p99Ratio <= 1),
      ),
    );
    const cpu = wrkCpu(wrk);
    lines.push(
      row(
        'wrk: machine CPU per request, µs (cores busy)',
        ROUTES.map((route) =>
          wrkCell(
            wrk,
            route,
            (samples) =>
              `${(cpu.machine(route) ?? 0).toFixed(1)} (${middle(samples.map((s) => s.busyCores)).toFixed(2)} of ${samples[0].cores})`,
          ),
        ),
        '',
        '',
        '',
      ),
    );
    lines.push(tunnelRow('wrk: tunnel CPU per request, µs (machine − direct)', cpu.tunnel('tsmux'), cpu.tunnel('ssh'), cpu.budget, 1.2, 1));
  }
  if (download) {
    const rate = (shape: Shape): number | null => middleOf(download.samples[shape], (s) => s.rate);
    const ssh = rate('ssh -L');
    for (const shape of ['tsmux -L', 'tsmux -R', 'tsmux -D'] as const) {
      const ratio = divide(rate(shape), ssh);
      lines.push(
        row(
          `${mib(download.bytes)} download via ${shape.slice(6)}, MB/s`,
          [downloadCell(download, shape, rate), downloadCell(download, 'ssh -L', rate), downloadCell(download, 'direct', rate)],
          `≥ 1.5 × ssh -L ${SSH_CIPHER.replace('@openssh.com', '')}`,
          ratio === null ? '–' : `${ratio.toFixed(2)}×`,
          ratio === null ? 'no' : yesNo(ratio >= 1.5),
        ),
      );
    }
    const cpu = downloadCpu(download);
    const cell = (shape: Shape): string => {
      const perGB = cpu.perGB(shape);
      const busy = middleOf(download.samples[shape], (s) => s.busyCores);
      return perGB === null || busy === null ? '–' : `${perGB.toFixed(2)} (${busy.toFixed(2)} of ${download.samples[shape]![0].cores})`;
    };
    lines.push(row('download: machine CPU s per GB (cores busy)', [cell('tsmux -L'), cell('ssh -L'), cell('direct')], '', '', ''));
    lines.push(
      tunnelRow('download: tunnel CPU s per GB (machine − direct)', cpu.tunnel('tsmux -L'), cpu.tunnel('ssh -L'), cpu.budget, 1.5, 2),
    );
  }
  if (restart !== null) {
    if (typeof restart === 'string') lines.push(row('serve SIGKILLed under wrk', ['skipped', '', ''], '', '', `no (${restart})`));
    else {
      const failed = restart.filter((s) => s.error !== null);
      const worst = restart.some((s) => s.recoveryMs === null) ? null : Math.max(...restart.map((s) => s.recoveryMs!));
      const refused = sum(restart.map((s) => s.refused + s.wrk.connectErrors));
      const cell = failed.length > 0 ? 'failed' : `${worst === null ? '–' : (worst / 1000).toFixed(2)} s, ${refused} refused`;
      lines.push(
        row(
          'serve SIGKILLed under wrk: slowest recovery, refusals',
          [cell, '', ''],
          'port never closes, OK ≤ 2 s after serve is back',
          '',
          yesNo(failed.length === 0 && refused === 0 && worst !== null && worst <= 2000),
        ),
      );
    }
  }
  return lines.join('\n');
}

/**
 * Where the wrk rows' CPU goes. Each route's run keeps the machine's cores busy, so its rate is
 * about cores ÷ the machine's CPU per request; the direct run's cost is wrk's and nginx's, and
 * what a route spends beyond it is the tunnel's. `budget` is the tunnel CPU per request that
 * would leave the cores room for 1.2 × ssh's rate.
 */
export function wrkCpu(job: WrkJob): CpuShares<Route> & { machine: (route: Route) => number | null } {
  const machine = (route: Route): number | null => middleOf(job.samples[route], (s: WrkSample) => s.machineUsPerRequest);
  const ssh = middleOf(job.samples.ssh, (s) => s.requestsPerSecond);
  // µs per request: a core gives 10^6 of them a second.
  return { machine, ...cpuShares<Route>(machine, 'direct', job.samples.ssh?.[0]?.cores, ssh === null ? null : 1.2 * ssh, 1e6) };
}

/**
 * Where the downloads' CPU goes, as {@link wrkCpu} does for wrk: the machine's busy CPU seconds
 * per GB for a shape, the tunnel's share beyond the direct download, and the tunnel CPU per GB
 * that would leave the cores room for 1.5 × ssh -L's rate.
 */
export function downloadCpu(job: DownloadJob): CpuShares<Shape> & { perGB: (shape: Shape) => number | null } {
  const perGB = (shape: Shape): number | null => middleOf(job.samples[shape], (s) => s.cpuSecondsPerGB);
  const ssh = middleOf(job.samples['ssh -L'], (s) => s.rate);
  // CPU seconds per GB: a core gives one a second, and the target rate is in GB/s.
  return { perGB, ...cpuShares<Shape>(perGB, 'direct', job.samples['ssh -L']?.[0]?.cores, ssh === null ? null : (1.5 * ssh) / 1000, 1) };
}

/** A route's share of the machine's CPU beyond the direct route, and what a target rate leaves it. */
interface CpuShares<K extends string> {
  tunnel: (key: K) => number | null;
  budget: number | null;
}

/**
 * `cost` is the machine's CPU per unit (request, GB) of a route, `directKey` the route without
 * a tunnel. At `targetRate` units a second, `cores` give each unit `cores × perCoreSecond ÷
 * targetRate`; what the direct route spends of that is not the tunnel's to have.
 */
function cpuShares<K extends string>(
  cost: (key: K) => number | null,
  directKey: K,
  cores: number | undefined,
  targetRate: number | null,
  perCoreSecond: number,
): CpuShares<K> {
  const direct = cost(directKey);
  const tunnel = (key: K): number | null => {
    const total = cost(key);
    return total === null || direct === null ? null : total - direct;
  };
  const budget = targetRate === null || direct === null || cores === undefined ? null : (cores * perCoreSecond) / targetRate - direct;
  return { tunnel, budget };
}

/** The note under the table: the least a Node process costs per request, beside the budget. */
export function floorNote(job: WrkJob): string | null {
  if (typeof job.floor === 'string') return `Node floor not measured: ${job.floor}.`;
  const costs = job.floor.map((s) => s.usPerRequest).filter((us): us is number => us !== null);
  if (costs.length === 0) return null;
  const floor = middle(costs);
  const { budget } = wrkCpu(job);
  const owns = (job.samples.tsmux ?? []).map((s) => s.processUsPerRequest).filter((us): us is number => us !== null);
  const own = owns.length === 0 ? null : middle(owns);
  return (
    `Node floor: one Node process answering every read with the same 1 KiB response from memory (one read, one write per request) ` +
    `costs ${floor.toFixed(1)} µs of its own CPU per request under the same wrk (median of ${costs.length})` +
    (own === null ? '' : `; tsmux's serve and forward, counted the same way, cost ${own.toFixed(1)} µs together`) +
    `. A tsmux tunnel has two Node processes on the path, each doing at least that, so ${(2 * floor).toFixed(1)} µs` +
    (budget === null
      ? '.'
      : ` (the machine's softirq work beyond it not counted) against the ${budget.toFixed(1)} µs that 1.2 × ssh's rate leaves on this machine.`)
  );
}

/** A tunnel-CPU row: tsmux's and ssh's share, and what `factor` × ssh's rate would leave. */
function tunnelRow(name: string, tsmux: number | null, ssh: number | null, budget: number | null, factor: number, digits: number): string {
  const ratio = divide(tsmux, ssh);
  return row(
    name,
    [tsmux, ssh].map((cost) => (cost === null ? '–' : cost.toFixed(digits))).concat(''),
    budget === null ? '' : `${factor} × ssh's rate leaves ${budget.toFixed(digits)}`,
    ratio === null ? '–' : `${ratio.toFixed(2)}×`,
    '',
  );
}

function wrkCell(job: WrkJob, route: Route, text: (results: WrkSample[]) => string): string {
  if (job.skipped[route]) return 'skipped';
  const samples = job.samples[route] ?? [];
  if (samples.length === 0) return '–';
  return samples.every((s) => s.ok) ? text(samples) : 'failed';
}

function downloadCell(job: DownloadJob, shape: Shape, rate: (shape: Shape) => number | null): string {
  if (job.skipped[shape]) return 'skipped';
  const samples = job.samples[shape] ?? [];
  if (samples.length === 0) return '–';
  const value = rate(shape);
  return value === null ? 'failed' : value.toFixed(0);
}

function middleOf<T extends { ok: boolean }>(samples: T[] | undefined, pick: (sample: T) => number): number | null {
  if (!samples || samples.length === 0 || samples.some((s) => !s.ok)) return null;
  return middle(samples.map(pick));
}

function middle(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function divide(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : a / b;
}

function sum(values: number[]): number {
  return values.reduce((total, n) => total + n, 0);
}

function thousands(value: number | null): string {
  return value === null ? '–' : Math.round(value).toLocaleString('en-US');
}

function mib(bytes: number): string {
  return `${bytes / (1024 * 1024)} MiB`;
}

function yesNo(ok: boolean): string {
  return ok ? 'yes' : 'no';
}

function row(name: string, cells: string[], target: string, ratio: string, met: string): string {
  return `| ${name} | ${cells.join(' | ')} | ${target} | ${ratio} | ${met} |`;
}
