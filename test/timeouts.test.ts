/**
 * Timeouts: the handshake (slow-loris), opens nobody answers, opens left in the backlog,
 * idle connections, and keepalive; plus ping() and what a long run of pings leaves behind.
 * Every timeout here is configured short, so each test ends by itself.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { MuxError, WireErrorCode, type MuxConnection, type MuxStream } from '../src/index';
import { connectClient, startTcp } from './helpers/mux';
import { delay, nextEvent, recordEvents, sha256, waitFor, withTimeout } from './helpers/async';
import { collect, openPair } from './helpers/streams';
import { closedWithBytes, rawSocket } from './helpers/raw-peer';
import { codeOf, FrameType, serveForTest, rawClientForTest } from './helpers/wire-peer';

const T = { timeout: 15_000 };

const serve = serveForTest;
const rawClient = rawClientForTest;

/** An echo round trip of `size` random bytes on a new stream from `client`. */
async function echoRoundTrip(client: MuxConnection, size = 100_000): Promise<void> {
  const stream = await withTimeout(client.StreamPool.createStream('echo'), 5000, 'an echo stream');
  const payload = randomBytes(size);
  const echoed = collect(stream);
  stream.end(payload);
  assert.equal(sha256(await echoed), sha256(payload));
}

describe('handshakeTimeout', () => {
  test(
    'clients that connect and send nothing are dropped after handshakeTimeout and reported as clientError ERR_HANDSHAKE_TIMEOUT, while a connected client keeps working',
    T,
    async (t) => {
      const { server, port } = await serve(t, { handshakeTimeout: 200 });
      const serverErrors: unknown[] = [];
      const clientErrors: unknown[] = [];
      server.on('error', (err) => serverErrors.push(err));
      server.on('clientError', (err) => clientErrors.push(err));
      server.on('connection', (con: MuxConnection) => con.on('stream', (stream: MuxStream) => stream.pipe(stream)));

      const good = await connectClient(server, port);
      t.after(() => good.client.destroy());
      const goodEvents = recordEvents(good.client, ['error', 'close']);

      const silent = await Promise.all(Array.from({ length: 10 }, () => rawSocket(port)));
      t.after(() => silent.forEach((s) => s.destroy()));
      const answers = await Promise.all(silent.map((s) => closedWithBytes(s, 5000)));
      // Dropped without a word: the peer never said it speaks the protocol.
      assert.deepEqual(
        answers.map((a) => a.length),
        silent.map(() => 0),
      );
      await waitFor(() => clientErrors.length === 10, 2000, 'ten clientErrors');
      for (const err of clientErrors) {
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, 'ERR_HANDSHAKE_TIMEOUT');
      }

      // The connected client, older than the timeout by now, is untouched and still moves data.
      await echoRoundTrip(good.client);
      assert.deepEqual(goodEvents.names, []);
      assert.equal(server.connectionCount, 1);
      assert.deepEqual(serverErrors, []);
    },
  );
});

