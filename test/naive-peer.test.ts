/**
 * Issue 11, point 6: an obedient but naive peer must not be able to deadlock a connection.
 *
 * The peer is test/helpers/naive-peer.ts, a second client written from PROTOCOL.md alone. It
 * queues its window updates and PING answers in one FIFO behind its DATA, as a quick port to
 * another language would. In protocol version 1 the server stopped reading once its unread
 * data reached `maxBufferedBytes`; the credit 400 streams had been granted went past that, so
 * the updates the server's own echoes were waiting for sat unread behind DATA, and the
 * connection hung. Version 2 bounds unread data with a connection window instead, so the
 * server never stops reading and this peer always gets through.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { MuxServer, type MuxConnection, type MuxServerOptions, type MuxStream } from '../src/index';
import { nextEvent, waitFor } from './helpers/async';
import { NaivePeer, NaivePeerError, type NaivePeerOptions } from './helpers/naive-peer';

const HOST = '127.0.0.1';
const STREAMS = 400;
/**
 * 400 x 512 KiB = 200 MiB each way per run. The server grants every stream 256 KiB of credit
 * at its OPEN, 100 MiB together: past the 64 MiB at which a version 1 server stopped reading,
 * and far past its 16 MiB connection window, which is now what bounds it.
 */
const STREAM_BYTES = 512 * 1024;
/** A run that takes longer than this is taken for a hang (a healthy one takes about a second). */
const RUN_TIMEOUT_MS = 15_000;

/**
 * The naive peer's own receive window per stream. At 16 KiB, every echo needs 63 of the
 * peer's stream updates (one per 8 KiB consumed), plus connection updates (one per MiB), all
 * queued behind whatever DATA the peer has in its FIFO. This is what made a version 1 server
 * hang every time (see the commit message): its echoes waited for those updates, which
 * waited behind DATA it had stopped reading.
 */
const PEER: NaivePeerOptions = { initialWindow: 16 * 1024 };

/** The README's echo server, keeping its connections so a hang can report their stats. */
interface EchoServer {
  server: MuxServer;
  port: number;
  connections: MuxConnection[];
  stop(): Promise<void>;
}

async function startEchoServer(options: MuxServerOptions = {}): Promise<EchoServer> {
  const server = new MuxServer(0, { host: HOST, ...options });
  const connections: MuxConnection[] = [];
  server.on('connection', (con: MuxConnection) => {
    connections.push(con);
    con.on('stream', (s: MuxStream) => s.pipe(s));
  });
  await nextEvent(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.destroy();
      await closed;
    },
  };
}

/** One big random pool; each stream of each run echoes a slice at its own random offset. */
const POOL = randomBytes(STREAMS * STREAM_BYTES + STREAM_BYTES);

function slices(): Buffer[] {
  return Array.from({ length: STREAMS }, () => {
    const at = Math.floor(Math.random() * (POOL.length - STREAM_BYTES));
    return POOL.subarray(at, at + STREAM_BYTES);
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * One run: a fresh naive connection opens 400 streams at once, sends every payload and FIN,
 * and checks each echo's SHA-256. Fails with the state of both sides if it does not finish
 * within RUN_TIMEOUT_MS. Resolves with the peer's stats, to show what the run went through.
 */
async function echoRun(echo: EchoServer, run: number, options: NaivePeerOptions = PEER): Promise<ReturnType<NaivePeer['stats']>> {
  const payloads = slices();
  const expected = payloads.map(sha256);
  const peer = await NaivePeer.connect(echo.port, HOST, options);
  await waitFor(() => echo.connections.length > 0, 5000, 'the server connection');
  const con = echo.connections[echo.connections.length - 1];
  let timer: NodeJS.Timeout | undefined;
  try {
    const results = Promise.all(payloads.map((p) => peer.openStream(p)));
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const s = peer.stats();
        reject(
          new Error(
            `run ${run} hung: ${s.streamsDone} of ${STREAMS} streams done after ${RUN_TIMEOUT_MS} ms, ` +
              `server stats: ${JSON.stringify(con.stats())}, naive peer: ${JSON.stringify(s)}`,
          ),
        );
      }, RUN_TIMEOUT_MS);
    });
    const echoed = await Promise.race([results, hung]);
    for (let i = 0; i < STREAMS; i++) {
      assert.equal(echoed[i].bytesReceived, STREAM_BYTES, `run ${run}, stream ${i}: echoed length`);
      assert.equal(echoed[i].sha256, expected[i], `run ${run}, stream ${i}: echoed SHA-256`);
    }
    return peer.stats();
  } finally {
    clearTimeout(timer);
    peer.destroy();
    // The next run starts on a server whose previous connection is gone.
    await waitFor(() => echo.server.connectionCount === 0, 5000, 'the server to drop the naive connection');
    echo.connections.length = 0;
  }
}

