/**
 * Limits: concurrent streams per direction, meta size, streams waiting for the application,
 * frame size and window violations, and the connection's budget of unread bytes. Over a
 * limit an open is refused with its own MuxError code, or the offending connection (and
 * only it) goes away with a GO_AWAY saying why; nothing buffers without bound.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { MuxError, WireErrorCode, type MuxServer, type MuxServerOptions, type MuxStream } from '../src/index';
import { connectClient, startTcp } from './helpers/mux';
import { delay, nextEvent, recordEvents, sha256, waitFor, withTimeout } from './helpers/async';
import { collect, openPair } from './helpers/streams';
import { codeOf, encodeFrame, FrameType, type WirePeer, serveForTest, rawClientForTest } from './helpers/wire-peer';

const T = { timeout: 15_000 };

const serve = serveForTest;
const rawClient = rawClientForTest;

/** Proves `server` still serves: a fresh client echoes 100 kB through it. */
async function expectStillServing(t: TestContext, server: MuxServer, port: number): Promise<void> {
  const { client, serverCon } = await connectClient(server, port);
  t.after(() => client.destroy());
  serverCon.on('stream', (stream: MuxStream) => stream.pipe(stream));
  const stream = await withTimeout(client.StreamPool.createStream('still serving?'), 5000, 'an echo stream');
  const payload = randomBytes(100_000);
  const echoed = collect(stream);
  stream.end(payload);
  assert.equal(sha256(await echoed), sha256(payload));
}

describe('maxStreams', () => {
  test(
    "an open beyond the peer's advertised maxStreams fails locally with ERR_STREAM_LIMIT, the peer never sees it, and a stream opens again once one has closed",
    T,
    async (t) => {
      const { server, port } = await serve(t);
      const { peer, con } = await rawClient(t, server, port, { settings: { maxStreams: 2 } });

      const first = con.StreamPool.createStream('first');
      const second = con.StreamPool.createStream('second');
      const [openA, openB] = [await peer.frameOf(FrameType.OPEN, 2), await peer.frameOf(FrameType.OPEN, 4)];
      assert.equal(openA.payload.toString(), '"first"');
      assert.equal(openB.payload.toString(), '"second"');
      peer.accept(2);
      peer.accept(4);
      const [a] = await withTimeout(Promise.all([first, second]), 5000, 'the two streams to be accepted');

      // The third is refused on this side, promise form and ack form alike.
      await assert.rejects(con.StreamPool.createStream('third'), (err: unknown) => {
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, 'ERR_STREAM_LIMIT');
        return true;
      });
      const ack = t.mock.fn();
      const withAck = con.StreamPool.createStream('third, ack form', ack);
      const ackEvents = recordEvents(withAck, ['error', 'close']);
      await nextEvent(withAck, 'close');
      assert.deepEqual(ackEvents.names, ['error', 'close']);
      assert.equal((ackEvents.args.get('error') as MuxError).code, 'ERR_STREAM_LIMIT');
      assert.equal(ack.mock.callCount(), 0);

      // No round trip: after a PING answered behind them, the peer has still seen only two OPENs.
      await peer.sync();
      assert.deepEqual(
        peer.framesOf(FrameType.OPEN).map((f) => f.streamId),
        [2, 4],
      );

      // The connection lives on: once the first stream has ended both ways, another opens.
      a.resume();
      a.end();
      await peer.frame((f) => f.type === FrameType.DATA && f.streamId === 2 && (f.flags & 1) === 1, 5000, 'the FIN on stream 2');
      peer.data(2, '', true);
      await waitFor(() => con.stats().streamsOpenLocal === 1, 5000, 'stream 2 to close');
      const fourth = con.StreamPool.createStream('fourth');
      const openC = await peer.frame((f) => f.type === FrameType.OPEN && f.payload.toString() === '"fourth"', 5000, 'the fourth OPEN');
      peer.accept(openC.streamId);
      const stream = await withTimeout(fourth, 5000, 'the fourth stream');
      assert.equal(stream.meta, 'fourth');
      assert.equal(con.closing, false);
    },
  );

  test('a raw peer that ignores maxStreams gets REFUSE STREAM_LIMIT for the extra OPEN, and the connection lives on', T, async (t) => {
    const { server, port } = await serve(t, { maxStreams: 2 });
    const { peer, con } = await rawClient(t, server, port);
    const delivered: MuxStream[] = [];
    con.on('stream', (stream: MuxStream) => delivered.push(stream));

    peer.open(1, 'a');
    peer.open(3, 'b');
    peer.open(5, 'one too many');
    await peer.frameOf(FrameType.ACCEPT, 1);
    await peer.frameOf(FrameType.ACCEPT, 3);
    const refusal = codeOf(await peer.frameOf(FrameType.REFUSE, 5));
    assert.equal(refusal.code, WireErrorCode.STREAM_LIMIT);
    assert.deepEqual(
      delivered.map((s) => s.meta),
      ['a', 'b'],
    );

    // Resetting one frees a slot; the next OPEN is accepted, and data flows on it.
    peer.reset(1, WireErrorCode.CANCEL);
    peer.open(7, 'after the reset');
    await peer.frameOf(FrameType.ACCEPT, 7);
    peer.data(7, 'still alive', true);
    const last = delivered.find((s) => s.id === 7)!;
    assert.equal((await collect(last)).toString(), 'still alive');
    assert.equal(peer.framesOf(FrameType.GO_AWAY).length, 0, 'no GO_AWAY');
    assert.equal(con.closing, false);
  });
});