describe('openTimeout', () => {
  test(
    'a peer that never answers an OPEN makes the opener fail with ERR_OPEN_TIMEOUT, in both forms, and the peer is sent a RESET',
    T,
    async (t) => {
      const { server, port } = await serve(t, { openTimeout: 200 });
      const { peer, con } = await rawClient(t, server, port);

      const promised = con.StreamPool.createStream('never answered');
      const ack = t.mock.fn();
      const withAck = con.StreamPool.createStream('never answered either', ack);
      const ackEvents = recordEvents(withAck, ['error', 'close']);

      await assert.rejects(withTimeout(promised, 5000, 'the open to time out'), (err: unknown) => {
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, 'ERR_OPEN_TIMEOUT');
        return true;
      });
      await waitFor(() => ackEvents.names.includes('close'), 5000, 'the ack-form stream to close');
      assert.deepEqual(ackEvents.names, ['error', 'close']);
      assert.equal((ackEvents.args.get('error') as MuxError).code, 'ERR_OPEN_TIMEOUT');
      assert.equal(ack.mock.callCount(), 0);

      // The peer is told to forget both ids.
      for (const id of [2, 4]) {
        const reset = await peer.frameOf(FrameType.RESET, id);
        assert.equal(codeOf(reset).code, WireErrorCode.OPEN_TIMEOUT, `RESET code for stream ${id}`);
      }
      // Only the streams failed: the connection is fine.
      assert.equal(con.stats().streamsOpenLocal, 0);
      assert.equal(typeof (await withTimeout(con.ping(), 5000, 'a ping')), 'number');
      assert.equal(con.closing, false);
    },
  );

  test('an ACCEPT that comes after the open timed out is ignored, and the connection lives on', T, async (t) => {
    const { server, port } = await serve(t, { openTimeout: 200 });
    const { peer, con } = await rawClient(t, server, port);
    const conEvents = recordEvents(con, ['error', 'close']);
    await assert.rejects(con.StreamPool.createStream('late'), { code: 'ERR_OPEN_TIMEOUT' });
    await peer.frameOf(FrameType.RESET, 2);
    peer.accept(2); // crossed the RESET in flight
    await peer.sync();
    const next = con.StreamPool.createStream('next');
    await peer.frameOf(FrameType.OPEN, 4);
    peer.accept(4);
    assert.equal((await withTimeout(next, 5000, 'the next stream')).meta, 'next');
    assert.deepEqual(conEvents.names, []);
  });

  test('a stream left in the backlog past openTimeout is refused to the opener with ERR_OPEN_TIMEOUT and never delivered', T, async (t) => {
    const setup = await startTcp({ server: { openTimeout: 200 } });
    t.after(() => setup.cleanup());
    const { client, serverCon } = setup;
    // Nobody listens for streams on the server yet.
    const waiting = client.StreamPool.createStream('waits too long');
    const withAck = client.StreamPool.createStream('waits too long, ack form', () => assert.fail('never accepted'));
    const ackError = nextEvent(withAck, 'error');
    await assert.rejects(withTimeout(waiting, 5000, 'the backlog to expire'), (err: unknown) => {
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_OPEN_TIMEOUT');
      return true;
    });
    const [err] = await ackError;
    assert.equal((err as MuxError).code, 'ERR_OPEN_TIMEOUT');
    assert.equal(serverCon.stats().pendingStreams, 0);
    assert.equal(serverCon.stats().streamsOpenRemote, 0);

    // A listener added now sees only streams opened after.
    const seen: unknown[] = [];
    serverCon.on('stream', (stream: MuxStream) => {
      seen.push(stream.meta);
      stream.pipe(stream);
    });
    await echoRoundTrip(client, 10_000);
    assert.deepEqual(seen, ['echo']);
  });
});

describe('idleTimeout', () => {
  test(
    'a connection with no stream for idleTimeout is closed: both sides see close, and the peer gets a goaway with code IDLE_TIMEOUT',
    T,
    async (t) => {
      const setup = await startTcp({ server: { idleTimeout: 200 } });
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;
      const clientEvents = recordEvents(client, ['goaway', 'error', 'close']);
      const serverEvents = recordEvents(serverCon, ['error', 'close']);
      const goaway = new Promise<[number, string]>((resolve) =>
        client.once('goaway', (code: number, reason: string) => resolve([code, reason])),
      );
      await withTimeout(Promise.all([nextEvent(client, 'close'), nextEvent(serverCon, 'close')]), 5000, 'both sides to close');
      const [code] = await goaway;
      assert.equal(code, WireErrorCode.IDLE_TIMEOUT);
      assert.equal(clientEvents.names.at(-1), 'close');
      assert.equal(serverEvents.names.at(-1), 'close');
      assert.deepEqual(serverEvents.names, ['close'], 'the side that timed out reports no error');
      // The client learns why, as ERR_IDLE_TIMEOUT, if it reports an error at all.
      const clientError = clientEvents.args.get('error');
      if (clientError !== undefined) assert.equal((clientError as MuxError).code, 'ERR_IDLE_TIMEOUT');
      await assert.rejects(client.StreamPool.createStream('too late'), { name: 'MuxError' });
    },
  );

  test('idleTimeout does not close a connection while a stream is open, and closes it once the last stream has ended', T, async (t) => {
    const setup = await startTcp({ server: { idleTimeout: 200 } });
    t.after(() => setup.cleanup());
    const { client, serverCon } = setup;
    const { local, remote } = await openPair(client, serverCon, 'keeps the connection busy');
    const closes = recordEvents(serverCon, ['close']);
    const clientCloses = recordEvents(client, ['close']);

    await delay(700); // more than three idle periods, with the stream open and quiet
    assert.deepEqual(closes.names, []);
    assert.deepEqual(clientCloses.names, []);
    assert.equal(serverCon.closing, false);
    const received = collect(remote);
    local.end('still here');
    assert.equal((await received).toString(), 'still here');

    remote.end();
    await collect(local);
    await withTimeout(
      Promise.all([nextEvent(serverCon, 'close'), nextEvent(client, 'close')]),
      5000,
      'the idle close after the stream ended',
    );
  });
});

