/**
 * MuxClient's `reconnect` option: a lost link (server destroyed, or closed gracefully) is
 * replaced after a backoff, streams of the old link fail and are never re-opened, streams
 * opened meanwhile wait for the new link, delays grow with jitter up to `maxDelay`,
 * authentication failures are not retried, and close() stops it all.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { MuxClient, MuxError, MuxServer, RECONNECT_DEFAULTS, type MuxStream, type ReconnectInfo } from '../src/index';
import { HOST, closedPort } from './helpers/mux';
import { nextEvent, withTimeout } from './helpers/async';

/** An echo server on `port` (0: any); resolves once it listens. */
async function echoServer(t: TestContext, port = 0, options = {}): Promise<MuxServer> {
  const server = new MuxServer(port, { host: HOST, ...options });
  server.on('connection', (con) => {
    con.on('error', () => {});
    con.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.pipe(stream);
    });
  });
  t.after(() => server.destroy());
  await nextEvent(server, 'listening');
  return server;
}

async function echo(client: MuxClient, text: string): Promise<string> {
  const stream = await client.StreamPool.createStream({ echo: true });
  stream.end(text);
  let reply = '';
  for await (const chunk of stream) reply += String(chunk);
  return reply;
}

function watch(client: MuxClient): { reconnecting: ReconnectInfo[]; errors: MuxError[]; closes: number; reconnects: number } {
  const seen = { reconnecting: [] as ReconnectInfo[], errors: [] as MuxError[], closes: 0, reconnects: 0 };
  client.on('reconnecting', (info) => seen.reconnecting.push(info));
  client.on('error', (err) => seen.errors.push(err));
  client.on('close', () => seen.closes++);
  client.on('reconnect', () => seen.reconnects++);
  return seen;
}

test(
  'a destroyed server: the client reconnects to its successor; old streams fail, streams opened meanwhile wait',
  { timeout: 20_000 },
  async (t) => {
    const first = await echoServer(t);
    const port = first.port;
    const client = new MuxClient(port, HOST, { reconnect: { initialDelay: 50, maxDelay: 200 } });
    t.after(() => client.destroy());
    const seen = watch(client);
    await nextEvent(client, 'connect');
    assert.equal(await echo(client, 'before'), 'before');

    const open: MuxStream = await client.StreamPool.createStream({ held: true });
    const failed = new Promise<MuxError>((resolve) => open.on('error', (err) => resolve(err as MuxError)));
    first.destroy();
    assert.equal((await withTimeout(failed, 5000, 'the old stream to fail')).code, 'ERR_CONNECTION_CLOSED');
    await withTimeout(nextEvent(client, 'reconnecting'), 5000, 'reconnecting');

    // Opened while the link is down: it waits for the next link.
    const waiting = echo(client, 'during');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await echoServer(t, port);
    await withTimeout(nextEvent(client, 'reconnect'), 5000, 'reconnect');
    assert.equal(await withTimeout(waiting, 5000, 'the waiting stream'), 'during');
    assert.equal(await echo(client, 'after'), 'after');
    assert.deepEqual([seen.closes, seen.errors.length, seen.reconnects], [0, 0, 1]);
    assert.ok(seen.reconnecting.length >= 1);
    assert.equal(open.destroyed, true, 'the old stream was not re-opened');
  },
);

test('a graceful close of the server (GO_AWAY) is heard, then the client reconnects', { timeout: 20_000 }, async (t) => {
  const first = await echoServer(t);
  const port = first.port;
  const client = new MuxClient(port, HOST, { reconnect: { initialDelay: 50, maxDelay: 100 } });
  t.after(() => client.destroy());
  const seen = watch(client);
  await nextEvent(client, 'connect');
  const goaway = nextEvent(client, 'goaway');
  first.close();
  await withTimeout(goaway, 5000, 'goaway');
  const [info] = (await withTimeout(nextEvent(client, 'reconnecting'), 5000, 'reconnecting')) as [ReconnectInfo];
  assert.equal(info.error, null, 'a clean close is no error');
  await echoServer(t, port);
  await withTimeout(nextEvent(client, 'reconnect'), 5000, 'reconnect');
  assert.equal(await echo(client, 'again'), 'again');
  assert.deepEqual([seen.closes, seen.errors.length], [0, 0]);
});

