/**
 * Every process the CLI benchmark starts goes through here, so that none outlives it: each
 * child has a deadline, sits in its own process group (a `tar | ssh` pipeline or sshd's
 * per-connection children die with it) and is killed when the benchmark exits, fails or is
 * interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** What a finished command did. */
export interface Outcome {
  /** Exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Wall time from spawn to exit, seconds. */
  seconds: number;
  stdout: string;
  /** The last few KiB of stderr: enough for an error message, bounded for chatty tools. */
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  /** Killed (the whole process group) after this many milliseconds. */
  timeoutMs: number;
  cwd?: string;
  /** Called once the child exists, with it (to signal it mid-run). */
  onSpawn?: (child: ChildProcess) => void;
}

const live = new Set<ChildProcess>();
/** Output kept per stream: a tool that logs every file must not grow the harness without bound. */
const KEEP_CHARS = 16 * 1024;

/** Runs `command` with `args` (no shell) to completion or its deadline. */
export function run(command: string, args: string[], options: RunOptions): Promise<Outcome> {
  const started = process.hrtime.bigint();
  const child = start(command, args, options.cwd);
  options.onSpawn?.(child);
  const stdout = collect(child.stdout!);
  const stderr = collect(child.stderr!);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child, 'SIGKILL');
  }, options.timeoutMs);
  return new Promise((resolve) => {
    let ended: bigint | undefined;
    const finish = (code: number | null, signal: NodeJS.Signals | null, extra = ''): void => {
      clearTimeout(timer);
      const seconds = Number((ended ?? process.hrtime.bigint()) - started) / 1e9;
      resolve({ code, signal, seconds, stdout: stdout.text(), stderr: stderr.text() + extra, timedOut });
    };
    // A command that cannot start at all ('error' without 'exit') counts as failed, exit 127 as a shell says.
    child.once('error', (err) => finish(127, null, err.message));
    child.once('exit', (code, signal) => {
      ended = process.hrtime.bigint();
      // 'exit' can come before the pipes are drained; 'close' waits for them.
      child.once('close', () => finish(code, signal));
    });
  });
}

/** A long-lived child (a server): the caller reads its output and stops it with {@link stop}. */
export function start(command: string, args: string[], cwd?: string): ChildProcess {
  // detached: its own process group, so the group can be killed at once, and a Ctrl-C in the
  // terminal reaches only the benchmark, which then stops everything in order.
  const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
export async function stop(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Stops every child still running (the normal end of the benchmark). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => stop(child)));
}

/** Synchronous last resort, for process 'exit': SIGKILL to every group still alive. */
export function killAllNow(): void {
  for (const child of live) killGroup(child, 'SIGKILL');
}

/** Signals the child's process group, or the child alone if the group is gone. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** The text of a stream, of which only the last KEEP_CHARS are kept; read with text(). */
export function collect(stream: NodeJS.ReadableStream): { text: () => string } {
  let kept = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    kept = (kept + chunk).slice(-KEEP_CHARS);
  });
  return { text: () => kept };
}

/** `text` quoted for a POSIX shell (single quotes; a quote inside as '\''). */
export function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The last non-empty line of a command's stderr, for a table note. */
export function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  return lines.at(-1) ?? '';
}
