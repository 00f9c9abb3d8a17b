/**
 * The forwarding table: median of the runs per tunnel, and issue 14's targets with the ratio
 * measured in the same run. A tunnel with a failed run shows "failed", and a target that
 * depends on it is not met.
 */
import type { DownloadJob, DownloadSample, RestartSample, Route, Shape, WrkJob, WrkSample } from './forward-jobs';
import { SSH_CIPHER } from './tunnels';
import type { WrkResult } from './wrk';

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
    const tunnelRatio = divide(cpu.tunnel('tsmux'), cpu.tunnel('ssh'));
    lines.push(
      row(
        'wrk: tunnel CPU per request, µs (machine − direct)',
        [cpu.tunnel('tsmux'), cpu.tunnel('ssh')].map((us) => (us === null ? '–' : us.toFixed(1))).concat(''),
        cpu.budget === null ? '' : `1.2 × ssh's rate leaves ${cpu.budget.toFixed(1)}`,
        tunnelRatio === null ? '–' : `${tunnelRatio.toFixed(2)}×`,
        '',
      ),
    );
  }
  if (download) {
    const rate = (shape: Shape): number | null => {
      const samples = download.samples[shape];
      return samples && samples.length > 0 && samples.every((s) => s.ok) ? middle(samples.map((s) => s.rate)) : null;
    };
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
      const busy = middleOfSamples(download.samples[shape], (s) => s.busyCores);
      return perGB === null || busy === null ? '–' : `${perGB.toFixed(2)} (${busy.toFixed(2)} of ${download.samples[shape]![0].cores})`;
    };
    lines.push(row('download: machine CPU s per GB (cores busy)', [cell('tsmux -L'), cell('ssh -L'), cell('direct')], '', '', ''));
    const tunnelRatio = divide(cpu.tunnel('tsmux -L'), cpu.tunnel('ssh -L'));
    lines.push(
      row(
        'download: tunnel CPU s per GB (machine − direct)',
        [cpu.tunnel('tsmux -L'), cpu.tunnel('ssh -L')].map((s) => (s === null ? '–' : s.toFixed(2))).concat(''),
        cpu.budget === null ? '' : `1.5 × ssh's rate leaves ${cpu.budget.toFixed(2)}`,
        tunnelRatio === null ? '–' : `${tunnelRatio.toFixed(2)}×`,
        '',
      ),
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
export function wrkCpu(job: WrkJob): {
  machine: (route: Route) => number | null;
  tunnel: (route: Route) => number | null;
  budget: number | null;
} {
  const machine = (route: Route): number | null => middleOf(job.samples[route], (s: WrkSample) => s.machineUsPerRequest);
  const tunnel = (route: Route): number | null => {
    const total = machine(route);
    const direct = machine('direct');
    return total === null || direct === null ? null : total - direct;
  };
  const ssh = middleOf(job.samples.ssh, (s) => s.requestsPerSecond);
  const direct = machine('direct');
  const cores = job.samples.ssh?.[0]?.cores;
  const budget = ssh === null || direct === null || cores === undefined ? null : (cores * 1e6) / (1.2 * ssh) - direct;
  return { machine, tunnel, budget };
}

/**
 * Where the downloads' CPU goes, as {@link wrkCpu} does for wrk: the machine's busy CPU seconds
 * per GB for a shape, the tunnel's share beyond the direct download, and the tunnel CPU per GB
 * that would leave the cores room for 1.5 × ssh -L's rate.
 */
export function downloadCpu(job: DownloadJob): {
  perGB: (shape: Shape) => number | null;
  tunnel: (shape: Shape) => number | null;
  budget: number | null;
} {
  const perGB = (shape: Shape): number | null => middleOfSamples(job.samples[shape], (s) => s.cpuSecondsPerGB);
  const tunnel = (shape: Shape): number | null => {
    const total = perGB(shape);
    const direct = perGB('direct');
    return total === null || direct === null ? null : total - direct;
  };
  const ssh = middleOfSamples(job.samples['ssh -L'], (s) => s.rate);
  const direct = perGB('direct');
  const cores = job.samples['ssh -L']?.[0]?.cores;
  const budget = ssh === null || direct === null || cores === undefined ? null : cores / ((1.5 * ssh) / 1000) - direct;
  return { perGB, tunnel, budget };
}

function middleOfSamples(samples: DownloadSample[] | undefined, pick: (sample: DownloadSample) => number): number | null {
  return samples && samples.length > 0 && samples.every((s) => s.ok) ? middle(samples.map(pick)) : null;
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

function middleOf<T extends WrkResult>(samples: T[] | undefined, pick: (result: T) => number): number | null {
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
