/**
 * Which of the other tools this machine has. A missing tool turns its rows into "skipped"
 * with the packages to install, and the tsmux rows still run; as root on Debian the benchmark
 * first installs them with apt-get (unless --no-install), as CI does for the tests.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';

export const SSHD = '/usr/sbin/sshd';
export const INSTALL_HINT = 'install the Debian packages openssh-server openssh-client rsync';

export interface Toolbox {
  /** Absolute paths of the programs found, by name. */
  paths: Partial<Record<ProgramName, string>>;
  /** Why the sshd-based rows cannot run, or null when they can. */
  sshMissing: string | null;
}

export type ProgramName = 'sshd' | 'ssh' | 'ssh-keygen' | 'scp' | 'rsync' | 'tar' | 'openssl' | 'bash' | 'nginx' | 'wrk' | 'curl';

const ON_PATH: ProgramName[] = ['ssh', 'ssh-keygen', 'scp', 'rsync', 'tar', 'openssl', 'bash', 'nginx', 'wrk', 'curl'];

/** The Debian package of each program the comparison rows need. */
const PACKAGES: Partial<Record<ProgramName, string>> = {
  sshd: 'openssh-server',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  scp: 'openssh-client',
  rsync: 'rsync',
  nginx: 'nginx-light',
  wrk: 'wrk',
  curl: 'curl',
};

/**
 * Installs the packages of the missing `programs` with apt-get, when running as root on a
 * system that has it; says what it did or why not. Never fails the benchmark.
 */
export function installMissing(programs: ProgramName[], log: (line: string) => void): void {
  const box = findTools();
  const packages = [...new Set(programs.filter((name) => !box.paths[name]).map((name) => PACKAGES[name]!))].filter(Boolean);
  if (packages.length === 0) return;
  const aptGet = which('apt-get');
  if (!aptGet || process.getuid?.() !== 0) {
    log(`note: ${packages.join(', ')} not installed (needs root and apt-get); their rows are skipped`);
    return;
  }
  log(`installing ${packages.join(' ')} with apt-get ...`);
  const install = (): number | null =>
    spawnSync(aptGet, ['install', '-y', '--no-install-recommends', ...packages], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 600_000,
    }).status;
  // A fresh machine's package lists may be missing or stale: update once and try again.
  if (install() !== 0 && (spawnSync(aptGet, ['update'], { stdio: 'ignore', timeout: 600_000 }).status !== 0 || install() !== 0))
    log(`note: apt-get install ${packages.join(' ')} failed; their rows are skipped`);
}

/** Looks for every program once, at the start. */
export function findTools(): Toolbox {
  const paths: Toolbox['paths'] = {};
  if (isExecutable(SSHD)) paths.sshd = SSHD;
  for (const name of ON_PATH) {
    const found = which(name);
    if (found) paths[name] = found;
  }
  const needed: ProgramName[] = ['sshd', 'ssh', 'ssh-keygen'];
  const absent = needed.filter((name) => !paths[name]);
  const sshMissing = absent.length > 0 ? `${absent.map((name) => (name === 'sshd' ? SSHD : name)).join(', ')} not found` : null;
  return { paths, sshMissing };
}

/** Why a row that needs `programs` (over the throwaway sshd) is skipped, or null if it can run. */
export function missingFor(box: Toolbox, programs: ProgramName[]): string | null {
  if (box.sshMissing) return `${box.sshMissing}; ${INSTALL_HINT}`;
  const absent = programs.filter((name) => !box.paths[name]);
  return absent.length > 0 ? `${absent.join(', ')} not found; ${INSTALL_HINT}` : null;
}

function which(name: string): string | undefined {
  // nginx and sshd live in sbin, which a non-root PATH may not have.
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin']) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
