/**
 * The server under attack, run as a child process (`fork`) by run.ts so that an attack that
 * kills it (heap exhaustion, a crash) kills nothing else. `node target.ts echo|serve`.
 *
 *   echo  - the README's echo server (`new MuxServer(port)`, every stream piped back to
 *           itself), on loopback, plus one mode the README does not have: a stream whose meta
 *           is `{"mode":"hold"}` is kept but never read, as an application that is slow or
 *           stuck would.
 *   serve - `tsmux serve` in its own process, allowed to forward to two local TCP servers
 *           this process runs: one that echoes and one that accepts but never reads (the
 *           `hold` of this target).
 *
 * Reports over IPC: `ready` (port, the server's pid, the metas that mean echo and hold), then
 * every SAMPLE_MS a `sample` of the server's memory and CPU; for `serve` also `server-exit`
 * if the CLI dies. Answers `gc` with a sample taken after a full collection (echo only) and
 * exits on `stop` or when run.ts goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { MuxServer, type MuxConnection, type MuxStream } from '../../dist/cjs/index'; // the build users run (`npm run attacks` builds first)
import { readProc } from './proc';

const HOST = '127.0.0.1';
const SAMPLE_MS = 250;

/** Stream metas a target gives their meaning to. */
export interface TargetMetas {
  /** A stream whose bytes come back. */
  echo: { [key: string]: string };
  /** A stream the server keeps open but never reads. */
  hold: { [key: string]: string };
}

/** What the target tells run.ts. */
export type TargetMessage =
  | { type: 'ready'; port: number; serverPid: number; metas: TargetMetas }
  | { type: 'sample'; sample: TargetSample }
  | { type: 'server-exit'; code: number | null; signal: string | null; stderr: string };

/** One self-reported sample. Heap figures exist only for the echo target (our process). */
export interface TargetSample {
  /** `Date.now()` when taken. */
  at: number;
  rss: number | null;
  heapUsed: number | null;
  external: number | null;
  arrayBuffers: number | null;
  cpuMs: number | null;
  /** Taken right after a full garbage collection. */
  afterGc?: boolean;
  /** Connections past their handshake (echo only). */
  connections?: number;
  /** Streams held unread (echo only). */
  held?: number;
}

function send(message: TargetMessage): void {
  if (process.connected) process.send!(message);
}

// ---- echo ------------------------------------------------------------------------------------

function startEcho(): void {
  const held = new Set<MuxStream>();
  // The README's echo server; `host` only keeps it on loopback.
  const server = new MuxServer(0, { host: HOST });
  server.on('connection', (con: MuxConnection) => {
    con.on('error', () => {}); // a peer that breaks its connection must not kill the target
    con.on('stream', (s: MuxStream) => {
      const meta = s.meta as { mode?: unknown } | null;
      if (typeof meta === 'object' && meta !== null && meta.mode === 'hold') {
        // Kept, never read: what the library holds for it is what a stuck application costs.
        held.add(s);
        s.once('close', () => held.delete(s));
        return;
      }
      s.pipe(s);
    });
  });
  server.once('listening', () => {
    const port = (server.address() as net.AddressInfo).port;
    send({ type: 'ready', port, serverPid: process.pid, metas: { echo: { mode: 'echo' }, hold: { mode: 'hold' } } });
  });

  const sample = (afterGc: boolean): TargetSample => {
    const memory = process.memoryUsage();
    const cpu = process.resourceUsage();
    return {
      at: Date.now(),
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
      cpuMs: Math.round((cpu.userCPUTime + cpu.systemCPUTime) / 1000),
      afterGc,
      connections: server.connectionCount,
      held: held.size,
    };
  };
  setInterval(() => send({ type: 'sample', sample: sample(false) }), SAMPLE_MS).unref();
  process.on('message', (message: { type: string }) => {
    if (message.type === 'gc') {
      (globalThis as { gc?: () => void }).gc?.();
      send({ type: 'sample', sample: sample(true) });
    } else if (message.type === 'stop') {
      server.destroy();
      process.exit(0);
    }
  });
}

// ---- serve -----------------------------------------------------------------------------------

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, HOST, () => resolve((server.address() as net.AddressInfo).port)));
}

async function startServe(): Promise<void> {
  // Forward destinations. The sink accepts (the kernel would anyway) but never reads, so a
  // forwarded stream backs up into the server under test, as a stuck backend would.
  const sink = net.createServer({ pauseOnConnect: true }, (socket) => socket.on('error', () => {}));
  const echo = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const [sinkPort, echoPort] = await Promise.all([listen(sink), listen(echo)]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsmux-attack-'));
  const cli = path.join(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');
  const child: ChildProcess = spawn(
    process.execPath,
    // The same heap ceiling as the echo target, so both die (or not) by the same rule.
    [
      '--max-old-space-size=4096',
      cli,
      'serve',
      '--port',
      '0',
      '--host',
      HOST,
      '--dir',
      dir,
      '--allow-forward',
      `${HOST}:${sinkPort},${HOST}:${echoPort}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let announced = false;
  let pending = '';
  // serve logs a line per connection and per refused client: read them all, or a full pipe
  // would stall the server we are measuring.
  child.stdout!.on('data', (chunk: Buffer) => {
    if (announced) return;
    pending += chunk.toString();
    const match = /listening on [^\s]+:(\d+)/.exec(pending);
    if (!match) return;
    announced = true;
    pending = '';
    send({
      type: 'ready',
      port: Number(match[1]),
      serverPid: child.pid!,
      metas: { echo: { type: 'forward', to: `${HOST}:${echoPort}` }, hold: { type: 'forward', to: `${HOST}:${sinkPort}` } },
    });
  });
  const cleanUp = (): void => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  child.once('exit', (code, signal) => {
    send({ type: 'server-exit', code, signal, stderr });
    // Lets the message go out before this process follows the server.
    setTimeout(() => process.exit(1), 200);
  });

  const sample = (): TargetSample => {
    const proc = readProc(child.pid!);
    return { at: Date.now(), rss: proc.rss, heapUsed: null, external: null, arrayBuffers: null, cpuMs: proc.cpuMs };
  };
  setInterval(() => send({ type: 'sample', sample: sample() }), SAMPLE_MS).unref();
  process.on('message', (message: { type: string }) => {
    if (message.type === 'gc') send({ type: 'sample', sample: { ...sample(), afterGc: false } });
    else if (message.type === 'stop') process.exit(0);
  });
  // However this process ends (run.ts gone, stop, a signal), the CLI goes with it.
  process.on('exit', cleanUp);
  process.on('SIGTERM', () => process.exit(0));
}

// Only as a child of run.ts: the module is also imported for its types.
if (require.main === module) {
  process.on('disconnect', () => process.exit(0));
  if (process.argv[2] === 'serve') void startServe();
  else startEcho();
}
