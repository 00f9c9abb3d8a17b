/**
 * Lifecycle: graceful close (GO_AWAY, no new streams, streams in flight finish, bounded by
 * closeTimeout), server.close(), destroy(), close/destroy idempotent in every state, and
 * the stream-level lessons of other muxers: a write to a stream the peer destroyed fails
 * fast, and a local failure resets the stream so the peer's read never hangs.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MuxClient, MuxConnection, MuxError, WireErrorCode, type MuxStream } from '../src/index';
import { HOST, connectClient, startServer, startTcp, stopServer } from './helpers/mux';
import { delay, nextEvent, recordEvents, sha256, waitFor, withTimeout, type EventLog } from './helpers/async';
import { collect, openPair } from './helpers/streams';

const T = { timeout: 15_000 };
const MiB = 1024 * 1024;

/** Sends `payload` on `stream` in two halves around `between`, then ends it. */
function halves(payload: Buffer): [Buffer, Buffer] {
  return [payload.subarray(0, payload.length / 2), payload.subarray(payload.length / 2)];
}

describe('graceful close', () => {
  for (const closer of ['client', 'server'] as const) {
    const who = closer === 'client' ? 'client.close()' : "close() on the server's connection";
    test(
      `${who} sends GO_AWAY; afterwards neither side can open a stream (ERR_GOING_AWAY), streams in flight finish with every byte, then both sides close`,
      T,
      async (t) => {
        const setup = await startTcp({ server: { closeTimeout: 5000 }, client: { closeTimeout: 5000 } });
        t.after(() => setup.cleanup());
        const { client, serverCon } = setup;
        const [closing, peer] = closer === 'client' ? [client, serverCon] : [serverCon, client];
        const up = await openPair(client, serverCon, 'up');
        const down = await openPair(serverCon, client, 'down');
        const payloads = [randomBytes(MiB), randomBytes(MiB)];
        // Every direction of both streams has data in flight when close() is called.
        const received = [collect(up.remote), collect(down.remote), collect(up.local), collect(down.local)];
        const writers = [up.local, down.local, up.remote, down.remote];
        writers.forEach((s, i) => s.write(halves(payloads[i % 2])[0]));

        const order: string[] = [];
        const events = [recordEvents(client, ['goaway', 'error', 'close']), recordEvents(serverCon, ['goaway', 'error', 'close'])];
        client.on('close', () => order.push('client close'));
        serverCon.on('close', () => order.push('server close'));
        const goaway = new Promise<number>((resolve) => peer.once('goaway', (code: number) => resolve(code)));
        let callbacks = 0;
        const closed = new Promise<void>((resolve) =>
          closing.close((err) => {
            callbacks++;
            assert.equal(err, undefined);
            resolve();
          }),
        );

        assert.equal(await withTimeout(goaway, 5000, 'the GO_AWAY'), WireErrorCode.NORMAL);
        assert.equal(closing.closing, true);
        assert.equal(peer.closing, true);
        for (const con of [client, serverCon]) {
          await assert.rejects(con.StreamPool.createStream('new after close'), { name: 'MuxError', code: 'ERR_GOING_AWAY' });
        }
        assert.ok(!order.length, 'nothing closed while streams are open');

        writers.forEach((s, i) => s.end(halves(payloads[i % 2])[1]));
        const bytes = await withTimeout(Promise.all(received), 10_000, 'the streams in flight to finish');
        bytes.forEach((b, i) => assert.equal(sha256(b), sha256(payloads[i % 2]), `direction ${i} intact`));
        order.push('streams done');

        await withTimeout(closed, 5000, 'the close callback');
        await waitFor(() => order.length === 3, 5000, 'both sides to close');
        assert.equal(order[0], 'streams done');
        assert.equal(callbacks, 1);
        for (const log of events) assert.ok(!log.names.includes('error'), `no error: ${log.names.join(', ')}`);
        for (const s of writers) assert.equal(s.errored, null);
      },
    );
  }

  test(
    'a stream still open closeTimeout after close() is reset: the closing side sees ERR_GOING_AWAY, its peer sees the stream fail, and both connections close without error',
    T,
    async (t) => {
      const setup = await startTcp({ client: { closeTimeout: 300 } });
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;
      const { local, remote } = await openPair(client, serverCon, 'outlives the grace period');
      local.resume();
      remote.resume();
      local.write('started, never finished');
      const streamEvents = [recordEvents(local, ['end', 'error', 'close']), recordEvents(remote, ['end', 'error', 'close'])];
      const conEvents = [recordEvents(client, ['error', 'close']), recordEvents(serverCon, ['error', 'close'])];

      await withTimeout(new Promise<void>((resolve) => client.close(() => resolve())), 5000, 'the close callback');
      await waitFor(() => streamEvents.every((log) => log.names.includes('close')), 5000, 'both ends of the stream to close');
      const [localLog, remoteLog] = streamEvents as [EventLog, EventLog];
      assert.deepEqual(localLog.names, ['error', 'close']);
      assert.equal((localLog.args.get('error') as MuxError).code, 'ERR_GOING_AWAY');
      assert.deepEqual(remoteLog.names, ['error', 'close'], 'the peer never sees a clean end');
      assert.ok(['ERR_STREAM_RESET', 'ERR_CONNECTION_CLOSED'].includes((remoteLog.args.get('error') as MuxError).code));
      await waitFor(() => conEvents.every((log) => log.names.includes('close')), 5000, 'both connections to close');
      assert.deepEqual(
        conEvents.map((log) => log.names),
        [['close'], ['close']],
      );
    },
  );
});

