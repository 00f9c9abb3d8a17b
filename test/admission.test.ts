/**
 * Admission: the server's `authenticate(hello, info)` decides about each client before it
 * is a `connection` and before any of its streams is looked at; `acceptStream(meta, con)`
 * decides about each stream, on either side. Sync and async verdicts alike.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  MuxClient,
  MuxError,
  WireErrorCode,
  type AcceptVerdict,
  type ClientInfo,
  type JsonValue,
  type MuxConnection,
  type MuxServer,
  type MuxServerOptions,
  type MuxStream,
} from '../src/index';
import { HOST, startServer, startTcp, stopServer } from './helpers/mux';
import { delay, nextEvent, recordEvents, waitFor, withTimeout, type EventLog } from './helpers/async';
import { collect, openPair } from './helpers/streams';
import { codeOf, connectWirePeer, encodeFrame, FrameType } from './helpers/wire-peer';

const T = { timeout: 10_000 };
const SECRET = 's3cr3t-token';

/**
 * Compares a presented secret with the expected one in constant time. Hashing both first
 * gives equal lengths (timingSafeEqual requires them) without revealing the secret's length.
 */
function sameSecret(presented: unknown, expected: string): boolean {
  if (typeof presented !== 'string') return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The example authenticate: `hello` must be `{ token }` with the right secret. */
function checkToken(hello: JsonValue): boolean {
  return typeof hello === 'object' && hello !== null && !Array.isArray(hello) && sameSecret(hello.token, SECRET);
}

interface Watched {
  server: MuxServer;
  port: number;
  serverEvents: EventLog;
  clientErrors: unknown[];
}

async function watchedServer(t: TestContext, options: MuxServerOptions): Promise<Watched> {
  const { server, port } = await startServer(options);
  t.after(() => stopServer(server));
  const clientErrors: unknown[] = [];
  server.on('clientError', (err) => clientErrors.push(err));
  const serverEvents = recordEvents(server, ['connection', 'error']);
  return { server, port, serverEvents, clientErrors };
}

/** A MuxClient that records its events and onConnected calls; settles at close or connect. */
function watchedClient(t: TestContext, port: number, hello?: JsonValue) {
  let connected = 0;
  const client = new MuxClient(port, HOST, hello === undefined ? {} : { hello }, () => connected++);
  t.after(() => client.destroy());
  const events = recordEvents(client, ['connect', 'error', 'close']);
  return { client, events, connected: () => connected };
}

describe('authenticate', () => {
  test(
    "authenticate is called with the client's hello and info.remoteAddress, and the right secret, compared in constant time, is accepted",
    T,
    async (t) => {
      const calls: [JsonValue, ClientInfo][] = [];
      const { server, port, serverEvents } = await watchedServer(t, {
        authenticate: (hello, info) => {
          calls.push([hello, info]);
          return checkToken(hello);
        },
      });
      const connection = nextEvent(server, 'connection');
      const { client, connected } = watchedClient(t, port, { token: SECRET, user: 'alice' });
      await nextEvent(client, 'connect');
      const [serverCon] = (await connection) as [MuxConnection];
      assert.equal(calls.length, 1);
      const [hello, info] = calls[0];
      assert.deepEqual(hello, { token: SECRET, user: 'alice' });
      assert.equal(info.remoteAddress, HOST);
      assert.equal(typeof info.remotePort, 'number');
      assert.equal(connected(), 1);
      assert.deepEqual(serverCon.peerHello, { token: SECRET, user: 'alice' });
      assert.deepEqual(serverEvents.names, ['connection']);
    },
  );

  test('authenticate gets null as hello when the client sent none', T, async (t) => {
    const seen: JsonValue[] = [];
    const { port } = await watchedServer(t, {
      authenticate: (hello) => {
        seen.push(hello);
        return true;
      },
    });
    const { client } = watchedClient(t, port);
    await nextEvent(client, 'connect');
    assert.deepEqual(seen, [null]);
  });

  const accepting: [string, () => unknown][] = [
    ['a sync true', () => true],
    ['an async true', async () => true],
    ['a truthy object', () => ({ user: 'alice' })],
  ];
  for (const [what, verdict] of accepting) {
    test(`${what} from authenticate accepts: onConnected runs, the server emits connection, and streams flow`, T, async (t) => {
      const { server, port, serverEvents, clientErrors } = await watchedServer(t, { authenticate: verdict as () => boolean }); // JS callers may return anything
      const connection = nextEvent(server, 'connection');
      const { client, events, connected } = watchedClient(t, port, { token: SECRET });
      await nextEvent(client, 'connect');
      const [serverCon] = (await connection) as [MuxConnection];
      assert.equal(connected(), 1);
      const { local, remote } = await openPair(client, serverCon, 'after auth');
      local.end('authenticated');
      assert.equal((await collect(remote)).toString(), 'authenticated');
      assert.deepEqual(events.names, ['connect']);
      assert.deepEqual(serverEvents.names, ['connection']);
      assert.deepEqual(clientErrors, []);
    });
  }

  const rejecting: [string, (hello: JsonValue) => unknown][] = [
    ['a wrong secret', (hello) => checkToken(hello)],
    ['a sync false', () => false],
    ['an async false', async () => false],
    ['a falsy undefined', () => undefined],
    [
      'a throw',
      () => {
        throw new Error('user database unavailable');
      },
    ],
    [
      'an async rejection',
      async () => {
        await delay(10);
        throw new Error('token service down');
      },
    ],
  ];
  for (const [what, verdict] of rejecting) {
    test(
      `${what} from authenticate rejects: the client emits error ERR_AUTH_FAILED and never calls onConnected, and the server emits clientError, never error or connection`,
      T,
      async (t) => {
        const { server, port, serverEvents, clientErrors } = await watchedServer(t, { authenticate: verdict as () => boolean }); // JS callers may return anything
        const { client, events, connected } = watchedClient(t, port, { token: 'wrong' });
        await withTimeout(nextEvent(client, 'close'), 5000, 'the rejected client to close');
        assert.deepEqual(events.names, ['error', 'close']);
        const err = events.args.get('error');
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, 'ERR_AUTH_FAILED');
        assert.equal(connected(), 0);
        await waitFor(() => clientErrors.length === 1, 2000, 'clientError');
        assert.ok(clientErrors[0] instanceof MuxError);
        assert.equal(clientErrors[0].code, 'ERR_AUTH_FAILED');
        await delay(50);
        assert.deepEqual(serverEvents.names, [], 'neither connection nor error on the server');
        assert.equal(server.connectionCount, 0);
        await assert.rejects(client.StreamPool.createStream('after rejection'), { name: 'MuxError' });
      },
    );
  }

  test(
    'no stream is looked at before authenticate accepts: an OPEN sent right behind the HELLO gets no answer until then, and arrives after connection',
    T,
    async (t) => {
      let decide!: (verdict: boolean) => void;
      const { server, port, serverEvents } = await watchedServer(t, {
        authenticate: () => new Promise<boolean>((resolve) => (decide = resolve)),
      });
      const order: string[] = [];
      const streams: MuxStream[] = [];
      server.on('connection', (con: MuxConnection) => {
        order.push('connection');
        con.on('stream', (stream: MuxStream) => {
          order.push('stream');
          streams.push(stream);
        });
      });
      const peer = await connectWirePeer(port);
      t.after(() => peer.socket.destroy());
      peer.open(1, 'eager');
      peer.data(1, 'sent before being let in', true);
      await waitFor(() => decide !== undefined, 5000, 'authenticate to be called');
      await delay(100);
      assert.equal(peer.frames.length, 0, 'the server says nothing while it decides');
      assert.deepEqual(order, []);

      decide(true);
      await peer.frameOf(FrameType.ACCEPT, 1);
      assert.equal(peer.frames[0].type, FrameType.HELLO, 'the HELLO comes first');
      assert.deepEqual(order, ['connection', 'stream']);
      assert.equal((await collect(streams[0])).toString(), 'sent before being let in');
      assert.deepEqual(serverEvents.names, ['connection']);
    },
  );

  test('a client rejected by authenticate never had its OPEN looked at: it gets only the magic and GO_AWAY AUTH_FAILED', T, async (t) => {
    let decide!: (verdict: boolean) => void;
    const { port, serverEvents, clientErrors } = await watchedServer(t, {
      authenticate: () => new Promise<boolean>((resolve) => (decide = resolve)),
    });
    const peer = await connectWirePeer(port);
    t.after(() => peer.socket.destroy());
    peer.open(1, 'eager');
    peer.send(encodeFrame(FrameType.DATA, 0, 1, Buffer.from('never delivered')));
    await waitFor(() => decide !== undefined, 5000, 'authenticate to be called');
    decide(false);
    await withTimeout(peer.closed, 5000, 'the server to close the rejected connection');
    assert.deepEqual(
      peer.frames.map((f) => f.type),
      [FrameType.GO_AWAY],
    );
    assert.equal(codeOf(peer.frames[0]).code, WireErrorCode.AUTH_FAILED);
    assert.equal(peer.decodeError, null, 'the magic came first');
    await waitFor(() => clientErrors.length === 1, 2000, 'clientError');
    assert.deepEqual(serverEvents.names, []);
  });

  test("a MuxClient's stream opened before a rejection is rejected, and the server never sees it", T, async (t) => {
    const { server, port } = await watchedServer(t, { authenticate: async () => false });
    const seen: unknown[] = [];
    server.on('connection', (con: MuxConnection) => con.on('stream', (s: MuxStream) => seen.push(s.meta)));
    const { client } = watchedClient(t, port, { token: 'wrong' });
    const early = client.StreamPool.createStream('too early');
    await assert.rejects(withTimeout(early, 5000, 'the early stream'), { name: 'MuxError' });
    await delay(50);
    assert.deepEqual(seen, []);
  });
});

