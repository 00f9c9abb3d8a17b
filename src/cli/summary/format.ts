/** Human-readable sizes, durations, rates and the end-of-run summary. Pure functions. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `0 B`, `512 B`, `1.2 KiB`, `3.4 MiB`, ... (binary units). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** `0.3 s`, `12 s`, `2 min 5 s`, `1 h 3 min`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** `12.3 MiB/s`; `-` when no time has passed yet. */
export function formatRate(bytes: number, seconds: number): string {
  if (!(seconds > 0)) return '-';
  return `${formatBytes(bytes / seconds)}/s`;
}

export interface Failure {
  name: string;
  reason: string;
}

export interface Summary {
  /** `sent` or `received`. */
  verb: string;
  /** Files that made it. */
  files: number;
  /** Bytes of those files. */
  bytes: number;
  seconds: number;
  failures: Failure[];
  /** Set when the run was cut short (`interrupted by SIGINT`, `connection lost`). */
  interrupted?: string | undefined;
  /** Files never started because the run was cut short. */
  notStarted?: number | undefined;
}

/**
 * The closing lines of `tsmux send` and `tsmux demo`, e.g.
 * `12 files sent, 25.3 MiB in 1.2 s (21.1 MiB/s), 1 failed` and one line per failure.
 */
export function formatSummary(summary: Summary): string {
  const { verb, files, bytes, seconds, failures } = summary;
  const parts = [
    `${files} ${files === 1 ? 'file' : 'files'} ${verb}, ${formatBytes(bytes)} in ${formatDuration(seconds)} (${formatRate(bytes, seconds)})`,
  ];
  parts[0] += failures.length > 0 ? `, ${failures.length} failed` : ', 0 failed';
  if (summary.notStarted) parts[0] += `, ${summary.notStarted} not started`;
  if (summary.interrupted) parts[0] += ` (${summary.interrupted})`;
  for (const failure of failures) parts.push(`failed: ${failure.name}: ${failure.reason}`);
  return `${parts.join('\n')}\n`;
}
