/**
 * Nagle's algorithm: the muxer coalesces its own writes, so the TCP sockets that MuxServer
 * accepts and MuxClient opens get setNoDelay(true) with their first stream, unless the
 * option noDelay is false. An idle link (HELLO and keepalives only) keeps Nagle, which
 * never holds its single small writes, and saves the system call.
 * Observed by spying on net.Socket.prototype.setNoDelay and matching calls to the sockets
 * each side runs on (its transportSocket).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { MuxClient, wrap, type MuxClientOptions, type MuxServerOptions, type MuxStream } from '../src/index';
import { startServer, startTcp, stopServer } from './helpers/mux';
import { collect } from './helpers/streams';

const T = { timeout: 10_000 };

/** Starts a server and a connected client on 127.0.0.1 with setNoDelay spied on. */
async function connectSpied(t: TestContext, options: { server?: MuxServerOptions; client?: MuxClientOptions }) {
  const spy = t.mock.method(net.Socket.prototype, 'setNoDelay');
  const setup = await startTcp(options);
  t.after(() => setup.cleanup());
  const idleCalls = spy.mock.calls.length;
  // Both sides see a stream: the client opens it, the server accepts it.
  const accepted = new Promise<MuxStream>((resolve) => setup.serverCon.once('stream', resolve));
  const opened = await setup.client.StreamPool.createStream('first');
  (await accepted).pipe(await accepted);
  const serverSocket = setup.serverCon.transportSocket;
  const clientSocket = setup.client.transportSocket;
  assert.ok(serverSocket instanceof net.Socket, "the server's connection runs on a net.Socket");
  assert.ok(clientSocket instanceof net.Socket, 'the client runs on a net.Socket');
  assert.notEqual(serverSocket, clientSocket);
  /** The arguments of every setNoDelay call made on `socket`. */
  const callsOn = (socket: net.Socket): unknown[][] => spy.mock.calls.filter((call) => call.this === socket).map((call) => call.arguments);
  /** True if `socket` ended up with Nagle disabled by a call (no argument means true). */
  const noDelayOn = (socket: net.Socket): boolean => {
    const calls = callsOn(socket);
    if (calls.length === 0) return false;
    const last = calls[calls.length - 1];
    return last.length === 0 || last[0] === undefined || last[0] === true;
  };
  return { setup, serverSocket, clientSocket, callsOn, noDelayOn, idleCalls, opened };
}

test('sockets MuxServer accepts and MuxClient opens get setNoDelay(true) by default, with their first stream', T, async (t) => {
  const { serverSocket, clientSocket, callsOn, noDelayOn, idleCalls } = await connectSpied(t, {});
  assert.equal(idleCalls, 0, 'no setNoDelay while the link has carried no stream');
  assert.deepEqual(callsOn(serverSocket), [[true]]);
  assert.deepEqual(callsOn(clientSocket), [[true]]);
  assert.equal(noDelayOn(serverSocket), true);
  assert.equal(noDelayOn(clientSocket), true);
});

test('with noDelay: false on both sides, neither socket gets setNoDelay(true)', T, async (t) => {
  const { serverSocket, clientSocket, noDelayOn } = await connectSpied(t, { server: { noDelay: false }, client: { noDelay: false } });
  assert.equal(noDelayOn(serverSocket), false);
  assert.equal(noDelayOn(clientSocket), false);
});

test('each side follows its own noDelay option: a client with noDelay: false against a default server', T, async (t) => {
  const { serverSocket, clientSocket, noDelayOn } = await connectSpied(t, { client: { noDelay: false } });
  assert.equal(noDelayOn(serverSocket), true, 'the server socket still gets it');
  assert.equal(noDelayOn(clientSocket), false);
});

test('each side follows its own noDelay option: a server with noDelay: false against a default client', T, async (t) => {
  const { serverSocket, clientSocket, noDelayOn } = await connectSpied(t, { server: { noDelay: false } });
  assert.equal(noDelayOn(serverSocket), false);
  assert.equal(noDelayOn(clientSocket), true, 'the client socket still gets it');
});

test('streams carry data both ways with Nagle left on', T, async (t) => {
  const { opened } = await connectSpied(t, { server: { noDelay: false }, client: { noDelay: false } });
  opened.end('hello over a Nagle socket');
  assert.equal((await collect(opened)).toString(), 'hello over a Nagle socket');
});

test('later streams do not set it again', T, async (t) => {
  const { setup, serverSocket, clientSocket, callsOn } = await connectSpied(t, {});
  setup.serverCon.on('stream', (stream: MuxStream) => stream.resume());
  const more = await Promise.all([1, 2, 3].map(() => setup.client.StreamPool.createStream('more')));
  for (const stream of more) stream.destroy();
  assert.deepEqual(callsOn(serverSocket), [[true]]);
  assert.deepEqual(callsOn(clientSocket), [[true]]);
});

test('a stream opened before the client has connected still turns Nagle off once the link is up', T, async (t) => {
  const spy = t.mock.method(net.Socket.prototype, 'setNoDelay');
  const { server, port } = await startServer();
  t.after(() => stopServer(server));
  server.on('connection', (con) => con.on('stream', (stream: MuxStream) => stream.pipe(stream)));
  const client = new MuxClient(port, '127.0.0.1');
  t.after(() => client.destroy());
  // Opened at once: the link has no socket yet.
  const stream = await client.StreamPool.createStream('early');
  stream.end('early bytes');
  assert.equal((await collect(stream)).toString(), 'early bytes');
  const socket = client.transportSocket;
  assert.ok(socket instanceof net.Socket);
  assert.deepEqual(
    spy.mock.calls.filter((call) => call.this === socket).map((call) => call.arguments),
    [[true]],
  );
});

test('a socket given to wrap() is left as its owner set it', T, async (t) => {
  const spy = t.mock.method(net.Socket.prototype, 'setNoDelay');
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  t.after(() => listener.close());
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const dialled = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => dialled.once('connect', resolve));
  const serverSide = wrap(await accepted, { role: 'server' });
  const clientSide = wrap(dialled, { role: 'client' });
  t.after(() => {
    clientSide.destroy();
    serverSide.destroy();
  });
  serverSide.on('stream', (stream: MuxStream) => stream.pipe(stream));
  const stream = await clientSide.StreamPool.createStream('wrapped');
  stream.end('through wrapped sockets');
  assert.equal((await collect(stream)).toString(), 'through wrapped sockets');
  assert.equal(spy.mock.calls.length, 0, 'wrap() must not change the socket it was given');
});