test(
  'nobody listening: attempts back off with jitter up to maxDelay; maxAttempts ends in error and close',
  { timeout: 20_000 },
  async (t) => {
    const port = await closedPort();
    const options = { initialDelay: 20, maxDelay: 80, factor: 2, jitter: 0.2, maxAttempts: 5 };
    const client = new MuxClient(port, HOST, { reconnect: options });
    t.after(() => client.destroy());
    const seen = watch(client);
    const [err] = (await withTimeout(nextEvent(client, 'error', 10_000), 10_000, 'giving up')) as [MuxError];
    assert.equal(err.code, 'ERR_CONNECT_FAILED');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen.closes, 1, 'closed once, after giving up');
    assert.deepEqual(
      seen.reconnecting.map((info) => info.attempt),
      [1, 2, 3, 4, 5],
    );
    seen.reconnecting.forEach((info, i) => {
      const base = Math.min(options.maxDelay, options.initialDelay * options.factor ** i);
      assert.ok(info.delay >= base * 0.8 - 1 && info.delay <= base * 1.2 + 1, `attempt ${i + 1}: ${info.delay} ms around ${base}`);
      assert.equal(info.error?.code, 'ERR_CONNECT_FAILED');
    });
  },
);

test('an authentication failure is not retried; close() stops a client that waits to reconnect', { timeout: 20_000 }, async (t) => {
  const locked = await echoServer(t, 0, { authenticate: () => false });
  const refused = new MuxClient(locked.port, HOST, { reconnect: { initialDelay: 20 } });
  t.after(() => refused.destroy());
  const seen = watch(refused);
  const [err] = (await withTimeout(nextEvent(refused, 'error'), 5000, 'the auth error')) as [MuxError];
  assert.equal(err.code, 'ERR_AUTH_FAILED');
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(seen.reconnecting.length, 0);

  const port = await closedPort();
  const waiting = new MuxClient(port, HOST, { reconnect: { initialDelay: 50, maxDelay: 50 } });
  const watched = watch(waiting);
  await withTimeout(nextEvent(waiting, 'reconnecting'), 5000, 'reconnecting');
  const closed = nextEvent(waiting, 'close');
  waiting.close();
  await withTimeout(closed, 5000, 'close');
  const attempts = watched.reconnecting.length;
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(watched.reconnecting.length, attempts, 'no attempt after close()');
});

test('reconnect options are checked, and the defaults are documented values', () => {
  assert.equal(RECONNECT_DEFAULTS.initialDelay, 250);
  assert.equal(RECONNECT_DEFAULTS.maxAttempts, Infinity);
  for (const bad of [{ initialDelay: -1 }, { maxDelay: 10, initialDelay: 20 }, { factor: 0.5 }, { jitter: 1 }, { maxAttempts: 1.5 }]) {
    assert.throws(
      () => new MuxClient(1, HOST, { reconnect: bad }),
      (err: MuxError) => err.code === 'ERR_INVALID_CONFIG',
      JSON.stringify(bad),
    );
  }
});

test(
  'a link reset by the peer (error, then close of the old socket): the late close does not tear down the new link',
  { timeout: 20_000 },
  async (t) => {
    const server = await echoServer(t);
    let resets = 3;
    server.on('connection', (con) => {
      // A TCP reset: the client's socket emits 'error' (ECONNRESET) and only later 'close'.
      if (resets-- > 0) setImmediate(() => (con.transportSocket as import('node:net').Socket).resetAndDestroy());
    });
    const client = new MuxClient(server.port, HOST, { reconnect: { initialDelay: 1, maxDelay: 5, jitter: 0 } });
    t.after(() => client.destroy());
    const seen = watch(client);
    const crashes: Error[] = [];
    const onCrash = (err: Error): void => void crashes.push(err);
    process.on('uncaughtException', onCrash);
    t.after(() => process.off('uncaughtException', onCrash));
    await withTimeout(
      (async () => {
        while (seen.reconnects < 3) await nextEvent(client, 'reconnect');
      })(),
      10_000,
      'three reconnects',
    );
    assert.equal(await echo(client, 'after resets'), 'after resets');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(crashes, [], 'no second socket attached to one link');
    assert.equal(seen.errors.length, 0);
    assert.equal(server.connectionCount, 1, 'one link at a time: no stray second connection');
  },
);
