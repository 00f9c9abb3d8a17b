/**
 * The tunnels the forwarding rows compare, each in front of the same nginx: `tsmux forward`
 * with -L, -R and -D at once over one link to a `tsmux serve`, and `ssh -N -L` through the
 * throwaway sshd with AES-GCM (its fastest cipher where the CPU has AES instructions).
 */
import type { ChildProcess } from 'node:child_process';
import { collect, lastLine, start, stop } from './children';
import { accepts, freePort } from './ports';
import type { Sshd } from './sshd';
import { CLI, startServe, type Serve } from './tsmux';

export const SSH_CIPHER = 'aes128-gcm@openssh.com';
const START_TIMEOUT_MS = 15_000;

/** A running tsmux forward and the serve it goes through. */
export interface TsmuxTunnel {
  serve: Serve;
  forward: ChildProcess;
  /** Local ports: -L to nginx, the SOCKS5 server of -D, and serve's port of -R to nginx. */
  local: number;
  socks: number | null;
  reverse: number | null;
  /** Everything forward printed so far (its state changes). */
  output: () => string;
  stop: () => Promise<void>;
}

export interface TunnelOptions {
  /** Also -D and -R (the download rows); the wrk and restart rows use -L alone. */
  allShapes: boolean;
  /** Where serve listens: fixed for the restart row, which starts it again on the same port. */
  servePort?: number;
}

/** The arguments of the `tsmux serve` that a tunnel to `nginxPort` goes through. */
export function serveArgs(nginxPort: number): string[] {
  return ['--allow-forward', `127.0.0.1:${nginxPort}`, '--allow-reverse', '127.0.0.1:*'];
}

/** `tsmux serve` plus `tsmux forward -L 0:127.0.0.1:NGINX [-D 0 -R 0:127.0.0.1:NGINX]`. */
export async function startTsmuxTunnel(workDir: string, nginxPort: number, options: TunnelOptions): Promise<TsmuxTunnel> {
  const serve = await startServe(workDir, undefined, { port: options.servePort ?? 0, args: serveArgs(nginxPort) });
  const target = `127.0.0.1:${nginxPort}`;
  const args = [CLI, 'forward', '-L', `0:${target}`, ...(options.allShapes ? ['-D', '0', '-R', `0:${target}`] : [])];
  const forward = start(process.execPath, [...args, '--via', `127.0.0.1:${serve.port}`]);
  const stdout = collect(forward.stdout!);
  const stderr = collect(forward.stderr!);
  const stopBoth = async (): Promise<void> => {
    await stop(forward);
    await serve.stop();
  };
  try {
    const text = await waitFor(forward, stdout.text, options.allShapes ? /the server listens on/ : /forwarding to/, () =>
      lastLine(stderr.text()),
    );
    const port = (pattern: RegExp): number | null => {
      const match = pattern.exec(text);
      return match ? Number(match[1]) : null;
    };
    const local = port(/listening on 127\.0\.0\.1:(\d+)\nforwarding to/);
    if (local === null) throw new Error(`tsmux forward printed no -L port: ${text}`);
    return {
      serve,
      forward,
      local,
      socks: port(/listening on 127\.0\.0\.1:(\d+)\nSOCKS5 via/),
      reverse: port(/the server listens on 127\.0\.0\.1:(\d+) for/),
      output: stdout.text,
      stop: stopBoth,
    };
  } catch (err) {
    await stopBoth();
    throw err;
  }
}

/** `ssh -N -L PORT:127.0.0.1:NGINX` through the throwaway sshd; resolves once PORT accepts. */
export async function startSshTunnel(ssh: string, sshd: Sshd, nginxPort: number): Promise<{ local: number; stop: () => Promise<void> }> {
  const local = await freePort();
  const child = start(ssh, [
    ...sshd.sshOptions,
    '-N',
    '-c',
    SSH_CIPHER,
    '-o',
    'ExitOnForwardFailure=yes',
    '-L',
    `127.0.0.1:${local}:127.0.0.1:${nginxPort}`,
    sshd.target,
  ]);
  const stderr = collect(child.stderr!);
  collect(child.stdout!);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await accepts(local))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop(child);
      throw new Error(`ssh -L did not listen on 127.0.0.1:${local}: ${lastLine(stderr.text()) || 'no message'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { local, stop: () => stop(child) };
}

/** Resolves with the child's output once `pattern` is in it. */
async function waitFor(child: ChildProcess, text: () => string, pattern: RegExp, why: () => string): Promise<string> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!pattern.test(text())) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`tsmux forward exited (${child.exitCode ?? child.signalCode}): ${why() || text()}`);
    if (Date.now() > deadline) throw new Error(`tsmux forward did not start within ${START_TIMEOUT_MS / 1000} s: ${why() || text()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return text();
}
