/**
 * Observability: `con.stats()` and `stream.stats()` with exact figures, counted frame by
 * frame from PROTOCOL.md (a 12-byte header per frame), and opt-in debug logging through
 * NODE_DEBUG=tcp-stream-muxer, checked in a child process with and without it.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { DEFAULTS, type ConnectionStats, type MuxConnection, type MuxStream } from '../src/index';
import { HEADER_LENGTH, MAGIC, WINDOW_UPDATE_PAYLOAD_LENGTH } from '../src/protocol/constants';
import { encodeSettings } from '../src/protocol/hello';
import { isFastPath, type RoundTrips } from '../src/session/window-tuning';
import { memoryTransport, type ConnectedPair, type PairOptions } from './helpers/mux';
import { waitFor, withTimeout } from './helpers/async';
import { collect, nextStream } from './helpers/streams';

const MAX_FRAME = DEFAULTS.maxFrameSize;

/** Bytes of one side's handshake: the magic and a HELLO frame carrying its settings. */
function helloBytes(limits = DEFAULTS): number {
  const settings = encodeSettings({
    initialWindow: limits.initialWindow,
    connectionWindow: limits.connectionWindow,
    maxFrameSize: limits.maxFrameSize,
    maxStreams: limits.maxStreams,
    maxMetaBytes: limits.maxMetaBytes,
    hello: null,
  });
  return MAGIC.length + HEADER_LENGTH + settings.length;
}

/** Each side probes the round trip three times once the first stream opens, and answers the peer's three. */
const PROBES = 3;

/** True once `con` has sent its round-trip probes and heard every answer. */
function probed(con: MuxConnection): boolean {
  const liveness = (con as unknown as { liveness: { probesDone: boolean } }).liveness;
  return liveness.probesDone;
}

/**
 * An in-memory pair once both handshakes are over and one stream has come and gone (the
 * first stream starts each side's RTT probes), and the probes are answered: from then on
 * the connection is quiet (keepalive pings come only after 30 s), so every frame is ours.
 */
async function quietPair(t: TestContext, options: PairOptions = {}): Promise<ConnectedPair> {
  const pair = await memoryTransport.connect(options);
  t.after(() => pair.cleanup());
  const incoming = nextStream(pair.server);
  const first = await pair.client.StreamPool.createStream('first');
  const remote = await incoming;
  const ended = Promise.all([collect(first), collect(remote)]);
  first.end();
  remote.end();
  await ended;
  const settled = (con: MuxConnection): boolean => probed(con) && con.stats().streamsOpenLocal + con.stats().streamsOpenRemote === 0;
  await waitFor(() => settled(pair.client) && settled(pair.server), 10_000, 'the first stream to close and the RTT probes to finish');
  // A later stream probes again while a side's path does not read fast (a busy machine can
  // make the first probes slow): quiet pings until both read fast keep those frames out of the counts.
  for (const con of [pair.client, pair.server]) {
    for (let i = 0; i < 20 && !isFastPath(roundTrips(con)); i++) await con.ping();
    assert.ok(isFastPath(roundTrips(con)), `${con.role}'s in-memory path reads as fast`);
  }
  return pair;
}

function roundTrips(con: MuxConnection): RoundTrips {
  return (con as unknown as { liveness: RoundTrips }).liveness;
}

function delta(
  after: ConnectionStats,
  before: ConnectionStats,
): { bytesIn: number; bytesOut: number; framesIn: number; framesOut: number } {
  return {
    bytesIn: after.bytesIn - before.bytesIn,
    bytesOut: after.bytesOut - before.bytesOut,
    framesIn: after.framesIn - before.framesIn,
    framesOut: after.framesOut - before.framesOut,
  };
}

/** Reads from `stream` until `count` bytes arrived (without waiting for its end). */
function readBytes(stream: MuxStream, count: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return withTimeout(
    new Promise<Buffer>((resolve) => {
      const onData = (chunk: Buffer): void => {
        parts.push(chunk);
        got += chunk.length;
        if (got >= count) {
          stream.removeListener('data', onData);
          stream.pause();
          resolve(Buffer.concat(parts));
        }
      };
      stream.on('data', onData);
    }),
    10_000,
    `${count} bytes`,
  );
}