describe('server.close()', () => {
  test(
    'server.close(cb) closes every connection gracefully: each client gets a goaway, its stream in flight finishes, every connection closes, then cb runs',
    T,
    async (t) => {
      const { server, port } = await startServer({ closeTimeout: 5000 });
      t.after(() => stopServer(server));
      const clients = [];
      for (let i = 0; i < 3; i++) {
        const connected = await connectClient(server, port); // one at a time: each waits for its own connection event
        t.after(() => connected.client.destroy());
        clients.push(connected);
      }
      const transfers = await Promise.all(
        clients.map(async ({ client, serverCon }) => {
          const { local, remote } = await openPair(client, serverCon, 'upload');
          const payload = randomBytes(512 * 1024);
          const arrived = collect(remote);
          local.resume();
          local.write(halves(payload)[0]);
          const events = recordEvents(client, ['goaway', 'error', 'close']);
          return { client, local, remote, payload, arrived, events };
        }),
      );
      const order: string[] = [];
      server.on('close', () => order.push('server close'));
      const closed = new Promise<void>((resolve) =>
        server.close(() => {
          order.push('callback');
          resolve();
        }),
      );

      await waitFor(() => transfers.every(({ events }) => events.names.includes('goaway')), 5000, 'every client to get a goaway');
      for (const { client, local, remote, payload, arrived } of transfers) {
        await assert.rejects(client.StreamPool.createStream('new'), { code: 'ERR_GOING_AWAY' });
        local.end(halves(payload)[1]);
        assert.equal(sha256(await arrived), sha256(payload));
        remote.end();
      }
      await withTimeout(closed, 5000, 'the server close callback');
      assert.deepEqual(order, ['server close', 'callback']);
      await waitFor(() => transfers.every(({ events }) => events.names.includes('close')), 5000, 'every client to close');
      for (const { events, local } of transfers) {
        assert.ok(!events.names.includes('error'));
        assert.equal(local.errored, null);
      }
      assert.equal(server.connectionCount, 0);
      assert.equal(server.listening, false);
    },
  );
});

