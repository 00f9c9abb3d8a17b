/**
 * Issue 11: every byte a peer makes us hold is counted, and no peer, hostile or merely
 * obedient, can crash the server, stall a connection or starve the others. Each attack
 * that was reproduced against the previous release is replayed here in a bounded form, on
 * loopback, with what the server must do about it; memory claims are measured.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { DEFAULTS, MuxClient, MuxError, MuxServer, WireErrorCode, type MuxStream } from '../src/index';
import { FrameType as Type, HEADER_LENGTH, MAGIC } from '../src/protocol/constants';
import { encodeCodeAndReason } from '../src/codec/encode';
import { connectClient, HOST, startTcp } from './helpers/mux';
import { delay, nextEvent, sha256, waitFor, withTimeout } from './helpers/async';
import { collect } from './helpers/streams';
import { liveBytes } from './helpers/memory';
import { clientPreface, codeOf, encodeFrame, FrameType, rawClientForTest, serveForTest, type WirePeer } from './helpers/wire-peer';

const T = { timeout: 30_000 };
const MiB = 1024 * 1024;

/** Proves `server` still serves: a fresh client echoes 100 kB through it (`echoing`: the server's own handler echoes). */
async function expectStillServing(t: TestContext, server: MuxServer, port: number, echoing = false): Promise<void> {
  const { client, serverCon } = await connectClient(server, port);
  t.after(() => client.destroy());
  if (!echoing) serverCon.on('stream', (stream: MuxStream) => stream.pipe(stream));
  const stream = await withTimeout(client.StreamPool.createStream('still serving?'), 5000, 'an echo stream');
  const payload = randomBytes(100_000);
  const echoed = collect(stream);
  stream.end(payload);
  assert.equal(sha256(await echoed), sha256(payload));
}

/** The server's GO_AWAY to `peer`, once it came. */
async function goAwayOf(peer: WirePeer, ms = 10_000): Promise<{ code: number; reason: string }> {
  return codeOf(await peer.frame((f) => f.type === FrameType.GO_AWAY, ms, 'a GO_AWAY'));
}

/** `count` 1-byte DATA frames on `streamId`, as one buffer. */
function tinyFrames(streamId: number, count: number): Buffer {
  const one = encodeFrame(FrameType.DATA, 0, streamId, Buffer.from('x'));
  const out = Buffer.allocUnsafe(one.length * count);
  for (let i = 0; i < count; i++) one.copy(out, i * one.length);
  return out;
}

