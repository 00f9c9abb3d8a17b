/**
 * A throwaway nginx on a free loopback port, the destination of every forwarding row: it
 * serves a 1 KiB file (for wrk) and a large one (for the downloads) from a temporary
 * directory, with its own config, pid file and logs there, never the machine's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collect, lastLine, start, stop } from './children';
import { makeBigFile } from './data';
import { accepts, freePort } from './ports';

export interface Nginx {
  port: number;
  /** Path of the small file in URLs (`/small.bin`). */
  small: string;
  /** Path of the large file in URLs, and its size. */
  large: string;
  largeBytes: number;
  stop: () => Promise<void>;
}

const START_TIMEOUT_MS = 10_000;

/** Starts nginx (one worker, as the tunnels under test have one process each) serving `largeBytes`. */
export async function startNginx(nginx: string, dir: string, largeBytes: number): Promise<Nginx> {
  const www = path.join(dir, 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(path.join(www, 'small.bin'), Buffer.alloc(1024, 'x'));
  makeBigFile(path.join(www, 'large.bin'), largeBytes);
  const port = await freePort();
  const temp = (name: string): string => path.join(dir, name);
  const config = path.join(dir, 'nginx.conf');
  writeFileSync(
    config,
    [
      // As root, the workers would drop to nobody, who cannot read a mkdtemp directory.
      ...(os.userInfo().uid === 0 ? ['user root;'] : []),
      'worker_processes 1;',
      'daemon off;',
      `pid ${temp('nginx.pid')};`,
      `error_log ${temp('error.log')} warn;`,
      // wrk -c1000 through a tunnel, plus the tunnel's own connections.
      'events { worker_connections 8192; }',
      'http {',
      '  access_log off;',
      '  sendfile on;',
      '  keepalive_requests 1000000;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${temp(kind)};`),
      `  server { listen 127.0.0.1:${port}; root ${www}; }`,
      '}',
      '',
    ].join('\n'),
  );
  const child = start(nginx, ['-c', config, '-p', dir, '-e', temp('error.log')]);
  const stderr = collect(child.stderr!);
  collect(child.stdout!);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop(child);
      throw new Error(`nginx did not start on 127.0.0.1:${port}: ${lastLine(stderr.text()) || 'no message'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { port, small: '/small.bin', large: '/large.bin', largeBytes, stop: () => stop(child) };
}
