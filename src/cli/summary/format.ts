/**
 * Human-readable sizes, durations, rates and the end-of-run summary, numbers to 3 significant
 * digits (`333 B/s`, not `333.33333333333337 B/s`). Pure functions.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/**
 * `value` to 3 significant digits, trailing zeros dropped: `333`, `1.23`, `12.3`, `0.5`,
 * `0.001`. Only where `String()` would switch to exponent form (below 1e-6, from 1e21) is the
 * exponent kept, so the digits stay 3.
 */
export function formatSignificant(value: number): string {
  const rounded = Number(value.toPrecision(3));
  const size = Math.abs(rounded);
  return size >= 1e21 || (size > 0 && size < 1e-6) ? rounded.toPrecision(3) : String(rounded);
}

/**
 * `0 B`, `512 B`, `1.5 KiB`, `333 B`, `1.23 MiB` (binary units, 3 significant digits); `?`
 * for NaN or infinity. The unit goes up once the value would round to 1000, so 1000 to 1023
 * bytes read `0.977 KiB` to `0.999 KiB`: a fourth digit would be noise.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '?';
  if (bytes < 0) return `-${formatBytes(-bytes)}`;
  let value = bytes;
  let unit = 0;
  while (Number(value.toPrecision(3)) >= 1000 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${formatSignificant(value)} ${UNITS[unit]}`;
}

/**
 * `0.25 s`, `12.3 s` (3 significant digits below a minute), `2 min 5 s`, `1 h 3 min`; `?` for
 * a negative, NaN or infinite time. Minutes and hours are rounded as a whole first, so
 * 119.6 s is `2 min 0 s`, never `1 min 60 s`.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (Number(seconds.toPrecision(3)) < 60) return `${formatSignificant(seconds)} s`;
  const wholeSeconds = Math.round(seconds);
  if (wholeSeconds < 3600) return `${Math.floor(wholeSeconds / 60)} min ${wholeSeconds % 60} s`;
  const wholeMinutes = Math.round(seconds / 60);
  return `${Math.floor(wholeMinutes / 60)} h ${wholeMinutes % 60} min`;
}

/** `333 B/s`, `12.3 MiB/s`; `-` when no time has passed yet or either number is not finite. */
export function formatRate(bytes: number, seconds: number): string {
  const rate = bytes / seconds;
  if (!(seconds > 0) || !Number.isFinite(rate)) return '-';
  return `${formatBytes(rate)}/s`;
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