describe('a naive peer that queues window updates behind its DATA (issue 11, point 6)', () => {
  test('runs 400 concurrent echo streams of 512 KiB without a hang, 20 times in a row', { timeout: 120_000 }, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.stop());
    for (let run = 1; run <= 20; run++) {
      const stats = await echoRun(echo, run);
      // The situation of the issue did arise: the FIFO filled and control frames waited in it.
      assert.ok(stats.drainWaits > 0, `run ${run}: the FIFO never had to wait for 'drain'`);
      assert.ok(stats.controlQueuedBehind > 0, `run ${run}: no window update was queued behind DATA`);
      if (run === 1) {
        t.diagnostic(`run 1: FIFO held up to ${stats.maxFifoBytes} bytes, ${stats.controlQueuedBehind} control frames queued behind`);
      }
    }
  });

  test('the stream credit the server grants 400 streams is past what a version 1 server held, and past its connection window', async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.stop());
    const peer = await NaivePeer.connect(echo.port, HOST, PEER);
    t.after(() => peer.destroy());
    // The server's connection window starts at 1 MiB and grows with its streams' windows (to 16 MiB).
    assert.equal(peer.server.connectionWindow, 1024 * 1024);
    // 64 MiB: the default maxBufferedBytes, where a version 1 server stopped reading.
    assert.ok(STREAMS * peer.server.initialWindow > 64 * 1024 * 1024);
    assert.ok(STREAMS * Math.min(peer.server.initialWindow, STREAM_BYTES) > 4 * peer.server.connectionWindow);
  });

  test('still gets through when its own application consumes slowly (3 runs)', { timeout: 60_000 }, async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.stop());
    for (let run = 1; run <= 3; run++) await echoRun(echo, run, { ...PEER, consumeDelayMs: 2 });
  });

  test('still gets through a server with a 4 MiB budget, whose connection window is 1 MiB (5 runs)', { timeout: 60_000 }, async (t) => {
    const echo = await startEchoServer({ maxBufferedBytes: 4 * 1024 * 1024 });
    t.after(() => echo.stop());
    const probe = await NaivePeer.connect(echo.port, HOST, PEER);
    assert.equal(probe.server.connectionWindow, 1024 * 1024);
    probe.destroy();
    await waitFor(() => echo.server.connectionCount === 0, 5000, 'the probe connection to close');
    echo.connections.length = 0;
    for (let run = 1; run <= 5; run++) await echoRun(echo, run, { ...PEER, connectionWindow: 1024 * 1024 });
  });

  test('a version 1 peer is refused clearly: magic, then GO_AWAY PROTOCOL_ERROR in version 1 framing', async (t) => {
    const echo = await startEchoServer();
    t.after(() => echo.stop());
    await assert.rejects(NaivePeer.connect(echo.port, HOST, { ...PEER, version: 1 }), (err: unknown) => {
      assert.ok(err instanceof NaivePeerError, String(err));
      assert.equal(err.kind, 'GO_AWAY');
      assert.equal(err.headerVersion, 1);
      assert.equal(err.code, 1); // PROTOCOL_ERROR
      assert.match(err.reason, /version 1 is no longer supported/);
      return true;
    });
  });
});