describe('acceptStream', () => {
  test("the server's acceptStream gets the meta and the very connection object of its connection event", T, async (t) => {
    const calls: [JsonValue, MuxConnection][] = [];
    const setup = await startTcp({
      server: {
        acceptStream: (meta, con) => {
          calls.push([meta, con]);
        },
      },
    });
    t.after(() => setup.cleanup());
    await openPair(setup.client, setup.serverCon, { route: '/files', n: 1 });
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0][0], { route: '/files', n: 1 });
    assert.equal(calls[0][1], setup.serverCon);
  });

  test("the client's acceptStream gets the meta and the client itself, and can refuse the server's streams", T, async (t) => {
    const calls: [JsonValue, MuxConnection][] = [];
    const setup = await startTcp({
      client: {
        acceptStream: (meta, con) => {
          calls.push([meta, con]);
          return meta === 'push' ? true : 'the client takes only push streams';
        },
      },
    });
    t.after(() => setup.cleanup());
    const { local, remote } = await openPair(setup.serverCon, setup.client, 'push');
    local.end('pushed');
    assert.equal((await collect(remote)).toString(), 'pushed');
    await assert.rejects(setup.serverCon.StreamPool.createStream('pull'), (err: unknown) => {
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_STREAM_REFUSED');
      assert.match(err.message, /the client takes only push streams/);
      return true;
    });
    assert.deepEqual(
      calls.map(([meta]) => meta),
      ['push', 'pull'],
    );
    for (const [, con] of calls) assert.equal(con, setup.client);
  });

  const accepting: [string, () => unknown][] = [
    ['true', () => true],
    ['undefined', () => undefined],
    ['an async true', async () => true],
    ['an async undefined', async () => {}],
  ];
  for (const [what, verdict] of accepting) {
    test(`acceptStream returning ${what} accepts the stream`, T, async (t) => {
      const setup = await startTcp({ server: { acceptStream: verdict as () => AcceptVerdict } }); // JS callers may return anything
      t.after(() => setup.cleanup());
      const { local, remote } = await openPair(setup.client, setup.serverCon, 'welcome');
      assert.equal(remote.meta, 'welcome');
      local.end('data');
      assert.equal((await collect(remote)).toString(), 'data');
    });
  }

  const refusing: [string, () => unknown, RegExp | null][] = [
    ['false', () => false, null],
    ['a string', () => 'quota exceeded for this user', /quota exceeded for this user/],
    [
      'a throw',
      () => {
        throw new Error('route not found');
      },
      /route not found/,
    ],
    ['an async false', async () => false, null],
    ['an async string', async () => 'try again later', /try again later/],
    [
      'an async rejection',
      async () => {
        await delay(10);
        throw new Error('lookup failed');
      },
      /lookup failed/,
    ],
  ];
  for (const [what, verdict, reason] of refusing) {
    const outcome = reason ? 'with that reason in its message' : '';
    test(
      `acceptStream returning ${what} refuses: the opener gets ERR_STREAM_REFUSED ${outcome}, the stream never reaches the application, and the connection carries on`.replace(
        / +/g,
        ' ',
      ),
      T,
      async (t) => {
        const setup = await startTcp({ server: { acceptStream: (meta) => (meta === 'judged' ? (verdict() as AcceptVerdict) : true) } });
        t.after(() => setup.cleanup());
        const delivered: JsonValue[] = [];
        setup.serverCon.on('stream', (stream: MuxStream) => delivered.push(stream.meta));
        await assert.rejects(withTimeout(setup.client.StreamPool.createStream('judged'), 5000, 'the verdict'), (err: unknown) => {
          assert.ok(err instanceof MuxError);
          assert.equal(err.code, 'ERR_STREAM_REFUSED');
          if (reason) assert.match(err.message, reason);
          return true;
        });
        const withAck = setup.client.StreamPool.createStream('judged', () => assert.fail('never accepted'));
        const [ackErr] = await nextEvent(withAck, 'error');
        assert.equal((ackErr as MuxError).code, 'ERR_STREAM_REFUSED');
        const { local, remote } = await openPair(setup.client, setup.serverCon, 'fine');
        local.end('still works');
        assert.equal((await collect(remote)).toString(), 'still works');
        assert.deepEqual(delivered, ['fine']);
        assert.equal(setup.serverCon.stats().streamsOpenRemote, 1);
      },
    );
  }
});
