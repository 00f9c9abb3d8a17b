/**
 * One "copier" per tool and job: something that copies a file or a directory (under its own
 * name, as `scp -r` does) into the job's destination directory for that tool. tsmux copiers own
 * a `tsmux serve` for the job; the others go through the throwaway sshd.
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { run, shellQuote, type Outcome } from './children';
import type { Sshd } from './sshd';
import { missingFor, type ProgramName, type Toolbox } from './tools';
import { send, startServe, type SendReport } from './tsmux';
import type { ChildProcess } from 'node:child_process';

export type ToolId = 'tsmux' | 'tsmux-tls' | 'scp' | 'scp-gcm' | 'rsync' | 'tar-ssh';

/** Column titles, in table order. */
export const TOOL_LABELS: Record<ToolId, string> = {
  tsmux: 'tsmux',
  'tsmux-tls': 'tsmux TLS',
  scp: 'scp',
  'scp-gcm': 'scp aes128-gcm',
  rsync: 'rsync -a',
  'tar-ssh': 'tar \\| ssh',
};

export interface Copied {
  outcome: Outcome;
  /** tsmux with --json only. */
  report: SendReport | null;
}

export interface CopyOptions {
  timeoutMs: number;
  onSpawn?: (child: ChildProcess) => void;
}

export interface Copier {
  copy: (source: string, options: CopyOptions) => Promise<Copied>;
  /** Recent server output (tsmux), to explain a failure. */
  log: () => string;
  close: () => Promise<void>;
}

/** What the copiers need: the tools found, the sshd (or why there is none) and the TLS files. */
export interface Setup {
  box: Toolbox;
  sshd: Sshd | null;
  sshdError: string | null;
  tls: { cert: string; key: string } | null;
  tlsError: string | null;
}

const NEEDS: Record<ToolId, ProgramName[]> = {
  tsmux: [],
  'tsmux-tls': [],
  scp: ['scp'],
  'scp-gcm': ['scp'],
  rsync: ['rsync'],
  'tar-ssh': ['tar', 'bash'],
};

/** Why `tool` cannot run here, or null. */
export function skipReason(tool: ToolId, setup: Setup): string | null {
  if (tool === 'tsmux') return null;
  if (tool === 'tsmux-tls') return setup.tls ? null : `no TLS certificate: ${setup.tlsError ?? 'openssl not found'}`;
  const missing = missingFor(setup.box, NEEDS[tool]);
  if (missing) return missing;
  return setup.sshd ? null : `throwaway sshd did not start: ${setup.sshdError ?? 'unknown error'}`;
}

/** A copier for `tool` that stores into `dest` (for tsmux: starts the job's server there). */
export async function openCopier(tool: ToolId, dest: string, setup: Setup): Promise<Copier> {
  if (tool === 'tsmux' || tool === 'tsmux-tls') {
    const tls = tool === 'tsmux-tls' ? setup.tls! : undefined;
    const serve = await startServe(dest, tls);
    return {
      copy: (source, options) => send(serve.port, [source], { ...options, ...(tls ? { tlsCa: tls.cert } : {}) }),
      log: serve.log,
      close: serve.stop,
    };
  }
  const { box } = setup;
  const sshd = setup.sshd!;
  const remote = `${sshd.target}:${dest}/`;
  const command = (source: string): [string, string[]] => {
    switch (tool) {
      case 'scp':
      case 'scp-gcm': {
        const cipher = tool === 'scp-gcm' ? ['-c', 'aes128-gcm@openssh.com'] : [];
        const recursive = statSync(source).isDirectory() ? ['-r'] : [];
        return [box.paths.scp!, ['-q', ...recursive, ...cipher, ...sshd.scpOptions, source, remote]];
      }
      case 'rsync': {
        const ssh = [box.paths.ssh!, ...sshd.sshOptions].map(shellQuote).join(' ');
        return [box.paths.rsync!, ['-a', '-e', ssh, source, remote]];
      }
      case 'tar-ssh': {
        const ssh = [box.paths.ssh!, ...sshd.sshOptions, sshd.target].map(shellQuote).join(' ');
        const untar = shellQuote(`tar xf - -C ${shellQuote(dest)}`);
        const pipeline = `tar cf - -C ${shellQuote(path.dirname(source))} ${shellQuote(path.basename(source))} | ${ssh} ${untar}`;
        // pipefail: a tar that fails on the sending side fails the row, not just a failing ssh.
        return [box.paths.bash!, ['-o', 'pipefail', '-c', pipeline]];
      }
    }
  };
  return {
    copy: async (source, options) => {
      const [program, args] = command(source);
      return { outcome: await run(program, args, options), report: null };
    },
    log: () => '',
    close: async () => {},
  };
}
