/** What `send`, `get` and `serve` share about a sync run: the target syntax and the summary. */
import { DEFAULT_PORT, parseHostPort, parsePort, UsageError, type HostPort } from '../args';
import { formatBytes, formatDuration, formatRate } from '../summary/format';
import type { SyncOutcome } from './outcome';

/** The version in a sync stream's meta; a receiver refuses one it does not speak. */
export const SYNC_VERSION = 1;

/** `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT`: serve's port when none is given. */
export function parseTarget(text: string): HostPort {
  return parseHostPort(text, 'HOST[:PORT]', { defaultPort: DEFAULT_PORT });
}

/**
 * `HOST:PATH`, `HOST:PORT:PATH`, `[V6]:PATH`, `[V6]:PORT:PATH`: the server and a path under its
 * --export (empty or `.` for all of it).
 */
export function parseRemotePath(text: string): { target: HostPort; path: string } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?:(.*)$/.exec(text);
  if (bracketed) {
    const port = bracketed[2] ? parsePort(bracketed[2], 'HOST:PORT') : DEFAULT_PORT;
    return { target: { host: bracketed[1].toLowerCase(), port }, path: bracketed[3] };
  }
  const match = /^([^:[\]]+):(?:(\d+):)?(.*)$/.exec(text);
  if (!match) throw new UsageError(`expected HOST:PATH or HOST:PORT:PATH, got "${text}"`);
  return {
    target: { host: match[1].toLowerCase(), port: match[2] ? parsePort(match[2], 'HOST:PORT') : DEFAULT_PORT },
    path: match[3],
  };
}

export interface OutcomeReport extends SyncOutcome {
  seconds: number;
}

/** The closing lines (or one JSON line with `--json`) on stdout. */
export function printOutcome(verb: 'sent' | 'received', report: OutcomeReport, json: boolean): void {
  if (json) {
    const { files, unchanged, bytes, wireBytes, seconds, dirs, links, interrupted } = report;
    const summary = {
      files,
      unchanged,
      failed: report.failures.length,
      bytes,
      wireBytes,
      seconds,
      dirs,
      links,
      interrupted: interrupted ?? null,
    };
    process.stdout.write(`${JSON.stringify({ ...summary, failures: report.failures })}\n`);
    return;
  }
  const { files, unchanged, bytes, wireBytes, seconds, failures } = report;
  let line = `${files} ${files === 1 ? 'file' : 'files'} ${verb}, ${formatBytes(bytes)} in ${formatDuration(seconds)} (${formatRate(wireBytes, seconds)})`;
  line += `, ${unchanged} unchanged, ${failures.length} failed`;
  if (wireBytes !== bytes) line += `; ${formatBytes(wireBytes)} of file data on the wire`;
  if (report.interrupted) line += ` (${report.interrupted})`;
  const lines = [line, ...failures.map((failure) => `failed: ${failure.name}: ${failure.reason}`)];
  process.stdout.write(`${lines.join('\n')}\n`);
}
