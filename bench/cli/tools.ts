/**
 * Which of the other tools this machine has. The benchmark never installs anything: a missing
 * tool turns its rows into "skipped" with the packages to install, and the tsmux rows still run.
 */
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

export type ProgramName = 'sshd' | 'ssh' | 'ssh-keygen' | 'scp' | 'rsync' | 'tar' | 'openssl' | 'bash';

const ON_PATH: ProgramName[] = ['ssh', 'ssh-keygen', 'scp', 'rsync', 'tar', 'openssl', 'bash'];

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
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
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
