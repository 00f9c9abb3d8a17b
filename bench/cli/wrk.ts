/** wrk as a child, and what its report says: requests per second, p99 latency, errors. */
import { lastLine, run } from './children';

export interface WrkResult {
  ok: boolean;
  requestsPerSecond: number;
  /** 99th percentile latency, milliseconds. */
  p99Ms: number;
  requests: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  errors: number;
  /** Connections wrk could not make (a closed port is one of them). */
  connectErrors: number;
  /** How the errors split, as wrk reports them. */
  errorDetail: string;
  error: string | null;
}

/** `wrk -t THREADS -c CONNECTIONS -d SECONDS --latency URL`. */
export async function runWrk(wrk: string, url: string, threads: number, connections: number, seconds: number): Promise<WrkResult> {
  const outcome = await run(wrk, ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', url], {
    timeoutMs: (seconds + 30) * 1000,
  });
  const parsed = parseWrk(outcome.stdout);
  if (outcome.code !== 0 || parsed === null) {
    const why = outcome.timedOut
      ? 'timed out'
      : `exit ${outcome.code ?? outcome.signal}: ${lastLine(outcome.stderr) || lastLine(outcome.stdout)}`;
    return { ok: false, requestsPerSecond: 0, p99Ms: 0, requests: 0, errors: 0, connectErrors: 0, errorDetail: '', error: `wrk ${why}` };
  }
  return { ...parsed, ok: true, error: null };
}

/** The figures of wrk's text report, or null when it has none. */
export function parseWrk(text: string): Omit<WrkResult, 'ok' | 'error'> | null {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(text);
  const total = /(\d+) requests in /.exec(text);
  if (!rate || !p99 || !total) return null;
  const scale = { us: 0.001, ms: 1, s: 1000 }[p99[2] as 'us' | 'ms' | 's'];
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const status = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const counts = socket ? socket.slice(1).map(Number) : [0, 0, 0, 0];
  const bad = status ? Number(status[1]) : 0;
  const detail = [
    ...['connect', 'read', 'write', 'timeout'].map((kind, i) => (counts[i] > 0 ? `${kind} ${counts[i]}` : '')),
    bad > 0 ? `non-2xx ${bad}` : '',
  ].filter((part) => part !== '');
  return {
    requestsPerSecond: Number(rate[1]),
    p99Ms: Number(p99[1]) * scale,
    requests: Number(total[1]),
    errors: counts.reduce((sum, n) => sum + n, 0) + bad,
    connectErrors: counts[0],
    errorDetail: detail.join(', '),
  };
}
