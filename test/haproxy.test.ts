/**
 * A real HAProxy (examples/haproxy.cfg, with this test's ports) in front of two MuxServer
 * backends in their own processes (test/helpers/lb-backend.ts), `send-proxy-v2` on:
 * - every client sees, on its backend, its own loopback address and port as
 *   `con.remoteAddress`/`remotePort`;
 * - 100 clients with `reconnect` spread over both backends;
 * - one backend gets SIGTERM while every client has streams in flight: every stream that had
 *   started completes, its bytes hash-checked both ways; the backend exits by itself; its
 *   clients reconnect through HAProxy to the other one; no job is lost or done twice.
 * Skipped when haproxy is not installed (.ci/run installs the Debian package).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { MuxClient, MuxError } from '../src/index';
import { closedPort, HOST } from './helpers/mux';
import { delay, nextEvent, waitFor, withTimeout } from './helpers/async';
import { collect } from './helpers/streams';

const ROOT = path.join(__dirname, '..');
const HAPROXY = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin']
  .map((dir) => path.join(dir, 'haproxy'))
  .find((file) => existsSync(file));

const CLIENTS = 100;
/** Streams each client keeps going at once, one after another. */
const LANES = 2;
/** Jobs each lane runs. */
const JOBS_PER_LANE = 4;
/** Each job sends this many chunks, a little apart, so that streams are in flight for a while. */
const CHUNKS = 8;
const CHUNK_BYTES = 8 * 1024;
const CHUNK_GAP_MS = 25;

interface Backend {
  name: string;
  child: ChildProcess;
  port: number;
  /** Job id → sha256 of what the backend received, for every job it finished. */
  done: Map<string, string>;
  /** Job ids the backend finished more than once. */
  twice: string[];
  exited: Promise<number | null>;
  stderr: () => string;
}

async function startBackend(t: TestContext, name: string): Promise<Backend> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'helpers', 'lb-backend.ts'), name], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const done = new Map<string, string>();
  const twice: string[] = [];
  let port = 0;
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const event = JSON.parse(buffered.slice(0, newline)) as { listening?: number; done?: string; sha256?: string };
      buffered = buffered.slice(newline + 1);
      if (event.listening !== undefined) port = event.listening;
      if (event.done !== undefined) {
        if (done.has(event.done)) twice.push(event.done);
        done.set(event.done, event.sha256!);
      }
    }
  });
  await waitFor(() => port !== 0 || child.exitCode !== null, 20_000, `backend ${name} to listen (stderr: ${stderr})`);
  assert.notEqual(port, 0, `backend ${name} failed: ${stderr}`);
  return { name, child, port, done, twice, exited, stderr: () => stderr };
}

/** examples/haproxy.cfg, listening on `port` and sending to the backends' ports on loopback. */
function haproxyConfig(port: number, backends: Backend[]): string {
  const example = readFileSync(path.join(ROOT, 'examples', 'haproxy.cfg'), 'utf8');
  let server = 0;
  const config = example
    .replace(/^(\s*)bind :12345$/m, `$1bind ${HOST}:${port}`)
    .replace(/^(\s*server \w+) 10\.0\.0\.\d+:12345$/gm, (_line, head: string) => `${head} ${HOST}:${backends[server++].port}`);
  assert.equal(server, backends.length, 'the example has one server line per backend');
  return config;
}

async function startHaproxy(t: TestContext, backends: Backend[]): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsmux-haproxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await closedPort();
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, haproxyConfig(port, backends));
  // -db: in the foreground, not a daemon, so that killing this child stops it.
  const child = spawn(HAPROXY!, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.after(() => child.kill('SIGKILL'));
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`haproxy did not start: ${output}`);
    await delay(50);
  }
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface WhoAmI {
  backend: string;
  remoteAddress: string;
  remotePort: number;
}

async function whoami(client: MuxClient): Promise<WhoAmI> {
  const stream = await client.StreamPool.createStream({ type: 'whoami' });
  stream.end();
  return JSON.parse((await collect(stream, 5000)).toString()) as WhoAmI;
}

/** What the clients did: jobs done (id → sha256), streams that failed after they had started. */
interface Outcome {
  done: Map<string, string>;
  failedAfterStart: string[];
  /** Opens refused because the link was going away (never started, so retried). */
  retried: number;
  /** Job streams in flight, per client. */
  inFlight: number[];
  /** Ids of the job streams in flight. */
  running: Set<string>;
}

/**
 * One job: open a stream (retried while the link is going away: such a stream never
 * started), send random chunks a little apart, and check the echo's SHA-256.
 */
async function runJob(client: MuxClient, index: number, id: string, outcome: Outcome): Promise<void> {
  for (;;) {
    let stream;
    try {
      stream = await client.StreamPool.createStream({ type: 'job', id });
    } catch (err) {
      if (!(err instanceof MuxError) || err.code !== 'ERR_GOING_AWAY') throw err;
      outcome.retried++;
      // The old link drains; opens made once it is gone wait for the next one by themselves.
      await waitFor(() => !client.closing, 15_000, 'the link to be replaced');
      continue;
    }
    outcome.inFlight[index]++;
    outcome.running.add(id);
    try {
      const sent = createHash('sha256');
      const echoed = collect(stream, 15_000);
      for (let i = 0; i < CHUNKS; i++) {
        const chunk = randomBytes(CHUNK_BYTES);
        sent.update(chunk);
        stream.write(chunk);
        await delay(CHUNK_GAP_MS);
      }
      stream.end();
      const digest = sent.digest('hex');
      const back = await echoed;
      assert.equal(createHash('sha256').update(back).digest('hex'), digest, `job ${id}: the echo matches what was sent`);
      assert.equal(outcome.done.has(id), false, `job ${id} done once`);
      outcome.done.set(id, digest);
    } catch (err) {
      outcome.failedAfterStart.push(`${id}: ${(err as Error).message}`);
    } finally {
      outcome.inFlight[index]--;
      outcome.running.delete(id);
    }
    return;
  }
}