describe('meta is counted', () => {
  test(
    "streams with large metas that stay open are refused with OVERLOADED once the connection's share is spent; the server lives on",
    T,
    async (t) => {
      const budget = 8 * MiB; // connection window 2 MiB; streams and metas may hold 4 MiB, metas 1 MiB
      const { server, port } = await serveForTest(t, { maxBufferedBytes: budget });
      server.on('connection', (con) => con.on('stream', () => {})); // holds every stream, reads nothing
      const { peer, con } = await rawClientForTest(t, server, port);
      const meta = Buffer.from(JSON.stringify('m'.repeat(60_000)));
      // 100 opens: about a dozen fit, the rest are refused (each large meta weighs 15 units of
      // wasted work: a longer flood would end the connection, see below).
      for (let i = 0; i < 100; i++) peer.send(encodeFrame(FrameType.OPEN, 0, 1 + 2 * i, meta));
      await peer.sync();
      const refused = peer.framesOf(FrameType.REFUSE);
      const accepted = peer.framesOf(FrameType.ACCEPT).length;
      assert.ok(refused.length > 50, `${refused.length} refused, ${accepted} accepted`);
      assert.deepEqual([...new Set(refused.map((f) => codeOf(f).code))], [WireErrorCode.OVERLOADED]);
      assert.match(codeOf(refused[0]).reason, /memory for metas is spent/);
      assert.ok(accepted >= 8 && accepted <= 16, `${accepted} accepted`);
      const { memoryUsed } = con.stats();
      assert.ok(memoryUsed <= budget / 2, `memory used ${memoryUsed} > ${budget / 2}`);
      // Each 60 kB meta is charged at least its bytes: the account is honest about what it keeps.
      assert.ok(memoryUsed >= accepted * 60_000, `memory used ${memoryUsed} for ${accepted} metas`);
      assert.equal(con.ready, true, 'refusing opens is not a reason to drop the connection');
      await expectStillServing(t, server, port);
    },
  );

  test('a meta nested deeper than 32 levels is a protocol error found before it is built (no stack overflow)', T, async (t) => {
    const { server, port } = await serveForTest(t);
    const { peer } = await rawClientForTest(t, server, port);
    peer.send(encodeFrame(FrameType.OPEN, 0, 1, Buffer.from('['.repeat(32_000) + ']'.repeat(32_000))));
    const goAway = await goAwayOf(peer);
    assert.equal(goAway.code, WireErrorCode.PROTOCOL_ERROR);
    assert.match(goAway.reason, /meta of stream 1 is nested deeper than 32 levels/);
    await expectStillServing(t, server, port);
  });

  test('a meta with a lone surrogate, a duplicate key or an unsafe integer is refused as not I-JSON', T, async (t) => {
    const { server, port } = await serveForTest(t);
    for (const [json, reason] of [
      ['"\\ud800"', /lone surrogate/],
      ['{"a":1,"\\u0061":2}', /duplicate member "a"/],
      ['12345678901234567890', /does not survive a round trip/],
    ] as const) {
      const { peer } = await rawClientForTest(t, server, port);
      peer.send(encodeFrame(FrameType.OPEN, 0, 1, Buffer.from(json)));
      const goAway = await goAwayOf(peer);
      assert.equal(goAway.code, WireErrorCode.PROTOCOL_ERROR, json);
      assert.match(goAway.reason, reason);
    }
  });

  test('createStream refuses a meta that is not I-JSON locally, with ERR_INVALID_META, before anything is sent', T, async (t) => {
    const { server, port } = await serveForTest(t);
    const { client } = await connectClient(server, port);
    t.after(() => client.destroy());
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    for (const meta of [{ s: '\ud800' }, deep, { n: 2 ** 60 }]) {
      await assert.rejects(
        client.StreamPool.createStream(meta as never),
        (err: unknown) => err instanceof MuxError && err.code === 'ERR_INVALID_META',
      );
    }
    assert.equal(client.ready, true);
  });
});

