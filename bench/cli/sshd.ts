/**
 * A throwaway sshd on a free loopback port, so that scp, rsync and tar | ssh are measured over
 * the same loopback as tsmux without touching the machine's own sshd or ~/.ssh: its host key,
 * the client key, authorized_keys, config and pid file all live in one temporary directory.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { collect, lastLine, run, start, stop } from './children';
import { freePort } from './ports';
import { SSHD } from './tools';

export interface Sshd {
  port: number;
  /** `user@127.0.0.1`: the account the benchmark runs as, logging in with the temporary key. */
  target: string;
  /** ssh client options (`-p` spelled as ssh wants it); scp needs {@link scpOptions}. */
  sshOptions: string[];
  scpOptions: string[];
  /** OpenSSH's version line, for the JSON report. */
  version: string;
  stop: () => Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
/** Where Debian's sshd chroots its unprivileged child; it refuses to start without it. */
const PRIVSEP_DIR = '/run/sshd';

/** Starts sshd in `dir` (created) and checks that a login with the temporary key works. */
export async function startSshd(dir: string, sshKeygen: string, ssh: string): Promise<Sshd> {
  mkdirSync(dir, { recursive: true });
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  for (const [key, comment] of [
    [hostKey, 'tsmux-bench host'],
    [clientKey, 'tsmux-bench client'],
  ]) {
    const made = await run(sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', key], { timeoutMs: 10_000 });
    if (made.code !== 0) throw new Error(`ssh-keygen failed: ${lastLine(made.stderr)}`);
  }
  const authorizedKeys = path.join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`, 'utf8'), { mode: 0o600 });
  if (!existsSync(PRIVSEP_DIR)) {
    try {
      mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
    } catch {
      // Not root: sshd then says what it needs, and that message is the error shown.
    }
  }

  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      // The temporary directory is the benchmark's own; its modes are not the point.
      'StrictModes no',
      'UsePAM no',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      // scp since OpenSSH 9.0 speaks SFTP, so the server needs the subsystem.
      `Subsystem sftp ${existsSync('/usr/lib/openssh/sftp-server') ? '/usr/lib/openssh/sftp-server' : 'internal-sftp'}`,
      '',
    ].join('\n'),
  );
  const child = start(SSHD, ['-D', '-e', '-f', config]);
  const stderr = collect(child.stderr!);
  collect(child.stdout!);
  try {
    await waitForBanner(child, port, () => lastLine(stderr.text()));
  } catch (err) {
    await stop(child);
    throw err;
  }

  const common = ['-i', clientKey, '-F', '/dev/null', '-o', 'IdentitiesOnly=yes'];
  const quiet = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  const sshd: Sshd = {
    port,
    target: `${os.userInfo().username}@127.0.0.1`,
    sshOptions: ['-p', String(port), ...common, ...quiet],
    scpOptions: ['-P', String(port), ...common, ...quiet],
    version: '',
    stop: () => stop(child),
  };
  const login = await run(ssh, [...sshd.sshOptions, sshd.target, 'true'], { timeoutMs: START_TIMEOUT_MS });
  if (login.code !== 0) {
    await stop(child);
    throw new Error(`ssh login to the throwaway sshd failed (exit ${login.code}): ${lastLine(login.stderr) || lastLine(stderr.text())}`);
  }
  const version = await run(ssh, ['-V'], { timeoutMs: 5000 });
  sshd.version = lastLine(version.stderr);
  return sshd;
}

/** Resolves once the port answers with an SSH banner; rejects if sshd exits or is too slow. */
async function waitForBanner(child: ChildProcess, port: number, why: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`sshd exited (${child.exitCode ?? child.signalCode}): ${why()}`);
    if (await hasBanner(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`sshd did not answer on 127.0.0.1:${port} within ${START_TIMEOUT_MS / 1000} s: ${why()}`);
}

function hasBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith('SSH-')));
  });
}