test(
  'HAProxy with send-proxy-v2 in front of two backends: clients keep their addresses, and a SIGTERMed backend loses no stream',
  { timeout: 120_000, skip: HAPROXY === undefined && 'haproxy is not installed (apt-get install haproxy; .ci/run does)' },
  async (t) => {
    const backends = [await startBackend(t, 'a'), await startBackend(t, 'b')];
    const port = await startHaproxy(t, backends);

    const clients: MuxClient[] = [];
    t.after(() => clients.forEach((client) => client.destroy()));
    const reconnects = new Array<number>(CLIENTS).fill(0);
    for (let i = 0; i < CLIENTS; i++) {
      const client = new MuxClient(port, HOST, { reconnect: { initialDelay: 50, maxDelay: 500 } });
      client.on('error', () => {});
      client.on('reconnect', () => reconnects[i]++);
      clients.push(client);
    }
    await withTimeout(
      Promise.all(clients.map((client) => (client.ready ? Promise.resolve() : nextEvent(client, 'connect', 20_000)))),
      25_000,
      'every client to connect',
    );

    // Each backend sees the client itself: loopback, and the port the client's socket has.
    const first = await Promise.all(clients.map((client) => whoami(client)));
    for (const [i, seen] of first.entries()) {
      const socket = clients[i].transportSocket!;
      assert.deepEqual([seen.remoteAddress, seen.remotePort], [socket.localAddress, socket.localPort], `client ${i}`);
    }
    const onA = first.flatMap((seen, i) => (seen.backend === 'a' ? [i] : []));
    assert.ok(onA.length >= 20 && onA.length <= 80, `clients spread over both backends (${onA.length} of ${CLIENTS} on a)`);

    const outcome: Outcome = {
      done: new Map(),
      failedAfterStart: [],
      retried: 0,
      inFlight: new Array<number>(CLIENTS).fill(0),
      running: new Set(),
    };
    const work = clients.map(async (client, i) => {
      await Promise.all(
        Array.from({ length: LANES }, async (_, lane) => {
          for (let job = 0; job < JOBS_PER_LANE; job++) await runJob(client, i, `${i}-${lane}-${job}`, outcome);
        }),
      );
    });
    const allWork = Promise.all(work);

    // SIGTERM while every client has a stream in flight.
    await waitFor(() => outcome.inFlight.every((n) => n > 0), 20_000, 'every client to have a stream in flight');
    const clientsOfA = new Set(onA.map(String));
    const clientOf = (id: string): string => id.split('-')[0];
    const inFlightOnA = [...outcome.running].filter((id) => clientsOfA.has(clientOf(id)));
    backends[0].child.kill('SIGTERM');

    assert.equal(await withTimeout(backends[0].exited, 30_000, 'backend a to drain and exit'), 0, backends[0].stderr());
    await withTimeout(allWork, 60_000, 'every job');

    // Every stream that had started completed; every job was done exactly once, by one backend.
    assert.deepEqual(outcome.failedAfterStart, []);
    const total = CLIENTS * LANES * JOBS_PER_LANE;
    assert.equal(outcome.done.size, total);
    // A backend reports a job once its echo is written, which races the client's last read.
    await waitFor(() => backends[0].done.size + backends[1].done.size >= total, 10_000, 'the backends to report every job');
    const byBackends = new Map([...backends[0].done, ...backends[1].done]);
    assert.deepEqual(
      [...backends[0].done.keys()].filter((id) => backends[1].done.has(id)),
      [],
      'no job done by both backends',
    );
    assert.deepEqual([...backends[0].twice, ...backends[1].twice], [], 'no job done twice by one backend');
    assert.equal(byBackends.size, outcome.done.size);
    for (const [id, digest] of outcome.done) assert.equal(byBackends.get(id), digest, `job ${id}: the backend received what was sent`);
    // Backend a finished the streams it had when it was told to stop, and took no others.
    assert.ok(inFlightOnA.length >= onA.length);
    assert.deepEqual(
      inFlightOnA.filter((id) => !backends[0].done.has(id)),
      [],
      'every stream in flight on a when it got SIGTERM was finished by a',
    );
    assert.deepEqual(
      [...backends[0].done.keys()].filter((id) => !clientsOfA.has(clientOf(id))),
      [],
      'backend a did only jobs of its own clients',
    );

    // The clients of a reconnected, through HAProxy, to b, and still show their own address there.
    assert.ok(
      onA.every((i) => reconnects[i] === 1),
      `every client of a reconnected once (${onA.map((i) => reconnects[i]).join(',')})`,
    );
    const after = await Promise.all(clients.map((client) => whoami(client)));
    for (const [i, seen] of after.entries()) {
      const socket = clients[i].transportSocket!;
      assert.equal(seen.backend, 'b', `client ${i} is on b`);
      assert.deepEqual([seen.remoteAddress, seen.remotePort], [socket.localAddress, socket.localPort], `client ${i} after`);
    }
    t.diagnostic(`${onA.length} clients moved from a to b; ${outcome.retried} opens refused while a link drained, then retried`);
  },
);
