/**
 * The Markdown table: one row per job, the median wall time of each tool, and the target issue
 * 13 sets for tsmux with the measured ratio. A tool with any failed run shows "failed", never a
 * time, and a target that depends on it is not met.
 */
import type { JobResult, Sample } from './jobs';
import { TOOL_LABELS, type ToolId } from './tools-copy';

const COLUMNS: ToolId[] = ['tsmux', 'tsmux-tls', 'scp', 'scp-gcm', 'rsync', 'tar-ssh'];

/** Seconds of a tool in a job when all its timed runs succeeded; otherwise null. */
export function median(job: JobResult | undefined, tool: ToolId): number | null {
  const timed = timedSamples(job, tool);
  if (timed.length === 0 || timed.some((sample) => !sample.ok)) return null;
  return middle(timed.map((sample) => sample.seconds));
}

/** The table, header and rows, as Markdown. */
export function formatTable(jobs: Partial<Record<JobResult['id'], JobResult>>, titles: Record<JobResult['id'], string>): string {
  const lines = [
    `| job | ${COLUMNS.map((tool) => TOOL_LABELS[tool]).join(' | ')} | target | ratio | met? |`,
    `| --- | ${COLUMNS.map(() => '---:').join(' | ')} | --- | ---: | --- |`,
  ];
  for (const id of ['tree', 'big', 'noop', 'resume'] as const) {
    const job = jobs[id];
    if (!job) continue;
    const verdict = TARGETS[id](job);
    lines.push(
      `| ${titles[id]} | ${COLUMNS.map((tool) => cell(job, tool)).join(' | ')} | ${verdict.target} | ${verdict.ratio} | ${verdict.met} |`,
    );
  }
  return lines.join('\n');
}

interface Verdict {
  target: string;
  ratio: string;
  met: string;
}

const TARGETS: Record<JobResult['id'], (job: JobResult) => Verdict> = {
  tree: (job) => {
    const baselines = (['rsync', 'tar-ssh'] as const).map((tool) => median(job, tool)).filter((value) => value !== null);
    return against(job, 'tsmux', baselines.length > 0 ? Math.min(...baselines) : null, 0.8, 'tsmux ≤ 0.8 × min(rsync -a, tar \\| ssh)');
  },
  big: (job) => {
    const scp = median(job, 'scp-gcm');
    const plain = against(job, 'tsmux', scp, 0.8, '');
    const tls = against(job, 'tsmux-tls', scp, 1.0, '');
    return {
      target: 'tsmux ≤ 0.8 ×, TLS ≤ 1.0 × scp aes128-gcm',
      ratio: `${plain.ratio} / ${tls.ratio}`,
      met: `${plain.met} / ${tls.met}`,
    };
  },
  noop: (job) => {
    const time = against(job, 'tsmux', median(job, 'rsync'), 1.0, '');
    const target = 'tsmux wire 0 B, exit 0, ≤ rsync -a';
    const timed = timedSamples(job, 'tsmux');
    if (timed.some((sample) => sample.wireBytes === null)) return { target, ratio: time.ratio, met: 'no (wire bytes unknown)' };
    const wire = Math.max(...timed.map((sample) => sample.wireBytes!));
    if (wire > 0) return { target, ratio: time.ratio, met: `no (wire ${wire} B)` };
    return { target, ratio: time.ratio, met: time.met };
  },
  resume: (job) => {
    const target = '2nd run wire < 55% of file, SHA-256 equal';
    const timed = timedSamples(job, 'tsmux');
    if (timed.length === 0)
      return { target, ratio: '–', met: (job.samples.tsmux ?? []).some((s) => !s.ok) ? 'no (failed)' : 'no (not run)' };
    const known = timed.every((sample) => sample.wireBytes !== null);
    const fraction = known ? middle(timed.map((sample) => sample.wireBytes! / job.sourceBytes)) : null;
    const ratio = fraction === null ? '–' : `${(fraction * 100).toPrecision(3)}%`;
    if (timed.some((sample) => !sample.ok)) return { target, ratio, met: 'no (failed)' };
    if (fraction === null) return { target, ratio, met: 'no (wire bytes unknown; hash ok)' };
    const worst = Math.max(...timed.map((sample) => sample.wireBytes! / job.sourceBytes));
    return { target, ratio, met: worst < 0.55 ? 'yes' : 'no' };
  },
};

/** tsmux's median over `baseline`'s, met when at most `factor`. */
function against(job: JobResult, tool: ToolId, baseline: number | null, factor: number, target: string): Verdict {
  const ours = median(job, tool);
  if (ours === null) return { target, ratio: '–', met: job.skipped[tool] ? 'skipped' : 'no (failed)' };
  if (baseline === null) return { target, ratio: '–', met: '– (no baseline)' };
  const ratio = ours / baseline;
  return { target, ratio: ratio.toFixed(2), met: ratio <= factor ? 'yes' : 'no' };
}

function cell(job: JobResult, tool: ToolId): string {
  if (!job.tools.includes(tool)) return '';
  if (job.skipped[tool]) return 'skipped';
  const timed = timedSamples(job, tool);
  const failed = timed.filter((sample) => !sample.ok).length;
  if (failed > 0) return `failed ${failed}/${timed.length}`;
  const seconds = median(job, tool);
  return seconds === null ? '–' : significant(seconds);
}

/** The runs that count: not the untimed full copy (rep 0) of the no-op job. */
function timedSamples(job: JobResult | undefined, tool: ToolId): Sample[] {
  return (job?.samples[tool] ?? []).filter((sample) => sample.rep > 0);
}

function middle(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
}

/** Three significant digits: 0.0512, 1.23, 45.6, 123, 1230. */
export function significant(value: number): string {
  return value >= 1000 ? String(Math.round(Number(value.toPrecision(3)))) : value.toPrecision(3);
}
