/**
 * Running the real `tsmux` binary (the build in dist/, made by `pretest`) as child processes:
 * every child is killed when its test ends, every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';

export const CLI = path.resolve(__dirname, '../../dist/cjs/cli/main.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CliProcess {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves with the first match of `pattern` on stdout (or stderr), within `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Resolves once the process has exited, within `ms`. */
  exited(ms?: number): Promise<Exit>;
}

/** Starts `tsmux ...args`; the child is killed (SIGKILL) when the test ends if still running. */
export function spawnCli(t: TestContext, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? os.tmpdir(),
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const waiter of waiters) waiter();
  };
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
    notify();
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    notify();
  });
  const exit = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const bounded = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${ms} ms waiting for ${what}\nstdout: ${stdout}\nstderr: ${stderr}`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  };
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitFor(pattern, ms = 10_000) {
      let waiter: (() => void) | undefined;
      const found = new Promise<RegExpMatchArray>((resolve, reject) => {
        waiter = () => {
          const match = pattern.exec(stdout) ?? pattern.exec(stderr);
          if (match) resolve(match);
          else if (child.exitCode !== null || child.signalCode !== null)
            reject(new Error(`tsmux exited before printing ${String(pattern)}\nstdout: ${stdout}\nstderr: ${stderr}`));
        };
        waiters.add(waiter);
        child.once('exit', () => setImmediate(waiter!));
        waiter();
      });
      return bounded(found, ms, String(pattern)).finally(() => waiters.delete(waiter!));
    },
    exited(ms = 20_000) {
      return bounded(exit, ms, `tsmux ${args[0] ?? ''} to exit`);
    },
  };
}

/** Runs `tsmux ...args` to completion. */
export async function runCli(
  t: TestContext,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ms?: number } = {},
): Promise<Exit & { stdout: string; stderr: string }> {
  const proc = spawnCli(t, args, options);
  const exit = await proc.exited(options.ms ?? 20_000);
  // Let the last chunks of output arrive.
  await new Promise((resolve) => setImmediate(resolve));
  return { ...exit, stdout: proc.stdout, stderr: proc.stderr };
}

/** `tsmux serve --port 0 ...` started and listening: its process and port. */
export async function startServeCli(
  t: TestContext,
  args: string[],
  options: { cwd?: string } = {},
): Promise<{ proc: CliProcess; port: number }> {
  const proc = spawnCli(t, ['serve', '--port', '0', ...args], options);
  const match = await proc.waitFor(/listening on 127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(match[1]) };
}

export async function tempDir(t: TestContext, label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tsmux-${label}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function hashFile(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Every file under `dir`, as sorted relative POSIX paths. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (sub: string): void => {
    for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else out.push(rel);
    }
  };
  walk('');
  return out.sort();
}