describe('con.stats()', { concurrency: true }, () => {
  test(
    'after the handshake each side has counted its HELLO and nothing more; the first stream starts three RTT probes each way',
    { timeout: 15_000 },
    async (t) => {
      const pair = await memoryTransport.connect();
      t.after(() => pair.cleanup());
      const { client, server } = pair;
      for (const con of [client, server]) {
        assert.deepEqual(
          con.stats(),
          {
            streamsOpenLocal: 0,
            streamsOpenRemote: 0,
            pendingStreams: 0,
            bytesIn: helloBytes(),
            bytesOut: helloBytes(),
            framesIn: 1,
            framesOut: 1,
            bufferedIn: 0,
            bufferedOut: 0,
            memoryUsed: 0,
            memoryBudget: DEFAULTS.maxBufferedBytes,
            lastRtt: null,
          },
          `${con.role}'s figures`,
        );
      }
      const incoming = nextStream(server);
      const stream = await client.StreamPool.createStream(null);
      await incoming;
      await waitFor(() => probed(client) && probed(server), 10_000, 'the RTT probes to finish');
      for (const con of [client, server]) {
        const s = con.stats();
        const pings = 2 * PROBES;
        assert.ok(s.framesOut >= 1 + pings && s.framesIn >= 1 + pings, `${con.role}: HELLO, OPEN or ACCEPT, the probes and answers`);
        assert.equal(typeof s.lastRtt, 'number', 'the probes measured a round trip');
        assert.ok(s.lastRtt! >= 0);
      }
      stream.destroy();
    },
  );

  test('lastRtt is the round trip of the last ping', { timeout: 15_000 }, async (t) => {
    const { client } = await quietPair(t);
    const rtt = await client.ping();
    assert.equal(client.stats().lastRtt, rtt);
  });

  test(
    'sending N bytes on one stream counts exactly the OPEN, the ACCEPT, the DATA frames and their bytes, each way',
    { timeout: 15_000 },
    async (t) => {
      const { client, server } = await quietPair(t);
      const c0 = client.stats();
      const s0 = server.stats();
      const meta = { file: 'a.bin', n: 1 };
      const metaBytes = Buffer.byteLength(JSON.stringify(meta));
      // Under half the initial window: the reader grants no WINDOW_UPDATE yet.
      const N = 100_000;
      const dataFrames = Math.ceil(N / MAX_FRAME);

      const incoming = nextStream(server);
      const stream = await client.StreamPool.createStream(meta);
      const remote = await incoming;
      const payload = randomBytes(N);
      const received = readBytes(remote, N);
      stream.write(payload);
      assert.ok((await received).equals(payload));

      const sent = HEADER_LENGTH + metaBytes + dataFrames * HEADER_LENGTH + N; // OPEN + DATA frames
      assert.deepEqual(delta(client.stats(), c0), { bytesOut: sent, framesOut: 1 + dataFrames, bytesIn: HEADER_LENGTH, framesIn: 1 });
      assert.deepEqual(delta(server.stats(), s0), { bytesIn: sent, framesIn: 1 + dataFrames, bytesOut: HEADER_LENGTH, framesOut: 1 });
      assert.equal(client.stats().streamsOpenLocal, 1);
      assert.equal(client.stats().streamsOpenRemote, 0);
      assert.equal(server.stats().streamsOpenLocal, 0);
      assert.equal(server.stats().streamsOpenRemote, 1);

      // Per-stream: bytes each way and both windows, on both ends.
      const window = DEFAULTS.initialWindow;
      assert.deepEqual(stream.stats(), {
        bytesSent: N,
        bytesReceived: 0,
        sendWindow: window - N,
        receiveWindow: window,
        receiveWindowSize: window,
        queuedBytes: 0,
        bufferedBytes: 0,
      });
      assert.deepEqual(remote.stats(), {
        bytesSent: 0,
        bytesReceived: N,
        sendWindow: window,
        receiveWindow: window - N,
        receiveWindowSize: window,
        queuedBytes: 0,
        bufferedBytes: 0,
      });

      // The answer the other way, then the half-closes: one empty DATA frame with FIN each.
      const c1 = client.stats();
      const s1 = server.stats();
      const M = 70_000;
      const answer = randomBytes(M);
      const back = readBytes(stream, M);
      remote.write(answer);
      assert.ok((await back).equals(answer));
      const answerBytes = Math.ceil(M / MAX_FRAME) * HEADER_LENGTH + M;
      assert.deepEqual(delta(server.stats(), s1), { bytesOut: answerBytes, framesOut: Math.ceil(M / MAX_FRAME), bytesIn: 0, framesIn: 0 });
      assert.equal(stream.stats().bytesReceived, M);
      assert.equal(remote.stats().bytesSent, M);
      assert.equal(remote.stats().sendWindow, window - M);

      const ended = Promise.all([collect(stream), collect(remote)]);
      stream.resume();
      remote.resume();
      stream.end();
      remote.end();
      await ended;
      await waitFor(() => client.stats().streamsOpenLocal === 0 && server.stats().streamsOpenRemote === 0, 5000, 'the stream to close');
      const finBoth = { bytesIn: HEADER_LENGTH, bytesOut: HEADER_LENGTH, framesIn: 1, framesOut: 1 };
      assert.deepEqual(delta(client.stats(), c1), {
        ...finBoth,
        bytesIn: answerBytes + HEADER_LENGTH,
        framesIn: Math.ceil(M / MAX_FRAME) + 1,
      });
      assert.deepEqual(delta(server.stats(), s1), {
        ...finBoth,
        bytesOut: answerBytes + HEADER_LENGTH,
        framesOut: Math.ceil(M / MAX_FRAME) + 1,
      });
    },
  );

  test(
    "reading past half the window sends WINDOW_UPDATE frames; once quiet the sender's window equals the receiver's credit",
    { timeout: 15_000 },
    async (t) => {
      const { client, server } = await quietPair(t);
      const incoming = nextStream(server);
      const stream = await client.StreamPool.createStream(null);
      const remote = await incoming;
      const s0 = server.stats();
      const N = 600_000;
      const received = readBytes(remote, N);
      stream.write(randomBytes(N));
      await received;
      await waitFor(() => stream.stats().sendWindow === remote.stats().receiveWindow, 5000, 'the window updates to arrive');
      const d = delta(server.stats(), s0);
      assert.ok(d.framesOut >= 1, 'at least one WINDOW_UPDATE');
      assert.equal(d.bytesOut, d.framesOut * (HEADER_LENGTH + WINDOW_UPDATE_PAYLOAD_LENGTH), 'the server sent nothing but WINDOW_UPDATEs');
      assert.equal(remote.stats().bytesReceived, N);
      assert.ok(remote.stats().receiveWindowSize >= DEFAULTS.initialWindow);
    },
  );

  test('bufferedIn counts unread bytes against the memory budget, and falls to 0 once they are read', { timeout: 15_000 }, async (t) => {
    const budget = 1024 * 1024;
    const { client, server } = await quietPair(t, { server: { maxBufferedBytes: budget } });
    assert.equal(server.stats().memoryBudget, budget);
    const incoming = nextStream(server);
    const stream = await client.StreamPool.createStream({ slow: true });
    const remote = await incoming; // nobody reads it yet
    const N = 50_000;
    stream.write(randomBytes(N));
    await waitFor(() => remote.stats().bytesReceived === N, 5000, 'the bytes to arrive');
    assert.equal(server.stats().bufferedIn, N);
    assert.equal(remote.stats().bufferedBytes, N);
    assert.equal(client.stats().bufferedIn, 0);
    await readBytes(remote, N);
    assert.equal(server.stats().bufferedIn, 0);
    assert.equal(remote.stats().bufferedBytes, 0);
  });

  test('streams open each way, and streams waiting for a listener, are counted on both sides', { timeout: 15_000 }, async (t) => {
    const { client, server } = await quietPair(t);
    const opened: MuxStream[] = [];
    server.on('stream', (s: MuxStream) => opened.push(s));
    client.on('stream', (s: MuxStream) => opened.push(s));
    const mine = await Promise.all([client, client, server, server, server].map((con) => con.StreamPool.createStream({})));
    await waitFor(() => opened.length === 5, 5000, 'all streams accepted');
    assert.deepEqual(pick(client), { local: 2, remote: 3, pending: 0 });
    assert.deepEqual(pick(server), { local: 3, remote: 2, pending: 0 });

    // Without a `stream` listener, an opened stream waits, and counts as pending.
    server.removeAllListeners('stream');
    const waiting = client.StreamPool.createStream({ waits: true });
    await waitFor(() => server.stats().pendingStreams === 1, 5000, 'the open to wait');
    assert.deepEqual(pick(server), { local: 3, remote: 3, pending: 1 });
    const [late] = await Promise.all([nextStream(server), waiting]);
    assert.deepEqual(late.meta, { waits: true });
    assert.equal(server.stats().pendingStreams, 0);

    for (const s of [...mine, ...opened, late]) s.destroy();
    await waitFor(
      () => pick(client).local + pick(client).remote + pick(server).local + pick(server).remote === 0,
      5000,
      'every stream to close',
    );
  });
});

