/**
 * The forwarding table: median of the runs per tunnel, and issue 14's targets with the ratio
 * measured in the same run. A tunnel with a failed run shows "failed", and a target that
 * depends on it is not met.
 */
import type { DownloadJob, RestartSample, Route, Shape, WrkJob } from './forward-jobs';
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

function wrkCell(job: WrkJob, route: Route, text: (results: WrkResult[]) => string): string {
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

function middleOf(samples: WrkResult[] | undefined, pick: (result: WrkResult) => number): number | null {
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
