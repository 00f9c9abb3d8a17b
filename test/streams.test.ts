/**
 * Opening streams (with and without ack), meta and ids, and streams as real Duplexes in
 * both directions: pipe, pipeline, for await, half-close and reset. Every body runs over
 * TCP and over an in-memory duplex pair.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Duplex, PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Socket } from 'node:net';
import { MuxClient, MuxError, MuxStream, type JsonValue, type MuxConnection } from '../src/index';
import {
  HOST,
  startServer,
  startTcp,
  stopServer,
  tcpTransport,
  transports,
  type ConnectedPair,
  type PairOptions,
  type Transport,
} from './helpers/mux';
import { delay, nextEvent, recordEvents, sha256, withTimeout } from './helpers/async';
import { collect, nextStream, openPair } from './helpers/streams';

const T = { timeout: 15_000 };

async function connect(t: TestContext, transport: Transport, options?: PairOptions): Promise<ConnectedPair> {
  const pair = await transport.connect(options);
  t.after(() => pair.cleanup());
  return pair;
}

for (const transport of transports) {
  describe(`opening streams over ${transport.name}`, () => {
    test('createStream with ack returns the stream at once and calls ack after the peer got its stream event', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const order: string[] = [];
      const accepted = new Promise<MuxStream>((resolve) => {
        server.on('stream', (stream: MuxStream) => {
          order.push('peer stream event');
          resolve(stream);
        });
      });
      let acked: MuxStream | null = null;
      let returned: MuxStream | null = null;
      const ackCalled = new Promise<void>((resolve) => {
        const stream = client.StreamPool.createStream({ hello: 'world' }, (s) => {
          order.push('ack');
          acked = s;
          resolve();
        });
        assert.ok(stream instanceof MuxStream, 'returned synchronously');
        assert.ok(stream instanceof Duplex);
        assert.equal(order.length, 0, 'ack is not called synchronously');
        // Written before the peer accepted it.
        stream.end('written before accept');
        returned = stream;
      });
      await withTimeout(ackCalled, 5000, 'ack');
      assert.deepEqual(order, ['peer stream event', 'ack']);
      assert.equal(acked, returned, 'ack gets the stream createStream returned');
      const remote = await accepted;
      assert.equal((await collect(remote)).toString(), 'written before accept');
    });

    test('createStream without ack returns a Promise that resolves with the stream once the peer accepted it', T, async (t) => {
      const { client, server } = await connect(t, transport);
      let peerSawIt = false;
      server.on('stream', (stream: MuxStream) => {
        peerSawIt = true;
        stream.end('hi from the acceptor');
      });
      const pending = client.StreamPool.createStream({ n: 1 });
      assert.ok(pending instanceof Promise);
      const stream = await withTimeout(pending, 5000, 'createStream');
      assert.ok(peerSawIt, 'resolved only after the peer stream event');
      assert.ok(stream instanceof MuxStream);
      assert.equal((await collect(stream)).toString(), 'hi from the acceptor');
    });

    test('a stream opened with ack is writable before it is accepted and delivers those bytes in order', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const payload = randomBytes(300_000); // more than one window, written before any ACCEPT
      const remote = nextStream(server);
      const stream = client.StreamPool.createStream('early writer', () => {});
      stream.end(payload);
      const received = await collect(await remote);
      assert.equal(sha256(received), sha256(payload));
    });

    const metas: [string, JsonValue | undefined, JsonValue][] = [
      ['no meta (null by default)', undefined, null],
      ['null', null, null],
      ['a string', 'just a string', 'just a string'],
      ['a number', 42.5, 42.5],
      ['false', false, false],
      ['an empty string', '', ''],
      ['the README object', { type: 'update', file: 'xy.js' }, { type: 'update', file: 'xy.js' }],
      [
        'nested objects, arrays and unicode',
        { a: { b: { c: [1, 'two', { three: null, four: true }] } }, emoji: '🚀 ü ✓', list: [[], {}] },
        { a: { b: { c: [1, 'two', { three: null, four: true }] } }, emoji: '🚀 ü ✓', list: [[], {}] },
      ],
    ];
    for (const [what, meta, expected] of metas) {
      test(`meta that is ${what} is deep-equal on both sides`, T, async (t) => {
        const { client, server } = await connect(t, transport);
        const { local, remote } = await openPair(client, server, meta);
        assert.deepEqual(local.meta, expected);
        assert.deepEqual(remote.meta, expected);
        assert.equal(local.id, remote.id);
      });
    }

    test('meta the server sends to the client is deep-equal too', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const meta = { from: 'server', deep: { list: [1, 2, { x: 'y' }] } };
      const { local, remote } = await openPair(server, client, meta);
      assert.deepEqual(local.meta, meta);
      assert.deepEqual(remote.meta, meta);
    });

    test('a stream has the same id on both sides: odd when the client opened it, even when the server did', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const clientIds: number[] = [];
      const serverIds: number[] = [];
      for (let i = 0; i < 5; i++) {
        const a = await openPair(client, server, { i });
        assert.equal(a.local.id, a.remote.id);
        clientIds.push(a.local.id);
        const b = await openPair(server, client, { i });
        assert.equal(b.local.id, b.remote.id);
        serverIds.push(b.local.id);
      }
      for (const id of clientIds) assert.equal(id % 2, 1, `client-opened id ${id} is odd`);
      for (const id of serverIds) assert.equal(id % 2, 0, `server-opened id ${id} is even`);
      for (const id of [...clientIds, ...serverIds]) assert.ok(id > 0);
      assert.deepEqual(
        clientIds,
        [...clientIds].sort((x, y) => x - y),
        'ids increase',
      );
      assert.equal(new Set([...clientIds, ...serverIds]).size, 10, 'no id is reused');
    });

    test('a refused stream rejects the Promise with a MuxError, and destroys the stream returned with ack', T, async (t) => {
      const { client, server } = await connect(t, transport, { server: { acceptStream: (meta) => meta !== 'forbidden' } });
      const delivered: JsonValue[] = [];
      server.on('stream', (stream: MuxStream) => delivered.push(stream.meta));
      await assert.rejects(client.StreamPool.createStream('forbidden'), (err: unknown) => {
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, 'ERR_STREAM_REFUSED');
        return true;
      });
      const ack = t.mock.fn();
      const stream = client.StreamPool.createStream('forbidden', ack);
      const events = recordEvents(stream, ['error', 'close']);
      await nextEvent(stream, 'close');
      assert.deepEqual(events.names, ['error', 'close']);
      assert.equal((events.args.get('error') as MuxError).code, 'ERR_STREAM_REFUSED');
      assert.equal(ack.mock.callCount(), 0, 'ack is not called for a refused stream');
      // The connection is still fine.
      const allowed = await withTimeout(client.StreamPool.createStream('allowed'), 5000, 'allowed stream');
      assert.equal(allowed.meta, 'allowed');
      assert.deepEqual(delivered, ['allowed'], 'the application never saw the refused streams');
    });

    test('createStream on a closed connection rejects with ERR_CONNECTION_CLOSED', T, async (t) => {
      const { client } = await connect(t, transport);
      client.destroy();
      await assert.rejects(client.StreamPool.createStream({ late: true }), { name: 'MuxError', code: 'ERR_CONNECTION_CLOSED' });
    });
  });

  describe(`streams are Duplexes in both directions over ${transport.name}`, () => {
    test('pipe works both ways: an echo through stream.pipe(stream) returns every byte', T, async (t) => {
      const { client, server } = await connect(t, transport);
      server.on('stream', (stream: MuxStream) => stream.pipe(stream));
      const stream = await client.StreamPool.createStream('echo');
      const payload = randomBytes(1_500_000);
      const sink = new PassThrough();
      const echoed = collect(sink);
      stream.pipe(sink);
      Readable.from(chunks(payload, 7_000)).pipe(stream);
      assert.equal(sha256(await echoed), sha256(payload));
    });

    test('stream/promises pipeline moves data from client to server and back', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const upload = randomBytes(700_000);
      const download = randomBytes(900_000);
      const serverDone = new Promise<Buffer>((resolve, reject) => {
        server.on('stream', (stream: MuxStream) => {
          const received: Buffer[] = [];
          Promise.all([
            pipeline(
              stream,
              new Writable({
                write(chunk: Buffer, _enc, cb) {
                  received.push(chunk);
                  cb();
                },
              }),
            ),
            pipeline(Readable.from(chunks(download, 10_000)), stream),
          ]).then(() => resolve(Buffer.concat(received)), reject);
        });
      });
      const stream = await client.StreamPool.createStream('pipeline');
      const downloaded: Buffer[] = [];
      await Promise.all([
        pipeline(Readable.from(chunks(upload, 16_384)), stream),
        pipeline(stream, async function (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) downloaded.push(chunk);
        }),
      ]);
      assert.equal(sha256(await withTimeout(serverDone, 5000, 'server pipelines')), sha256(upload));
      assert.equal(sha256(Buffer.concat(downloaded)), sha256(download));
    });

    test('for await reads a stream to its end', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const payload = randomBytes(512 * 1024);
      server.on('stream', (stream: MuxStream) => stream.end(payload));
      const stream = await client.StreamPool.createStream(null);
      stream.end();
      const parts: Buffer[] = [];
      for await (const chunk of stream) parts.push(chunk as Buffer);
      assert.equal(sha256(Buffer.concat(parts)), sha256(payload));
    });

    test('end() half-closes: the peer gets end and can still write back', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const { local, remote } = await openPair(client, server, 'half-close');
      const remoteEvents = recordEvents(remote, ['end', 'finish', 'close', 'error']);
      const localEvents = recordEvents(local, ['end', 'finish', 'close', 'error']);
      const remoteData = collect(remote);
      local.end('question');
      assert.equal((await remoteData).toString(), 'question');
      assert.deepEqual(remoteEvents.names, ['end'], 'the peer saw end and is still open');
      assert.equal(remote.writable, true, 'the peer can still write');

      const answer = collect(local);
      await delay(20);
      remote.write('answer, ');
      remote.end('after your end');
      assert.equal((await answer).toString(), 'answer, after your end');
      await Promise.all([local.closed ? null : nextEvent(local, 'close'), remote.closed ? null : nextEvent(remote, 'close')]);
      assert.deepEqual(localEvents.names, ['finish', 'end', 'close']);
      assert.deepEqual(remoteEvents.names, ['end', 'finish', 'close']);
      assert.equal(local.errored, null);
      assert.equal(remote.errored, null);
    });

    test('destroy(err) resets the stream: the peer gets error ERR_STREAM_RESET, then close, never end', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const { local, remote } = await openPair(client, server, 'reset');
      const remoteEvents = recordEvents(remote, ['end', 'close', 'error']);
      const localEvents = recordEvents(local, ['end', 'close', 'error']);
      remote.resume();
      local.write('some bytes first');
      await delay(20);
      const mine = new Error('I give up');
      local.destroy(mine);
      await nextEvent(remote, 'close');
      assert.deepEqual(remoteEvents.names, ['error', 'close']);
      const err = remoteEvents.args.get('error');
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_STREAM_RESET');
      assert.equal(remote.errored, err);
      assert.deepEqual(localEvents.names, ['error', 'close']);
      assert.equal(localEvents.args.get('error'), mine, 'the local side sees its own error');
    });

    test('destroy() without an error resets the peer the same way, and the server can reset too', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const a = await openPair(client, server, 'reset by opener');
      const b = await openPair(server, client, 'reset by the server');
      const aEvents = recordEvents(a.remote, ['end', 'close', 'error']);
      const bEvents = recordEvents(b.remote, ['end', 'close', 'error']);
      a.local.destroy();
      b.remote.destroy(); // the client (acceptor) resets the server's stream; b.local sees it
      const bLocalEvents = recordEvents(b.local, ['end', 'close', 'error']);
      await Promise.all([nextEvent(a.remote, 'close'), nextEvent(b.local, 'close')]);
      assert.deepEqual(aEvents.names, ['error', 'close']);
      assert.equal((aEvents.args.get('error') as MuxError).code, 'ERR_STREAM_RESET');
      assert.deepEqual(bLocalEvents.names, ['error', 'close']);
      assert.equal((bLocalEvents.args.get('error') as MuxError).code, 'ERR_STREAM_RESET');
      assert.deepEqual(bEvents.names, ['close'], 'destroy() without error emits only close locally');
    });

    test('a stream without an error listener whose peer resets it closes with errored set and throws nothing', T, async (t) => {
      const { client, server } = await connect(t, transport);
      const { local, remote } = await openPair(client, server, 'no listener');
      assert.equal(remote.listenerCount('error'), 0);
      const closed = nextEvent(remote, 'close');
      local.on('error', () => {}); // our own error, on our side
      local.destroy(new Error('reset on purpose'));
      await closed;
      assert.ok(remote.errored instanceof MuxError);
      assert.equal(remote.errored.code, 'ERR_STREAM_RESET');
      assert.equal(remote.destroyed, true);
      // The connection carries on.
      const again = await openPair(client, server, 'after the reset');
      again.local.end('still fine');
      assert.equal((await collect(again.remote)).toString(), 'still fine');
    });
  });
}

describe('a MuxClient over TCP', () => {
  test('onConnected runs before any stream the server opened at once reaches the client', { timeout: 10_000 }, async (t) => {
    const { server, port } = await startServer();
    t.after(() => stopServer(server));
    server.on('connection', (con: MuxConnection) => {
      con.StreamPool.createStream({ at: 'once' }, (stream) => stream.end('first words'));
    });
    const order: string[] = [];
    const client = new MuxClient(port, HOST, () => order.push('onConnected'));
    t.after(() => client.destroy());
    // Listening from the start must not let the stream overtake onConnected.
    const [stream] = (await nextEvent(client, 'stream')) as [MuxStream];
    order.push('stream');
    assert.deepEqual(order, ['onConnected', 'stream']);
    assert.deepEqual(stream.meta, { at: 'once' });
    assert.equal((await collect(stream)).toString(), 'first words');
  });

  test('the client and the server connection report the address of their peer', { timeout: 10_000 }, async (t) => {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    assert.equal(setup.client.remoteAddress, HOST);
    assert.equal(setup.client.remotePort, setup.port);
    assert.equal(setup.serverCon.remoteAddress, HOST);
    assert.equal(setup.serverCon.remotePort, (setup.client.transportSocket as Socket).localPort);
    assert.equal(setup.client.streamPool, setup.client.StreamPool, 'streamPool is StreamPool');
    assert.equal(setup.server.connectionCount, 1);
  });
});

describe('a client that attaches its stream listener late', () => {
  test('streams the server opened before the client listened are held and delivered once it listens', { timeout: 10_000 }, async (t) => {
    const pair = await connect(t, tcpTransport);
    const opened = [1, 2, 3].map((n) => pair.server.StreamPool.createStream({ n }));
    await delay(100);
    assert.equal(pair.client.stats().pendingStreams, 3, 'the client holds them');
    const seen: number[] = [];
    pair.client.on('stream', (stream: MuxStream) => seen.push((stream.meta as { n: number }).n));
    const streams = await withTimeout(Promise.all(opened), 5000, 'the held streams to be accepted');
    assert.deepEqual(seen, [1, 2, 3], 'delivered in the order they were opened');
    assert.deepEqual(
      streams.map((s) => s.meta),
      [{ n: 1 }, { n: 2 }, { n: 3 }],
    );
  });
});

function* chunks(buffer: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < buffer.length; offset += size) yield buffer.subarray(offset, offset + size);
}