describe('received data is counted at its real cost', () => {
  test('262,144 one-byte DATA frames to a stream nobody reads cost about their bytes, not a Buffer each', T, async (t) => {
    const { server, port } = await serveForTest(t);
    server.on('connection', (con) => con.on('stream', () => {})); // never read
    const { peer, con } = await rawClientForTest(t, server, port);
    peer.open(1, 'held');
    await peer.frameOf(FrameType.ACCEPT, 1);
    const before = liveBytes();
    const window = DEFAULTS.initialWindow; // 256 KiB of credit, all of it in 1-byte frames
    for (let sent = 0; sent < window; sent += 16_384) peer.send(tinyFrames(1, 16_384));
    await peer.sync(10_000);
    const grown = liveBytes() - before;
    const { bufferedIn, memoryUsed } = con.stats();
    t.diagnostic(`heap+external grew ${grown} bytes for ${window} one-byte frames; the account says ${memoryUsed}`);
    assert.equal(bufferedIn, window);
    // Before: ~125 bytes of heap per byte (32 MB here) while the account said 256 KiB.
    assert.ok(grown < 4 * MiB, `memory grew ${grown} bytes`);
    assert.ok(memoryUsed >= window && memoryUsed < 2 * window, `account ${memoryUsed}`);
  });

  test('echoing one-byte frames on 64 streams pins no socket reads: memory stays a small multiple of the data', T, async (t) => {
    const { server, port } = await serveForTest(t);
    server.on('connection', (con) => con.on('stream', (stream: MuxStream) => stream.pipe(stream)));
    // A 1 KiB window for the echo: the server's output stalls and what it echoes piles up in its queues.
    const { peer, con } = await rawClientForTest(t, server, port, { settings: { initialWindow: 1024 } });
    const streams = 64;
    for (let i = 0; i < streams; i++) peer.open(1 + 2 * i, i);
    await peer.sync();
    const before = liveBytes();
    const perStream = 64 * 1024;
    const one = (id: number): Buffer => encodeFrame(FrameType.DATA, 0, id, Buffer.from('y'));
    // Interleaved, so that every socket read carries pieces of every stream.
    for (let round = 0; round < perStream; round += 256) {
      const frames: Buffer[] = [];
      for (let k = 0; k < 256; k++) for (let i = 0; i < streams; i++) frames.push(one(1 + 2 * i));
      peer.send(...frames);
    }
    await peer.sync(20_000);
    const grown = liveBytes() - before;
    const data = streams * perStream;
    t.diagnostic(`heap+external grew ${grown} bytes for ${data} echoed bytes in one-byte frames; account ${con.stats().memoryUsed}`);
    // Before: each 1-byte piece was a view pinning its 64 KiB socket read, and a Buffer in the
    // echo's send queue: hundreds of MB here.
    assert.ok(grown < 16 * data, `memory grew ${grown} bytes for ${data} bytes of data`);
  });

  test('a peer that sends past the connection window is a FLOW_CONTROL_ERROR, though every stream window allows it', T, async (t) => {
    const budget = 4 * MiB; // connection window 1 MiB
    const { server, port } = await serveForTest(t, { maxBufferedBytes: budget, initialWindow: 1 * MiB });
    server.on('connection', (con) => con.on('stream', () => {}));
    const { peer } = await rawClientForTest(t, server, port);
    const chunk = randomBytes(64 * 1024);
    for (let i = 0; i < 3; i++) peer.open(1 + 2 * i, i);
    // 3 × 512 KiB: within each stream's 1 MiB window, beyond the 1 MiB connection window.
    for (let k = 0; k < 8; k++) for (let i = 0; i < 3; i++) peer.data(1 + 2 * i, chunk);
    const goAway = await goAwayOf(peer);
    assert.equal(goAway.code, WireErrorCode.FLOW_CONTROL_ERROR);
    assert.match(goAway.reason, /connection window/);
  });

  test('data read by the application and data dropped with a reset both give connection credit back', T, async (t) => {
    const budget = 4 * MiB; // connection window 1 MiB, own updates every 512 KiB, and with each stream's
    const { server, port } = await serveForTest(t, { maxBufferedBytes: budget });
    const held: MuxStream[] = [];
    server.on('connection', (con) => con.on('stream', (stream: MuxStream) => held.push(stream)));
    const { peer } = await rawClientForTest(t, server, port);
    const chunk = randomBytes(64 * 1024);
    peer.open(1, 'dropped');
    for (let k = 0; k < 4; k++) peer.data(1, chunk); // 256 KiB unread
    await peer.sync();
    assert.equal(peer.framesOf(FrameType.WINDOW_UPDATE, 0).length, 0);
    peer.reset(1, WireErrorCode.CANCEL);
    peer.open(3, 'read');
    await peer.sync();
    held[1].resume();
    for (let k = 0; k < 4; k++) peer.data(3, chunk); // read at once: 512 KiB left the account with the reset's
    await peer.sync();
    const updates = peer.framesOf(FrameType.WINDOW_UPDATE, 0).map((f) => f.payload.readUInt32BE(0));
    assert.ok(updates.length >= 1, 'a connection WINDOW_UPDATE came back');
    // More than the 256 KiB dropped: the bytes read count too (the rest rides a later update).
    assert.ok(updates.reduce((a, b) => a + b, 0) > 256 * 1024, `granted ${updates.join(', ')}`);
  });

  test('streams nobody reads hold their credit, and a stream that is read still gets all its data (no stall)', T, async (t) => {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    const held: MuxStream[] = [];
    const read = new Promise<Buffer>((resolve) => {
      setup.serverCon.on('stream', (stream: MuxStream) => {
        if (stream.meta === 'read') void collect(stream, 20_000).then(resolve);
        else held.push(stream);
      });
    });
    const payload = randomBytes(400 * 1024);
    // Three unread streams keep 768 KiB of the 1 MiB connection window: less than half of it
    // can come back from the stream being read.
    for (let i = 0; i < 3; i++) (await setup.client.StreamPool.createStream('unread')).end(payload);
    (await setup.client.StreamPool.createStream('read')).end(payload);
    assert.equal(sha256(await withTimeout(read, 10_000, 'the read stream to arrive whole')), sha256(payload));
    assert.equal(held.length, 3);
  });

  test('the connection window starts small and grows while its streams offer more, unless the server is out of memory', T, async (t) => {
    /**
     * Sends 1 MiB over 8 read streams and returns what the server granted back on stream 0,
     * once that is at least `enough`. What was read comes back in batches: up to half the
     * window may stay owed while the peer holds more credit than that (no stall).
     */
    async function granted(serverOptions: Parameters<typeof serveForTest>[1], enough: number): Promise<number> {
      const { server, port } = await serveForTest(t, serverOptions);
      server.on('connection', (con) => con.on('stream', (stream: MuxStream) => stream.resume()));
      const { peer } = await rawClientForTest(t, server, port);
      const chunk = randomBytes(64 * 1024);
      for (let i = 0; i < 8; i++) peer.open(1 + 2 * i, i);
      for (let k = 0; k < 2; k++) for (let i = 0; i < 8; i++) peer.data(1 + 2 * i, chunk); // 1 MiB: all of the first window
      const total = (): number => peer.framesOf(FrameType.WINDOW_UPDATE, 0).reduce((sum, f) => sum + f.payload.readUInt32BE(0), 0);
      // Credit comes back as the streams are read: wait for all of it (a loaded machine reads
      // late), then a little longer, so that more than that would be seen too.
      await waitFor(() => total() >= enough, 10_000, `at least ${enough} bytes of connection credit`);
      await delay(100);
      await peer.sync();
      assert.equal(peer.framesOf(FrameType.ACCEPT).length, 8, 'every stream was accepted');
      return total();
    }
    // 8 streams offer 2 MiB of window: the 1 MiB connection window grows toward it.
    const grown = await granted({}, MiB + 1);
    assert.ok(grown > MiB, `granted ${grown} bytes for 1 MiB read`);
    // A server whose memory cannot cover the growth gives back what was read, and no more.
    const flat = await granted({ maxServerMemory: 512 * 1024 }, MiB / 2);
    assert.ok(flat >= MiB / 2 && flat <= MiB, `granted ${flat} bytes for 1 MiB read`);
  });

  test('a connection WINDOW_UPDATE that overflows 2^31-1 is a FLOW_CONTROL_ERROR; one of 0 a PROTOCOL_ERROR', T, async (t) => {
    const { server, port } = await serveForTest(t);
    const increment = (n: number): Buffer => {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(n);
      return encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, payload);
    };
    const first = await rawClientForTest(t, server, port);
    first.peer.send(increment(0x7fffffff));
    assert.equal((await goAwayOf(first.peer)).code, WireErrorCode.FLOW_CONTROL_ERROR);
    const second = await rawClientForTest(t, server, port);
    second.peer.send(increment(0));
    assert.equal((await goAwayOf(second.peer)).code, WireErrorCode.PROTOCOL_ERROR);
  });
});