describe('maxMetaBytes', () => {
  test(
    "meta larger than the peer's maxMetaBytes fails locally with ERR_META_TOO_LARGE, the peer never sees it, and smaller meta still opens",
    T,
    async (t) => {
      const { server, port } = await serve(t);
      const { peer, con } = await rawClient(t, server, port, { settings: { maxMetaBytes: 100 } });

      await assert.rejects(con.StreamPool.createStream({ blob: 'x'.repeat(200) }), { name: 'MuxError', code: 'ERR_META_TOO_LARGE' });
      const withAck = con.StreamPool.createStream({ blob: 'y'.repeat(200) }, () => assert.fail('never accepted'));
      const [err] = await nextEvent(withAck, 'error');
      assert.equal((err as MuxError).code, 'ERR_META_TOO_LARGE');

      await peer.sync();
      assert.equal(peer.framesOf(FrameType.OPEN).length, 0, 'no OPEN reached the peer');

      const small = con.StreamPool.createStream({ small: true });
      const open = await peer.frame((f) => f.type === FrameType.OPEN, 5000, 'the small OPEN');
      assert.deepEqual(JSON.parse(open.payload.toString()), { small: true });
      peer.accept(open.streamId);
      assert.deepEqual((await withTimeout(small, 5000, 'the small stream')).meta, { small: true });
    },
  );

  test(
    'a meta-size refusal between two library endpoints rejects the opener with ERR_META_TOO_LARGE and the connection carries on',
    T,
    async (t) => {
      const setup = await startTcp({ server: { maxMetaBytes: 1024 } });
      t.after(() => setup.cleanup());
      await assert.rejects(setup.client.StreamPool.createStream('z'.repeat(2000)), { name: 'MuxError', code: 'ERR_META_TOO_LARGE' });
      const { local, remote } = await openPair(setup.client, setup.serverCon, 'z'.repeat(1000));
      local.end('fits');
      assert.equal((await collect(remote)).toString(), 'fits');
    },
  );

  test('a raw peer sending an OPEN over maxMetaBytes gets REFUSE META_TOO_LARGE, and the connection lives on', T, async (t) => {
    const { server, port } = await serve(t, { maxMetaBytes: 1024 });
    const { peer, con } = await rawClient(t, server, port);
    const delivered: MuxStream[] = [];
    con.on('stream', (stream: MuxStream) => delivered.push(stream));
    const conEvents = recordEvents(con, ['error', 'close']);

    peer.open(1, { blob: 'x'.repeat(5000) });
    const refusal = codeOf(await peer.frameOf(FrameType.REFUSE, 1));
    assert.equal(refusal.code, WireErrorCode.META_TOO_LARGE);

    peer.open(3, { fits: true });
    await peer.frameOf(FrameType.ACCEPT, 3);
    assert.deepEqual(
      delivered.map((s) => [s.id, s.meta]),
      [[3, { fits: true }]],
    );
    peer.data(3, 'hello', true);
    assert.equal((await collect(delivered[0])).toString(), 'hello');
    assert.deepEqual(conEvents.names, []);
    assert.equal(peer.framesOf(FrameType.GO_AWAY).length, 0);
  });
});

