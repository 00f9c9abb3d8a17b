/**
 * The tsmux side: `tsmux serve` as a child per job, `tsmux send` as a child per run, both the
 * built CLI (dist/, as users run it), and a throwaway TLS certificate made with openssl.
 *
 * `send --json` prints one JSON line at the end (files, unchanged, failed, bytes, wireBytes,
 * seconds, interrupted). A CLI that predates it rejects the option (exit 2, "unknown option");
 * then the run is repeated without it and the wire bytes stay unknown.
 */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { collect, lastLine, run, start, stop, type Outcome } from './children';

export const CLI = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
const START_TIMEOUT_MS = 10_000;

/** The line `send --json` prints. */
export interface SendReport {
  files: number;
  unchanged: number;
  failed: number;
  bytes: number;
  /** File payload bytes actually sent in this run. */
  wireBytes: number;
  seconds: number;
  interrupted: string | null;
}

export interface SendResult {
  outcome: Outcome;
  /** Null when the CLI has no --json or printed no valid line. */
  report: SendReport | null;
}

export interface Serve {
  port: number;
  /** The process, to signal it (the forwarding benchmark kills it mid-run). */
  child: ChildProcess;
  /** The last lines of its stdout (what it refused and why), for failure notes. */
  log: () => string;
  stop: () => Promise<void>;
}

/** Whether `send --json` works; learned from the first send, so the fallback costs one extra run. */
let jsonSupported: boolean | undefined;

export function sendHasJson(): boolean | undefined {
  return jsonSupported;
}

/** More for `tsmux serve`: a fixed port (to start it again where it was) and more options. */
export interface ServeExtra {
  port?: number;
  args?: string[];
}

/** Starts `tsmux serve --port 0 --dir DIR` and waits for its `listening on HOST:PORT`. */
export async function startServe(dir: string, tls?: { cert: string; key: string }, extra: ServeExtra = {}): Promise<Serve> {
  const args = [
    CLI,
    'serve',
    '--port',
    String(extra.port ?? 0),
    '--dir',
    dir,
    ...(tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : []),
  ];
  args.push(...(extra.args ?? []));
  const child = start(process.execPath, args);
  const stdout = collect(child.stdout!);
  const stderr = collect(child.stderr!);
  try {
    const port = await waitForListening(
      child,
      () => stdout.text(),
      () => lastLine(stderr.text()),
    );
    return { port, child, log: () => stdout.text().split('\n').slice(-6).join('\n'), stop: () => stop(child) };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

export interface SendOptions {
  tlsCa?: string;
  timeoutMs: number;
  onSpawn?: (child: ChildProcess) => void;
}

/** `tsmux send 127.0.0.1:PORT SOURCES... --progress none [--json]`, timed around the whole command. */
export async function send(port: number, sources: string[], options: SendOptions): Promise<SendResult> {
  const args = [CLI, 'send', `127.0.0.1:${port}`, ...sources, '--progress', 'none', ...(options.tlsCa ? ['--tls-ca', options.tlsCa] : [])];
  const runOptions = { timeoutMs: options.timeoutMs, ...(options.onSpawn ? { onSpawn: options.onSpawn } : {}) };
  if (jsonSupported !== false) {
    const outcome = await run(process.execPath, [...args, '--json'], runOptions);
    if (!(outcome.code === 2 && /unknown option/i.test(outcome.stderr) && outcome.stderr.includes('--json'))) {
      jsonSupported = true;
      return { outcome, report: parseReport(outcome.stdout) };
    }
    jsonSupported = false;
  }
  return { outcome: await run(process.execPath, args, runOptions), report: null };
}

/** A self-signed certificate for 127.0.0.1 (EC P-256, one day), as cert.pem and key.pem in `dir`. */
export async function makeCertificate(openssl: string, dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  args.push('-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1');
  const made = await run(openssl, args, { timeoutMs: 20_000 });
  if (made.code !== 0) throw new Error(`openssl req failed (exit ${made.code}): ${lastLine(made.stderr)}`);
  return { cert, key };
}

/** The last stdout line that is a JSON object with the fields of {@link SendReport}. */
function parseReport(stdout: string): SendReport | null {
  const lines = stdout.split('\n').filter((line) => line.trim().startsWith('{'));
  try {
    const value = JSON.parse(lines.at(-1) ?? '');
    const numbers = ['files', 'unchanged', 'failed', 'bytes', 'wireBytes', 'seconds'] as const;
    return numbers.every((field) => typeof value[field] === 'number') ? (value as SendReport) : null;
  } catch {
    return null;
  }
}

async function waitForListening(child: ChildProcess, stdout: () => string, why: () => string): Promise<number> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const match = /listening on (?:\[[^\]]+\]|[^\s:]+):(\d+)/.exec(stdout());
    if (match) return Number(match[1]);
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`tsmux serve exited (${child.exitCode ?? child.signalCode}): ${why()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`tsmux serve printed no "listening on" within ${START_TIMEOUT_MS / 1000} s: ${why()}`);
}