describe('server-wide limits', () => {
  test('maxConnections: one more client is told OVERLOADED (ERR_OVERLOADED) and the server gets a clientError', T, async (t) => {
    const { server, port } = await serveForTest(t, { maxConnections: 2 });
    const clients: MuxClient[] = [];
    t.after(() => clients.forEach((c) => c.destroy()));
    for (let i = 0; i < 2; i++) clients.push((await connectClient(server, port)).client);
    const clientError = nextEvent(server, 'clientError');
    const third = new MuxClient(port, HOST);
    clients.push(third);
    const [err] = (await nextEvent(third, 'error')) as [MuxError];
    assert.equal(err.code, 'ERR_OVERLOADED');
    assert.match(err.message, /maximum of 2 connections/);
    assert.equal(((await clientError)[0] as MuxError).code, 'ERR_OVERLOADED');
    clients[0].destroy();
    await waitFor(() => server.connectionCount === 1, 5000, 'a place to free up');
    clients.push((await connectClient(server, port)).client);
  });

  test('maxHandshakes: clients that never finish their HELLO hold at most that many places; the next is refused at once', T, async (t) => {
    const { server, port } = await serveForTest(t, { maxHandshakes: 5, handshakeTimeout: 5000 });
    const sockets: net.Socket[] = [];
    t.after(() => sockets.forEach((s) => s.destroy()));
    const halfHello = clientPreface().subarray(0, MAGIC.length + HEADER_LENGTH + 10);
    for (let i = 0; i < 5; i++) {
      const socket = net.connect(port, HOST);
      socket.on('error', () => {});
      socket.write(halfHello);
      sockets.push(socket);
    }
    await waitFor(() => server.handshakeCount === 5, 5000, 'five handshakes in progress');
    const late = net.connect(port, HOST);
    sockets.push(late);
    const answer = await withTimeout(collect(late, 5000), 5000, 'the refusal');
    assert.deepEqual(answer.subarray(0, 4), MAGIC);
    assert.equal(answer[MAGIC.length + 1], Type.GO_AWAY);
    assert.equal(answer.readUInt32BE(MAGIC.length + HEADER_LENGTH), WireErrorCode.OVERLOADED);
    assert.equal(server.handshakeCount, 5);
  });

  test(
    'maxServerMemory: once connections hold it, new connections and the streams of those that filled it are refused with OVERLOADED',
    T,
    async (t) => {
      const { server, port } = await serveForTest(t, { maxBufferedBytes: 8 * MiB, connectionWindow: 2 * MiB, maxServerMemory: 3 * MiB });
      server.on('connection', (con) => con.on('stream', () => {}));
      // A client that holds little, connected before the server filled up.
      const { client: modest } = await connectClient(server, port);
      t.after(() => modest.destroy());
      const chunk = randomBytes(64 * 1024);
      let peer: WirePeer | null = null;
      for (let c = 0; c < 2; c++) {
        // Two connections, each within its 2 MiB connection window, hold 3 MiB together.
        peer = (await rawClientForTest(t, server, port)).peer;
        for (let i = 0; i < 8; i++) peer.open(1 + 2 * i, i);
        for (let i = 0; i < 8; i++) for (let k = 0; k < 3; k++) peer.data(1 + 2 * i, chunk);
        await peer.sync();
      }
      peer = peer!;
      assert.ok(server.memoryUsed >= 3 * MiB, `server holds ${server.memoryUsed}`);
      peer.open(101, 'one more');
      const refusal = codeOf(await peer.frameOf(FrameType.REFUSE, 101));
      assert.equal(refusal.code, WireErrorCode.OVERLOADED);
      assert.match(refusal.reason, /server is out of memory/);
      // Below its fair share (a third of the pool), the modest client still gets its streams.
      await withTimeout(modest.StreamPool.createStream('still welcome'), 5000, 'a stream for the modest client');
      const late = new MuxClient(port, HOST);
      t.after(() => late.destroy());
      const [err] = (await nextEvent(late, 'error')) as [MuxError];
      assert.equal(err.code, 'ERR_OVERLOADED');
    },
  );

  test('options are checked: a non-positive maxConnections is ERR_INVALID_CONFIG', () => {
    for (const options of [{ maxConnections: 0 }, { maxHandshakes: -1 }, { maxServerMemory: 1.5 }]) {
      assert.throws(
        () => new MuxServer(0, { host: HOST, ...options }),
        (err: unknown) => err instanceof MuxError && err.code === 'ERR_INVALID_CONFIG',
      );
    }
  });
});