describe('keepalive', () => {
  test(
    'a raw peer that completes the handshake and then never answers PINGs makes the connection close with ERR_KEEPALIVE_TIMEOUT, and every open stream errors',
    T,
    async (t) => {
      const { server, port } = await serve(t, { keepAliveInterval: 100, keepAliveTimeout: 200 });
      const { peer, con } = await rawClient(t, server, port, { answerPings: false });
      const conEvents = recordEvents(con, ['error', 'close']);
      const streams: MuxStream[] = [];
      con.on('stream', (stream: MuxStream) => streams.push(stream));
      peer.open(1, 'opened by the peer');
      peer.open(3, 'another');
      const mine = con.StreamPool.createStream('opened by the server', () => {});
      streams.push(mine);
      await peer.frameOf(FrameType.OPEN, 2);
      peer.accept(2);
      await waitFor(() => streams.length === 3, 5000, 'three streams');
      const streamEvents = streams.map((s) => recordEvents(s, ['error', 'close', 'end']));

      await withTimeout(nextEvent(con, 'close'), 5000, 'the keepalive to close the connection');
      assert.deepEqual(conEvents.names, ['error', 'close']);
      const err = conEvents.args.get('error');
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_KEEPALIVE_TIMEOUT');
      await waitFor(() => streamEvents.every((log) => log.names.includes('close')), 5000, 'every stream to close');
      streamEvents.forEach((events, i) => {
        assert.deepEqual(events.names, ['error', 'close'], `stream ${i}`);
        const streamErr = events.args.get('error') as MuxError;
        assert.equal(streamErr.code, 'ERR_CONNECTION_CLOSED');
        assert.equal((streamErr.cause as MuxError).code, 'ERR_KEEPALIVE_TIMEOUT');
      });
      // The peer was told why.
      await withTimeout(peer.closed, 5000, 'the raw socket to close');
      const goAway = peer.framesOf(FrameType.GO_AWAY);
      assert.equal(goAway.length, 1);
      assert.equal(codeOf(goAway[0]).code, WireErrorCode.KEEPALIVE_TIMEOUT);
    },
  );

  test(
    'a client whose server stops reading (a half-open connection) closes with error ERR_KEEPALIVE_TIMEOUT, and its open stream errors',
    T,
    async (t) => {
      const setup = await startTcp({ client: { keepAliveInterval: 100, keepAliveTimeout: 200 } });
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;
      const { local } = await openPair(client, serverCon, 'open when the server goes silent');
      const clientEvents = recordEvents(client, ['error', 'close']);
      const streamEvents = recordEvents(local, ['error', 'close']);
      (serverCon.transportSocket as Socket).pause(); // the server neither reads nor answers
      await withTimeout(nextEvent(client, 'close'), 5000, 'the client to give up');
      assert.deepEqual(clientEvents.names, ['error', 'close']);
      assert.equal((clientEvents.args.get('error') as MuxError).code, 'ERR_KEEPALIVE_TIMEOUT');
      await waitFor(() => streamEvents.names.includes('close'), 5000, 'the stream to close');
      assert.deepEqual(streamEvents.names, ['error', 'close']);
      assert.equal((streamEvents.args.get('error') as MuxError).code, 'ERR_CONNECTION_CLOSED');
    },
  );

  test('a healthy connection with a short keepalive interval stays open across many intervals', T, async (t) => {
    const options = { keepAliveInterval: 100, keepAliveTimeout: 500 };
    const setup = await startTcp({ server: options, client: options });
    t.after(() => setup.cleanup());
    const events = [recordEvents(setup.client, ['error', 'close']), recordEvents(setup.serverCon, ['error', 'close'])];
    await delay(1000);
    assert.deepEqual(
      events.map((e) => e.names),
      [[], []],
    );
    setup.serverCon.on('stream', (stream: MuxStream) => stream.pipe(stream));
    await echoRoundTrip(setup.client, 10_000);
  });
});