function pick(con: MuxConnection): { local: number; remote: number; pending: number } {
  const s = con.stats();
  return { local: s.streamsOpenLocal, remote: s.streamsOpenRemote, pending: s.pendingStreams };
}

describe('debug logging through NODE_DEBUG', () => {
  // A child that opens a connection, refuses a stream, resets one, and closes gracefully.
  const script = `
    const { MuxServer, MuxClient } = require('tcp-stream-muxer');
    const server = new MuxServer(0, { host: '127.0.0.1', acceptStream: (meta) => meta.ok || 'not ok' }, () => {
      server.on('connection', (con) => con.on('stream', (s) => s.destroy()));
      const client = new MuxClient(server.address().port, '127.0.0.1', async () => {
        await client.StreamPool.createStream({ ok: false }).catch(() => {});
        const s = await client.StreamPool.createStream({ ok: true });
        s.on('error', () => {});
        await new Promise((resolve) => (s.closed ? resolve() : s.on('close', resolve)));
        client.close(() => server.close());
      });
    });
  `;

  async function runChild(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
    // Killed after 15 s at the latest, so a hang fails the test instead of holding the runner.
    const child = spawn(process.execPath, ['-e', script], {
      cwd: path.join(__dirname, '..'),
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 15_000,
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await withTimeout(new Promise<number | null>((resolve) => child.on('exit', resolve)), 20_000, 'the child to exit');
    return { code, stderr };
  }

  test(
    'NODE_DEBUG=tcp-stream-muxer logs connection events (handshake, refusal, reset, GO_AWAY, close) and nothing per frame',
    { timeout: 20_000 },
    async () => {
      const { code, stderr } = await runChild({ ...process.env, NODE_DEBUG: 'tcp-stream-muxer' });
      assert.equal(code, 0, stderr);
      const lines = stderr.split('\n').filter((line) => line.startsWith('TCP-STREAM-MUXER'));
      const expect = [
        /client connection started over Socket/,
        /server connection started over Socket/,
        /client connection ready/,
        /server connection ready/,
        /refused stream 1: not ok/,
        /client stream 1 refused by the peer: REFUSED not ok/,
        /server resetting stream 3/,
        /client stream 3 reset by the peer/,
        /client sending GO_AWAY NORMAL/,
        /server received GO_AWAY NORMAL/,
        /client connection closed$/,
        /server connection closed$/,
      ];
      for (const pattern of expect)
        assert.ok(
          lines.some((line) => pattern.test(line)),
          `a line matches ${pattern}:\n${lines.join('\n')}`,
        );
      assert.ok(lines.length < 30, `a few lines per connection, not per frame (${lines.length})`);
    },
  );

  test('without NODE_DEBUG nothing is logged', { timeout: 20_000 }, async () => {
    const env = { ...process.env };
    delete env.NODE_DEBUG;
    const { code, stderr } = await runChild(env);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
  });
});