describe('work without data is rate-limited', () => {
  test(
    'open+reset pairs ("rapid reset") past the burst end the connection with ENHANCE_YOUR_CALM; others are served meanwhile',
    T,
    async (t) => {
      const { server, port } = await serveForTest(t);
      server.on('connection', (con) => con.on('stream', (stream: MuxStream) => stream.pipe(stream)));
      const { peer } = await rawClientForTest(t, server, port);
      const frames: Buffer[] = [];
      for (let i = 0; i < 20_000; i++) {
        frames.push(encodeFrame(FrameType.OPEN, 0, 1 + 2 * i, Buffer.from('null')));
        frames.push(encodeFrame(FrameType.RESET, 0, 1 + 2 * i, encodeCodeAndReason(WireErrorCode.CANCEL)));
      }
      peer.send(...frames);
      const goAway = await goAwayOf(peer);
      assert.equal(goAway.code, WireErrorCode.ENHANCE_YOUR_CALM);
      assert.match(goAway.reason, /stream resets/);
      await withTimeout(peer.closed, 5000, 'the flooder to be closed');
      await expectStillServing(t, server, port, true);
    },
  );

  test('a ping flood and a flood of empty DATA frames end the same way; the client sees ERR_RATE_LIMIT', T, async (t) => {
    const { server, port } = await serveForTest(t);
    server.on('connection', (con) => con.on('stream', () => {}));
    const pinger = await rawClientForTest(t, server, port);
    const ping = encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8));
    pinger.peer.send(...Array.from({ length: 5000 }, () => ping));
    assert.equal((await goAwayOf(pinger.peer)).code, WireErrorCode.ENHANCE_YOUR_CALM);
    const empty = await rawClientForTest(t, server, port);
    empty.peer.open(1, null);
    empty.peer.send(...Array.from({ length: 5000 }, () => encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(0))));
    const goAway = await goAwayOf(empty.peer);
    assert.equal(goAway.code, WireErrorCode.ENHANCE_YOUR_CALM);
    assert.match(goAway.reason, /empty DATA frames/);
  });

  test('a client that resets now and then, well within the rate, is never cut off', T, async (t) => {
    const { server, port } = await serveForTest(t);
    server.on('connection', (con) => con.on('stream', (stream: MuxStream) => stream.pipe(stream)));
    const { client } = await connectClient(server, port);
    t.after(() => client.destroy());
    for (let i = 0; i < 300; i++) {
      const stream = await client.StreamPool.createStream(i);
      stream.destroy();
      if (i % 100 === 99) await delay(50);
    }
    await withTimeout(client.ping(), 5000, 'a ping after 300 cancelled streams');
    assert.equal(client.ready, true);
  });
});