describe('keepalive while the application does not read', () => {
  test(
    'a receiver whose application stops reading for many keepalive timeouts keeps its connection, and all data arrives once it reads',
    T,
    async (t) => {
      const keepAlive = { keepAliveInterval: 100, keepAliveTimeout: 200 };
      const { server, port } = await serve(t, { ...keepAlive, maxBufferedBytes: 64 * 1024, initialWindow: 64 * 1024 });
      const accepted: MuxStream[] = [];
      const connection = nextEvent(server, 'connection');
      const { client } = await connectClient(server, port, keepAlive);
      t.after(() => client.destroy());
      const [serverCon] = (await connection) as [MuxConnection];
      serverCon.on('stream', (stream: MuxStream) => accepted.push(stream)); // and never read, for now
      const events = [recordEvents(client, ['error', 'close']), recordEvents(serverCon, ['error', 'close'])];

      const payloads = Array.from({ length: 8 }, () => randomBytes(256 * 1024));
      const streams = await Promise.all(payloads.map(() => client.StreamPool.createStream('upload')));
      streams.forEach((stream, i) => stream.end(payloads[i]));
      // The connection window (a quarter of the budget) fills; the server keeps reading its transport.
      await waitFor(() => serverCon.stats().bufferedIn >= 16 * 1024, 5000, 'the connection window to fill');

      await delay(1500); // more than seven keepalive timeouts
      assert.deepEqual(
        events.map((e) => e.names),
        [[], []],
        'neither side took the other for dead',
      );
      const received = await Promise.all(accepted.map((stream) => collect(stream)));
      const byMeta = received.map((bytes) => sha256(bytes)).sort();
      assert.deepEqual(byMeta, payloads.map((p) => sha256(p)).sort());
    },
  );
});

describe('ping', () => {
  test('ping() resolves to a positive number of milliseconds on both sides, and stats() reports it', T, async (t) => {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    for (const con of [setup.client, setup.serverCon]) {
      const rtt = await withTimeout(con.ping(), 5000, 'a ping');
      assert.equal(typeof rtt, 'number');
      assert.ok(Number.isFinite(rtt) && rtt > 0, `rtt ${rtt}`);
      assert.equal(typeof con.stats().lastRtt, 'number');
    }
  });

  test(
    'ping() on a closed connection rejects with ERR_CONNECTION_CLOSED, and a ping in flight when it closes rejects too',
    T,
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      (setup.serverCon.transportSocket as Socket).pause(); // the answer will never come
      const inFlight = setup.client.ping();
      setup.client.destroy();
      await assert.rejects(withTimeout(inFlight, 5000, 'the ping in flight'), { name: 'MuxError', code: 'ERR_CONNECTION_CLOSED' });
      await assert.rejects(setup.client.ping(), { name: 'MuxError', code: 'ERR_CONNECTION_CLOSED' });
    },
  );

  test('a thousand pings leave no pending entry, listener or timer behind', { timeout: 20_000 }, async (t) => {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    const cons = [setup.client, setup.serverCon];
    // Let the RTT probes of the first stream finish first.
    setup.serverCon.once('stream', (stream: MuxStream) => stream.destroy());
    const first = setup.client.StreamPool.createStream(null, () => {});
    await waitFor(
      () => cons.every((con) => (con as unknown as { liveness: { probesDone: boolean } }).liveness.probesDone),
      5000,
      'the probes',
    );
    first.destroy();
    const EVENTS = ['data', 'end', 'error', 'close', 'drain', 'finish', 'readable'];
    const listenerCounts = (): number[][] =>
      cons.map((con) => [
        ...EVENTS.map((e) => (con.transportSocket as Socket).listenerCount(e)),
        ...con.eventNames().map((e) => con.listenerCount(e)),
      ]);
    const pending = (): number[] => cons.map((con) => (con as unknown as { liveness: { pendingPings: number } }).liveness.pendingPings);
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = { listeners: listenerCounts(), timers: timers(), stats: cons.map((c) => c.stats()) };

    for (let round = 0; round < 10; round++) {
      // 50 at once from each side, then the rest one after another.
      await Promise.all(cons.flatMap((con) => Array.from({ length: 25 }, () => con.ping())));
      for (let i = 0; i < 50; i++) await cons[i % 2].ping();
    }

    assert.deepEqual(pending(), [0, 0], 'no ping is left pending');
    assert.deepEqual(listenerCounts(), before.listeners, 'no listener added per ping');
    assert.ok(timers() <= before.timers, `timers: ${before.timers} before, ${timers()} after`);
    cons.forEach((con, i) => {
      const stats = con.stats();
      assert.equal(stats.bufferedOut, 0);
      assert.equal(stats.bufferedIn, 0);
      assert.equal(stats.pendingStreams, 0);
      assert.equal(stats.streamsOpenLocal + stats.streamsOpenRemote, 0);
      assert.ok(stats.framesOut > before.stats[i].framesOut, 'the pings did go out');
    });
  });
});