describe('destroy()', () => {
  test(
    'destroy() is immediate: close is emitted before it returns, open streams are gone at once, and the peer sees its streams fail',
    T,
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;
      const { local, remote } = await openPair(client, serverCon, 'cut');
      local.resume();
      remote.resume();
      const clientEvents = recordEvents(client, ['error', 'close']);
      const remoteEvents = recordEvents(remote, ['end', 'error', 'close']);
      const serverClosed = nextEvent(serverCon, 'close');

      client.destroy();
      assert.deepEqual(clientEvents.names, ['close'], 'close emitted synchronously, and no error');
      assert.equal(local.destroyed, true);
      assert.equal(client.ready, false);
      assert.equal(client.StreamPool.size, 0);
      await assert.rejects(client.StreamPool.createStream('after'), { code: 'ERR_CONNECTION_CLOSED' });

      await serverClosed;
      await waitFor(() => remoteEvents.names.includes('close'), 5000, 'the remote stream to close');
      assert.deepEqual(remoteEvents.names, ['error', 'close']);
      assert.equal((remoteEvents.args.get('error') as MuxError).code, 'ERR_CONNECTION_CLOSED');
    },
  );
});

describe('close() and destroy() are idempotent in every state', () => {
  type Call = (con: MuxConnection, cb: () => (err?: Error) => void) => void;
  interface Scenario {
    name: string;
    /** Builds the connection in the state under test; `connected` counts onConnected / connect. */
    start(t: TestContext): Promise<{ con: MuxConnection; connected: () => number; events: EventLog }>;
    calls: Call[];
  }

  const close: Call = (con, cb) => con.close(cb());
  const closeNoCb: Call = (con) => con.close();
  const destroy: Call = (con) => con.destroy();

  async function readyClient(t: TestContext, withStream: boolean) {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    if (withStream) {
      const { local, remote } = await openPair(setup.client, setup.serverCon, 'open at close');
      local.resume();
      remote.resume();
    }
    return { con: setup.client as MuxConnection, connected: () => 1, events: recordEvents(setup.client, ['error', 'close']) };
  }

  async function clientBeforeConnect(t: TestContext) {
    const { server, port } = await startServer();
    t.after(() => stopServer(server));
    let connected = 0;
    const client = new MuxClient(port, HOST, () => connected++);
    t.after(() => client.destroy());
    return { con: client as MuxConnection, connected: () => connected, events: recordEvents(client, ['error', 'close']) };
  }

  async function clientMidHandshake(t: TestContext) {
    let authenticating!: () => void;
    const asked = new Promise<void>((resolve) => (authenticating = resolve));
    const { server, port } = await startServer({
      handshakeTimeout: 5000,
      authenticate: () => {
        authenticating();
        return new Promise(() => {}); // never decides
      },
    });
    t.after(() => stopServer(server));
    const serverEvents = recordEvents(server, ['connection', 'error']);
    t.after(() => assert.deepEqual(serverEvents.names, [], 'the server emitted neither connection nor error'));
    let connected = 0;
    const client = new MuxClient(port, HOST, { handshakeTimeout: 5000 }, () => connected++);
    t.after(() => client.destroy());
    const events = recordEvents(client, ['error', 'close']);
    await withTimeout(asked, 5000, 'authenticate to be called');
    return { con: client as MuxConnection, connected: () => connected, events };
  }

  async function serverSide(t: TestContext) {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    return { con: setup.serverCon, connected: () => 1, events: recordEvents(setup.serverCon, ['error', 'close']) };
  }

  async function bareConnection(t: TestContext) {
    const con = new MuxConnection(null, { role: 'client' });
    t.after(() => con.destroy());
    return { con, connected: () => 0, events: recordEvents(con, ['error', 'close']) };
  }

  const scenarios: Scenario[] = [
    {
      name: 'a client before it has connected: close(cb), close(cb), destroy(), close(cb)',
      start: clientBeforeConnect,
      calls: [close, close, destroy, close],
    },
    {
      name: 'a client before it has connected: destroy(), destroy(), close(cb)',
      start: clientBeforeConnect,
      calls: [destroy, destroy, close],
    },
    {
      name: "a client mid-handshake (the server's authenticate never decides): close(cb), destroy(), close(cb)",
      start: clientMidHandshake,
      calls: [close, destroy, close],
    },
    { name: 'a client mid-handshake: destroy(), close(cb), close()', start: clientMidHandshake, calls: [destroy, close, closeNoCb] },
    { name: 'a ready client: close(cb) twice', start: (t) => readyClient(t, false), calls: [close, close] },
    {
      name: 'a ready client with an open stream: close(cb), then destroy(), then close(cb)',
      start: (t) => readyClient(t, true),
      calls: [close, destroy, close],
    },
    { name: 'a ready client: destroy() twice, then close(cb)', start: (t) => readyClient(t, false), calls: [destroy, destroy, close] },
    { name: "the server's side of a connection: close(cb), close(cb), destroy()", start: serverSide, calls: [close, close, destroy] },
    {
      name: 'a bare connection that never got a transport: close(cb), destroy(), close(cb)',
      start: bareConnection,
      calls: [close, destroy, close],
    },
  ];

  for (const scenario of scenarios) {
    test(`${scenario.name} emits close exactly once, runs every callback once, and emits no error`, T, async (t) => {
      const { con, connected, events } = await scenario.start(t);
      const connectedBefore = connected();
      const calls: number[] = [];
      const cb = (): ((err?: Error) => void) => {
        const index = calls.push(0) - 1;
        return () => calls[index]++;
      };
      for (const call of scenario.calls) call(con, cb);
      await waitFor(() => events.names.includes('close'), 5000, 'close');
      // One more callback once it is closed: it runs too (asynchronously).
      const late = new Promise<void>((resolve) => con.close(() => resolve()));
      await withTimeout(late, 2000, 'a close callback after close');
      con.destroy();
      await delay(100); // anything late would show up now
      assert.deepEqual(events.names, ['close']);
      assert.deepEqual(
        calls,
        calls.map(() => 1),
        'every close callback ran exactly once',
      );
      assert.equal(connected(), connectedBefore, 'onConnected was not called by closing');
      assert.equal(con.ready, false);
      await assert.rejects(con.StreamPool.createStream('after'), { name: 'MuxError' });
    });
  }
});