describe('peers that do not read, and GO_AWAY discipline', () => {
  test('a peer that keeps sending but never reads is closed after keepAliveTimeout (ERR_KEEPALIVE_TIMEOUT)', T, async (t) => {
    const keepAlive = { keepAliveInterval: 200, keepAliveTimeout: 600 };
    const { server, port } = await serveForTest(t, keepAlive);
    const errors: MuxError[] = [];
    server.on('connection', (con) => {
      con.on('error', (err: MuxError) => errors.push(err));
      con.on('stream', (stream: MuxStream) => stream.pipe(stream));
    });
    const { peer, con } = await rawClientForTest(t, server, port);
    peer.socket.pause(); // reads nothing from here on
    peer.open(1, 'echo');
    // Within its credit (one stream window), then it keeps talking (window updates for the
    // server's echo) so that the server always hears from it, but it reads nothing.
    for (let k = 0; k < DEFAULTS.initialWindow / DEFAULTS.maxFrameSize; k++) peer.data(1, randomBytes(DEFAULTS.maxFrameSize));
    const sending = (async () => {
      for (let i = 0; i < 400 && !peer.socket.destroyed; i++) {
        const increment = Buffer.alloc(4);
        increment.writeUInt32BE(1);
        peer.send(encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, increment));
        await delay(20);
      }
    })();
    await withTimeout(nextEvent(con, 'close', 15_000), 15_000, 'the server to drop a peer that reads nothing');
    await sending;
    assert.equal(errors[0]?.code, 'ERR_KEEPALIVE_TIMEOUT');
    assert.match(errors[0].message, /keepalive ping|has not read anything/);
  });

  test("an OPEN after the peer's own GO_AWAY is a protocol error", T, async (t) => {
    const { server, port } = await serveForTest(t);
    server.on('connection', (con) => con.on('stream', () => {}));
    const { peer } = await rawClientForTest(t, server, port);
    peer.open(1, 'keeps the connection open after the GO_AWAY');
    await peer.frameOf(FrameType.ACCEPT, 1);
    peer.send(encodeFrame(FrameType.GO_AWAY, 0, 0, encodeCodeAndReason(WireErrorCode.NORMAL, 'closing')));
    peer.open(3, 'after my own GO_AWAY');
    const goAway = await goAwayOf(peer);
    assert.equal(goAway.code, WireErrorCode.PROTOCOL_ERROR);
    assert.match(goAway.reason, /after the peer's own GO_AWAY/);
    assert.equal(peer.framesOf(FrameType.ACCEPT).length, 1, 'only the stream opened before the GO_AWAY');
  });

  test('a version 1 client is told, in version 1 framing, that its version is no longer supported', T, async (t) => {
    const { port } = await serveForTest(t);
    const socket = net.connect(port, HOST);
    t.after(() => socket.destroy());
    const preface = clientPreface();
    preface[MAGIC.length] = 1; // the header's version byte
    socket.write(preface);
    const answer = await collect(socket, 5000);
    assert.deepEqual(answer.subarray(0, 4), MAGIC);
    assert.equal(answer[MAGIC.length], 1, 'the GO_AWAY is framed as version 1');
    assert.equal(answer[MAGIC.length + 1], Type.GO_AWAY);
    assert.equal(answer.readUInt32BE(MAGIC.length + HEADER_LENGTH), WireErrorCode.PROTOCOL_ERROR);
    assert.match(answer.toString('utf8', MAGIC.length + HEADER_LENGTH + 4), /version 1 is no longer supported/);
  });
});
