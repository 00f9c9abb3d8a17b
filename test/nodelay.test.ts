/**
 * Nagle's algorithm: the muxer coalesces its own writes, so the TCP sockets that MuxServer
 * accepts and MuxClient opens get setNoDelay(true), unless the option noDelay is false.
 * Observed by spying on net.Socket.prototype.setNoDelay and matching calls to the sockets
 * each side runs on (its transportSocket).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import type { MuxClientOptions, MuxServerOptions, MuxStream } from '../src/index';
import { startTcp } from './helpers/mux';
import { collect } from './helpers/streams';

const T = { timeout: 10_000 };

/** Starts a server and a connected client on 127.0.0.1 with setNoDelay spied on. */
async function connectSpied(t: TestContext, options: { server?: MuxServerOptions; client?: MuxClientOptions }) {
  const spy = t.mock.method(net.Socket.prototype, 'setNoDelay');
  const setup = await startTcp(options);
  t.after(() => setup.cleanup());
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
  return { setup, serverSocket, clientSocket, callsOn, noDelayOn };
}

test('sockets MuxServer accepts and MuxClient opens get setNoDelay(true) by default', T, async (t) => {
  const { serverSocket, clientSocket, callsOn, noDelayOn } = await connectSpied(t, {});
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
  const { setup } = await connectSpied(t, { server: { noDelay: false }, client: { noDelay: false } });
  setup.serverCon.on('stream', (stream: MuxStream) => stream.pipe(stream));
  const stream = await setup.client.StreamPool.createStream('echo');
  stream.end('hello over a Nagle socket');
  assert.equal((await collect(stream)).toString(), 'hello over a Nagle socket');
});