describe('maxPendingStreams', () => {
  test(
    'streams arriving before any stream listener are queued up to maxPendingStreams, the rest are refused with ERR_STREAM_LIMIT, and the queued ones are delivered once a listener is added',
    T,
    async (t) => {
      const setup = await startTcp({ server: { maxPendingStreams: 3 } });
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;

      const opens = [0, 1, 2, 3, 4].map((i) => client.StreamPool.createStream({ i }));
      for (const i of [3, 4]) {
        await assert.rejects(withTimeout(opens[i], 5000, `open ${i}`), (err: unknown) => {
          assert.ok(err instanceof MuxError);
          assert.equal(err.code, 'ERR_STREAM_LIMIT');
          return true;
        });
      }
      assert.equal(serverCon.stats().pendingStreams, 3);

      const seen: MuxStream[] = [];
      serverCon.on('stream', (stream: MuxStream) => seen.push(stream));
      const accepted = await withTimeout(Promise.all(opens.slice(0, 3)), 5000, 'the queued streams to be accepted');
      assert.deepEqual(
        seen.map((s) => s.meta),
        [{ i: 0 }, { i: 1 }, { i: 2 }],
      );
      assert.equal(serverCon.stats().pendingStreams, 0);

      // Each queued stream carries data.
      const received = seen.map((s) => collect(s));
      accepted.forEach((s, i) => s.end(`payload ${i}`));
      assert.deepEqual((await Promise.all(received)).map(String), ['payload 0', 'payload 1', 'payload 2']);
    },
  );
});

describe('frame and window violations', () => {
  const violations: [string, MuxServerOptions, (peer: WirePeer) => void, WireErrorCode, string][] = [
    [
      'DATA larger than maxFrameSize',
      { maxFrameSize: 16 * 1024 },
      (peer) => {
        peer.open(1, 'big frame');
        peer.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(16 * 1024 + 1)));
      },
      WireErrorCode.FRAME_TOO_LARGE,
      'ERR_FRAME_TOO_LARGE',
    ],
    [
      'DATA past the stream window',
      { initialWindow: 16 * 1024 },
      (peer) => {
        peer.open(1, 'overflow');
        peer.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(16 * 1024)));
        peer.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(1)));
      },
      WireErrorCode.FLOW_CONTROL_ERROR,
      'ERR_FLOW_CONTROL',
    ],
  ];
  for (const [what, options, misbehave, wireCode, errCode] of violations) {
    test(
      `${what} from a raw peer closes only that connection, with a GO_AWAY ${WireErrorCode[wireCode]} on the wire, while another client keeps working`,
      T,
      async (t) => {
        const { server, port } = await serve(t, options);
        const serverErrors: unknown[] = [];
        server.on('error', (err) => serverErrors.push(err));
        const good = await connectClient(server, port);
        t.after(() => good.client.destroy());
        good.serverCon.on('stream', (stream: MuxStream) => stream.pipe(stream));
        const goodEvents = recordEvents(good.client, ['error', 'close', 'goaway']);

        const { peer, con } = await rawClient(t, server, port);
        const conError = nextEvent(con, 'error');
        misbehave(peer);
        const [err] = await conError;
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, errCode);
        await withTimeout(peer.closed, 5000, 'the server to close the raw connection');
        const goAways = peer.framesOf(FrameType.GO_AWAY);
        assert.equal(goAways.length, 1);
        assert.equal(codeOf(goAways[0]).code, wireCode);
        assert.equal(peer.frames.at(-1), goAways[0], 'the GO_AWAY is the last frame');

        // The well-behaved client was not touched and still moves data.
        const stream = await good.client.StreamPool.createStream('echo');
        const payload = randomBytes(200_000);
        const echoed = collect(stream);
        stream.end(payload);
        assert.equal(sha256(await echoed), sha256(payload));
        assert.deepEqual(goodEvents.names, []);
        assert.equal(server.connectionCount, 1);
        await expectStillServing(t, server, port);
        assert.deepEqual(serverErrors, []);
      },
    );
  }
});