describe('closing while a stream is being opened', () => {
  test(
    'close() while an OPEN awaits its answer: the stream is still accepted and finishes, then both sides close without error',
    T,
    async (t) => {
      let admit!: () => void;
      const setup = await startTcp({
        server: { acceptStream: () => new Promise<boolean>((resolve) => (admit = () => resolve(true))) },
        client: { closeTimeout: 5000 },
      });
      t.after(() => setup.cleanup());
      const { client, serverCon } = setup;
      const events = [recordEvents(client, ['error', 'close']), recordEvents(serverCon, ['error', 'close'])];
      const remote = new Promise<MuxStream>((resolve) => serverCon.once('stream', resolve));
      const opening = client.StreamPool.createStream('mid-open');
      await waitFor(() => admit !== undefined, 5000, 'the server to be deciding');
      const closed = new Promise<void>((resolve) => client.close(() => resolve()));
      await nextEvent(serverCon, 'goaway');
      admit();
      const local = await withTimeout(opening, 5000, 'the stream opened before close()');
      const received = collect(await remote);
      local.end('made it');
      assert.equal((await received).toString(), 'made it');
      (await remote).end();
      await collect(local);
      await withTimeout(closed, 5000, 'the close callback');
      await waitFor(() => events.every((log) => log.names.includes('close')), 5000, 'both sides to close');
      assert.deepEqual(
        events.map((log) => log.names),
        [['close'], ['close']],
      );
    },
  );

  test('destroy() while an OPEN awaits its answer rejects that open with ERR_CONNECTION_CLOSED and emits no error', T, async (t) => {
    const setup = await startTcp({ server: { acceptStream: () => new Promise<boolean>(() => {}) } });
    t.after(() => setup.cleanup());
    const events = recordEvents(setup.client, ['error', 'close']);
    const opening = setup.client.StreamPool.createStream('mid-open');
    const withAck = setup.client.StreamPool.createStream('mid-open, ack form', () => assert.fail('never accepted'));
    const ackEvents = recordEvents(withAck, ['error', 'close']);
    await delay(20);
    setup.client.destroy();
    await assert.rejects(withTimeout(opening, 5000, 'the open to settle'), { name: 'MuxError', code: 'ERR_CONNECTION_CLOSED' });
    await waitFor(() => ackEvents.names.includes('close'), 5000, 'the ack-form stream to close');
    assert.deepEqual(ackEvents.names, ['error', 'close']);
    assert.deepEqual(events.names, ['close']);
  });
});