describe('maxBufferedBytes', () => {
  test(
    'with a 256 KiB budget and 16 streams whose reader never reads, the unread bytes stay within the connection window, the transport is still read, and everything arrives intact once reading starts',
    { timeout: 20_000 },
    async (t) => {
      const BUDGET = 256 * 1024;
      const WINDOW = 64 * 1024;
      const STREAMS = 16;
      const setup = await startTcp({ server: { maxBufferedBytes: BUDGET, initialWindow: WINDOW, maxWindow: WINDOW } });
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;
      const held = new Map<number, MuxStream>();
      serverCon.on('stream', (stream: MuxStream) => held.set((stream.meta as { i: number }).i, stream));

      // The peak is right after a chunk has been decoded: sample there, after the session's own listener.
      let peak = 0;
      (serverCon.transportSocket as Socket).on('data', () => {
        peak = Math.max(peak, serverCon.stats().bufferedIn);
      });

      const payloads = Array.from({ length: STREAMS }, () => randomBytes(256 * 1024));
      const locals = await withTimeout(
        Promise.all(payloads.map((_, i) => client.StreamPool.createStream({ i }))),
        5000,
        'the streams to open',
      );
      locals.forEach((stream, i) => stream.end(payloads[i]));

      // 16 stream windows (1 MiB) would allow more; the connection window (a quarter of the
      // budget) holds the sender back, without the receiver ever stopping to read.
      const connectionWindow = BUDGET / 4;
      await waitFor(() => serverCon.stats().bufferedIn >= connectionWindow, 5000, 'the connection window to fill');
      await delay(300); // the sender would keep every stream's window in use meanwhile
      const unread = serverCon.stats().bufferedIn;
      assert.ok(peak <= connectionWindow, `peak unread ${peak} bytes exceeds the connection window ${connectionWindow}`);
      assert.ok(unread <= connectionWindow, `unread ${unread} bytes`);
      assert.ok(serverCon.stats().memoryUsed <= BUDGET, `memory used ${serverCon.stats().memoryUsed} bytes`);
      const receivedSoFar = [...held.values()].reduce((sum, s) => sum + s.stats().bytesReceived, 0);
      assert.ok(receivedSoFar < STREAMS * 256 * 1024, 'the sender was held back');
      assert.equal(serverCon.closing, false);
      // The server still reads its transport: a ping crosses it both ways while nothing is read.
      await withTimeout(client.ping(), 2000, 'a ping while the data sits unread');

      const received = await withTimeout(
        Promise.all(payloads.map((_, i) => collect(held.get(i)!, 15_000))),
        15_000,
        'every stream to arrive',
      );
      received.forEach((bytes, i) => assert.equal(sha256(bytes), sha256(payloads[i]), `stream ${i} intact`));
      assert.ok(peak <= connectionWindow, `peak unread ${peak} bytes while reading`);
      assert.equal(serverCon.stats().bufferedIn, 0);
    },
  );
});