describe('streams whose peer goes away', () => {
  test(
    'a write blocked on a stream whose peer destroyed it fails fast with ERR_STREAM_RESET, and a later write fails at once',
    T,
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const { local, remote } = await openPair(setup.client, setup.serverCon, 'the reader will give up');
      const events = recordEvents(local, ['error', 'close']);
      // The peer never reads: this write waits for window.
      const blocked = new Promise<Error | null | undefined>((resolve) => local.write(randomBytes(4 * MiB), resolve));
      await waitFor(() => local.stats().sendWindow === 0, 5000, 'the window to be used up');
      remote.destroy();

      const err = await withTimeout(blocked, 3000, 'the blocked write to fail');
      assert.ok(err instanceof Error, 'the write callback got an error');
      await waitFor(() => events.names.includes('close'), 3000, 'the stream to close');
      assert.deepEqual(events.names, ['error', 'close']);
      assert.equal((events.args.get('error') as MuxError).code, 'ERR_STREAM_RESET');

      const late = await withTimeout(
        new Promise<Error | null | undefined>((resolve) => local.write('more', resolve)),
        3000,
        'a late write to fail',
      );
      assert.ok(late instanceof Error, 'a write after the reset fails');
      assert.equal(setup.client.closing, false, 'only the stream failed');
    },
  );

  test(
    'destroying a stream locally with an error resets it: the peer read ends with ERR_STREAM_RESET carrying the reason, never with end',
    T,
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const { local, remote } = await openPair(setup.client, setup.serverCon, 'fails midway');
      const remoteEvents = recordEvents(remote, ['end', 'error', 'close']);
      const localEvents = recordEvents(local, ['error', 'close']);
      const reading = collect(remote).then(
        () => null,
        (e: unknown) => e,
      );
      local.write(randomBytes(100_000));
      local.destroy(new Error('disk full'));
      await waitFor(() => localEvents.names.includes('close'), 5000, 'the local stream to close');
      assert.deepEqual(localEvents.names, ['error', 'close'], 'the local side reports its own error, as any Duplex does');
      const err = await withTimeout(reading, 5000, 'the peer read to end');
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_STREAM_RESET');
      assert.match(err.message, /disk full/);
      await waitFor(() => remoteEvents.names.includes('close'), 5000, 'the remote stream to close');
      assert.ok(!remoteEvents.names.includes('end'));
    },
  );

  test(
    'a source that fails midway through pipeline() resets the stream, so the peer sees ERR_STREAM_RESET instead of a clean but truncated end',
    T,
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const { local, remote } = await openPair(setup.client, setup.serverCon, 'upload from a failing source');
      const remoteEvents = recordEvents(remote, ['end', 'error', 'close']);
      const reading = collect(remote).then(
        () => null,
        (e: unknown) => e,
      );
      async function* failingSource(): AsyncGenerator<Buffer> {
        for (let i = 0; i < 4; i++) {
          yield randomBytes(64 * 1024);
          await delay(5);
        }
        throw new Error('read error on the source file');
      }
      await assert.rejects(pipeline(Readable.from(failingSource()), local), /read error on the source file/);
      const err = await withTimeout(reading, 5000, 'the peer read to end');
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_STREAM_RESET');
      assert.ok(!remoteEvents.names.includes('end'));
      // The connection itself is fine.
      const again = await openPair(setup.client, setup.serverCon, 'next');
      again.local.end('ok');
      assert.equal((await collect(again.remote)).toString(), 'ok');
    },
  );
});
