/**
 * What peers and networks do wrong: dropped connections mid-transfer, non-muxer peers,
 * protocol violations, unreachable servers, and closing or destroying a server.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { MuxClient, MuxError, type MuxConnection, type MuxServer, type MuxStream } from '../src/index';
import { HOST, closedPort, connectClient, startServer, startTcp, stopServer, transports, type ConnectedPair } from './helpers/mux';
import { delay, nextEvent, recordEvents, sha256, waitFor, withTimeout, type EventLog } from './helpers/async';
import { collect, openPair } from './helpers/streams';
import { closedWithBytes, encodeFrame, FrameType, handshakenRawPeer, rawSocket } from './helpers/raw-peer';

/** Keeps `stream` busy writing random bytes (resuming on drain) until it closes. */
function keepWriting(stream: MuxStream): void {
  const pump = (): void => {
    while (!stream.destroyed && stream.write(randomBytes(8 * 1024)));
  };
  stream.on('drain', pump);
  pump();
}

interface Watched {
  label: string;
  stream: MuxStream;
  events: EventLog;
}

/** Opens streams both ways, busy in both directions, and records their events. */
async function busyStreams(pair: ConnectedPair, perSide: number): Promise<Watched[]> {
  const watched: Watched[] = [];
  for (let i = 0; i < perSide; i++) {
    for (const [opener, acceptor, side] of [
      [pair.client, pair.server, 'client'],
      [pair.server, pair.client, 'server'],
    ] as const) {
      const { local, remote } = await openPair(opener, acceptor, { side, i });
      for (const [stream, where] of [
        [local, 'opener'],
        [remote, 'acceptor'],
      ] as const) {
        watched.push({ label: `${side}-opened #${i} at its ${where}`, stream, events: recordEvents(stream, ['end', 'error', 'close']) });
        stream.resume();
        keepWriting(stream);
      }
    }
  }
  return watched;
}

async function expectAllCut(watched: Watched[], code = 'ERR_CONNECTION_CLOSED'): Promise<void> {
  await withTimeout(
    Promise.all(watched.map(({ stream }) => (stream.closed ? Promise.resolve() : nextEvent(stream, 'close', 5000)))),
    6000,
    'every stream to close',
  );
  for (const { label, events } of watched) {
    assert.deepEqual(events.names, ['error', 'close'], `${label}: error then close, and never end`);
    const err = events.args.get('error');
    assert.ok(err instanceof MuxError, `${label}: a MuxError`);
    assert.equal(err.code, code, `${label}: code`);
  }
}

function cleanup(t: TestContext, pair: ConnectedPair): ConnectedPair {
  t.after(() => pair.cleanup());
  return pair;
}

for (const transport of transports) {
  describe(`a connection dropped mid-transfer over ${transport.name}`, () => {
    test('every open stream on both sides emits error ERR_CONNECTION_CLOSED and close, never end', { timeout: 15_000 }, async (t) => {
      const pair = cleanup(t, await transport.connect());
      const watched = await busyStreams(pair, 4);
      assert.equal(watched.length, 16);
      const closes = [pair.client, pair.server].map((con) => nextEvent(con, 'close', 5000));
      await delay(100); // data is flowing everywhere
      pair.cut();
      await expectAllCut(watched);
      await Promise.all(closes);
      // Nothing is left behind, and the dead connection refuses new streams at once.
      assert.equal(pair.client.StreamPool.size, 0);
      assert.equal(pair.server.StreamPool.size, 0);
      await assert.rejects(pair.client.StreamPool.createStream('too late'), { code: 'ERR_CONNECTION_CLOSED' });
    });

    test('streams still opening when the connection drops reject or error instead of hanging', { timeout: 10_000 }, async (t) => {
      const pair = cleanup(t, await transport.connect());
      // The server never listens for streams, so these OPENs wait in its backlog unaccepted.
      const pending = [1, 2, 3].map((n) => pair.client.StreamPool.createStream({ n }));
      const withAck = pair.client.StreamPool.createStream('ack form', () => assert.fail('never accepted'));
      const ackEvents = recordEvents(withAck, ['error', 'close']);
      await delay(50);
      pair.cut();
      for (const promise of pending) {
        await assert.rejects(withTimeout(promise, 5000, 'createStream to settle'), { name: 'MuxError', code: 'ERR_CONNECTION_CLOSED' });
      }
      await waitFor(() => withAck.closed, 5000, 'the ack-form stream to close');
      assert.deepEqual(ackEvents.names, ['error', 'close']);
      assert.equal((ackEvents.args.get('error') as MuxError).code, 'ERR_CONNECTION_CLOSED');
    });
  });
}

describe('a connection dropped over TCP by the server side', () => {
  test("destroying the server's socket errors every stream on both sides with ERR_CONNECTION_CLOSED", { timeout: 15_000 }, async (t) => {
    const setup = await startTcp();
    t.after(() => setup.cleanup());
    const pair: ConnectedPair = { client: setup.client, server: setup.serverCon, cut: () => {}, cleanup: setup.cleanup };
    const watched = await busyStreams(pair, 3);
    await delay(100);
    (setup.serverCon.transportSocket as net.Socket).destroy();
    await expectAllCut(watched);
    // The server keeps serving.
    const next = await connectClient(setup.server, setup.port);
    t.after(() => next.client.destroy());
    const { local, remote } = await openPair(next.client, next.serverCon, 'after the drop');
    local.end('hello again');
    assert.equal((await collect(remote)).toString(), 'hello again');
  });

  test(
    'streams that attach no error listener, like the seed examples and an echo pipe, survive the drop without throwing',
    { timeout: 10_000 },
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const serverStreams: MuxStream[] = [];
      setup.serverCon.on('stream', (stream: MuxStream) => {
        serverStreams.push(stream);
        if (stream.meta === 'echo') stream.pipe(stream);
        else stream.on('data', () => {});
      });
      const echo = await setup.client.StreamPool.createStream('echo');
      const plain = await setup.client.StreamPool.createStream('plain');
      echo.write(randomBytes(1000));
      plain.write(randomBytes(1000));
      await waitFor(() => serverStreams.length === 2, 5000, 'both streams at the server');
      await delay(50);
      const serverClosed = nextEvent(setup.serverCon, 'close');
      (setup.client.transportSocket as net.Socket).destroy();
      await serverClosed;
      await waitFor(() => serverStreams.every((s) => s.closed), 5000, 'the server streams to close');
      for (const stream of serverStreams) {
        assert.ok(stream.errored instanceof MuxError, `${JSON.stringify(stream.meta)}: errored is set`);
        assert.equal(stream.errored.code, 'ERR_CONNECTION_CLOSED');
      }
      // A client stream without error listeners was cut too, quietly.
      await waitFor(() => echo.closed && plain.closed, 5000, 'the client streams to close');
      assert.equal((echo.errored as MuxError).code, 'ERR_CONNECTION_CLOSED');
    },
  );
});

describe('peers that do not speak the protocol', () => {
  /** A server whose `error` event fails the test, and whose `clientError`s are recorded. */
  async function watchedServer(t: TestContext, options = {}) {
    const { server, port } = await startServer(options);
    t.after(() => stopServer(server));
    const serverErrors: unknown[] = [];
    const clientErrors: { err: unknown; socket: unknown }[] = [];
    server.on('error', (err) => serverErrors.push(err));
    server.on('clientError', (err, socket) => clientErrors.push({ err, socket }));
    return { server, port, serverErrors, clientErrors };
  }

  async function expectStillServing(t: TestContext, server: MuxServer, port: number): Promise<void> {
    const { client, serverCon } = await connectClient(server, port);
    t.after(() => client.destroy());
    serverCon.on('stream', (stream: MuxStream) => stream.pipe(stream));
    const stream = await client.StreamPool.createStream('still serving?');
    const payload = randomBytes(100_000);
    const echoed = collect(stream);
    stream.end(payload);
    assert.equal(sha256(await echoed), sha256(payload));
  }

  const garbage: [string, Buffer][] = [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')],
    ['random bytes', randomBytes(4096)],
    ['a TLS ClientHello-like record', Buffer.from('16030100a5010000a10303', 'hex')],
  ];
  for (const [what, bytes] of garbage) {
    test(
      `${what} sent to the server port gives clientError (never error), closes that socket, and the server keeps serving`,
      { timeout: 10_000 },
      async (t) => {
        const { server, port, serverErrors, clientErrors } = await watchedServer(t);
        const socket = await rawSocket(port);
        const closed = closedWithBytes(socket);
        socket.write(bytes);
        await closed;
        await waitFor(() => clientErrors.length === 1, 2000, 'clientError');
        const [{ err, socket: reported }] = clientErrors as [{ err: unknown; socket: unknown }];
        assert.ok(err instanceof MuxError);
        assert.equal(err.code, 'ERR_HANDSHAKE_FAILED');
        assert.match(err.message, /not a tcp-stream-muxer/);
        assert.ok(reported instanceof net.Socket, 'clientError names the socket');
        assert.equal(server.connectionCount, 0, 'no connection event for it');
        await expectStillServing(t, server, port);
        assert.deepEqual(serverErrors, []);
      },
    );
  }

  test('a peer that connects and leaves without a word is a clientError, not an error', { timeout: 10_000 }, async (t) => {
    const { server, port, serverErrors, clientErrors } = await watchedServer(t);
    const socket = await rawSocket(port);
    socket.end();
    await closedWithBytes(socket);
    await waitFor(() => clientErrors.length === 1, 2000, 'clientError');
    assert.equal((clientErrors[0].err as MuxError).code, 'ERR_HANDSHAKE_FAILED');
    await expectStillServing(t, server, port);
    assert.deepEqual(serverErrors, []);
  });

  test('a peer that never completes the handshake is dropped after handshakeTimeout', { timeout: 10_000 }, async (t) => {
    const { server, port, serverErrors, clientErrors } = await watchedServer(t, { handshakeTimeout: 150 });
    const socket = await rawSocket(port);
    socket.write(Buffer.from('TSM')); // three bytes of the magic, then silence
    const started = Date.now();
    await closedWithBytes(socket, 5000);
    assert.ok(Date.now() - started < 4000, 'closed soon after the timeout');
    await waitFor(() => clientErrors.length === 1, 2000, 'clientError');
    assert.equal((clientErrors[0].err as MuxError).code, 'ERR_HANDSHAKE_TIMEOUT');
    await expectStillServing(t, server, port);
    assert.deepEqual(serverErrors, []);
  });

  const violations: [string, () => Buffer][] = [
    ['an OPEN whose meta is not JSON', () => encodeFrame(FrameType.OPEN, 0, 1, Buffer.from('{not json'))],
    ['DATA on a stream that was never opened', () => encodeFrame(FrameType.DATA, 0, 7, Buffer.from('hi'))],
    ['an OPEN with a server-side (even) id', () => encodeFrame(FrameType.OPEN, 0, 2, Buffer.from('null'))],
    ['a frame of an unknown type', () => encodeFrame(0x7e as FrameType, 0, 0)],
  ];
  for (const [what, frame] of violations) {
    test(
      `a handshaken peer sending ${what} is cut off, throws nothing in a server without listeners, and the server keeps serving`,
      { timeout: 10_000 },
      async (t) => {
        const { server, port, serverErrors } = await watchedServer(t);
        // Like the seed: the connection handler attaches no error listener.
        const cons: MuxConnection[] = [];
        server.on('connection', (con: MuxConnection) => cons.push(con));
        const socket = await handshakenRawPeer(port);
        await waitFor(() => cons.length === 1, 2000, 'the connection event');
        const conClosed = nextEvent(cons[0], 'close');
        const socketClosed = closedWithBytes(socket);
        socket.write(frame());
        await conClosed;
        const answer = await socketClosed;
        // The server said why before closing: a GO_AWAY frame (type 3).
        assert.ok(answer.length >= 12, `got ${answer.length} bytes back`);
        assert.equal(answer[1], FrameType.GO_AWAY);
        assert.equal(server.connectionCount, 0);
        await expectStillServing(t, server, port);
        assert.deepEqual(serverErrors, []);
      },
    );
  }
});

describe('a client that cannot connect', () => {
  test('emits error ERR_CONNECT_FAILED and close, and never calls onConnected', { timeout: 10_000 }, async (t) => {
    const port = await closedPort();
    const onConnected = t.mock.fn();
    const client = new MuxClient(port, HOST, onConnected);
    t.after(() => client.destroy());
    const events = recordEvents(client, ['error', 'close', 'connect']);
    await nextEvent(client, 'close');
    await delay(100);
    assert.deepEqual(events.names, ['error', 'close']);
    const err = events.args.get('error');
    assert.ok(err instanceof MuxError);
    assert.equal(err.code, 'ERR_CONNECT_FAILED');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal(onConnected.mock.callCount(), 0);
    await assert.rejects(client.StreamPool.createStream('never'), { code: 'ERR_CONNECTION_CLOSED' });
  });

  test('the options-object form fails the same way', { timeout: 10_000 }, async (t) => {
    const port = await closedPort();
    const onConnected = t.mock.fn();
    const client = new MuxClient({ port, host: HOST }, onConnected);
    t.after(() => client.destroy());
    const [err] = await nextEvent(client, 'error');
    assert.equal((err as MuxError).code, 'ERR_CONNECT_FAILED');
    await delay(50);
    assert.equal(onConnected.mock.callCount(), 0);
  });

  test('a stream opened before the failed connect is rejected, not left hanging', { timeout: 10_000 }, async (t) => {
    const port = await closedPort();
    const client = new MuxClient(port, HOST);
    client.on('error', () => {});
    t.after(() => client.destroy());
    const early = client.StreamPool.createStream({ early: true });
    await assert.rejects(withTimeout(early, 5000, 'the early stream'), { name: 'MuxError', code: 'ERR_CONNECTION_CLOSED' });
  });

  test(
    'a server that is not a muxer makes the client emit error ERR_HANDSHAKE_FAILED, never onConnected',
    { timeout: 10_000 },
    async (t) => {
      const sockets = new Set<net.Socket>();
      const http = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.resume(); // read and ignore whatever the client says
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      });
      await new Promise<void>((resolve) => http.listen(0, HOST, resolve));
      t.after(() => {
        http.close();
        for (const socket of sockets) socket.destroy();
      });
      const onConnected = t.mock.fn();
      const client = new MuxClient((http.address() as net.AddressInfo).port, HOST, onConnected);
      t.after(() => client.destroy());
      const events = recordEvents(client, ['error', 'close', 'connect']);
      await waitFor(() => events.names.includes('close'), 5000, 'the client to close');
      assert.deepEqual(events.names, ['error', 'close']);
      const err = events.args.get('error');
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_HANDSHAKE_FAILED');
      assert.match(err.message, /not a tcp-stream-muxer/);
      assert.equal(onConnected.mock.callCount(), 0);
    },
  );

  test('with no error listener, the error is thrown, as with net.connect', { timeout: 15_000 }, async () => {
    const port = await closedPort();
    const script = `
      const { MuxClient } = require('tcp-stream-muxer');
      new MuxClient(${port}, '${HOST}', () => console.log('CONNECTED'));
    `;
    const { code, stdout, stderr } = await runNode(script, 10_000);
    assert.notEqual(code, 0, 'the process failed');
    assert.match(stderr, /ERR_CONNECT_FAILED/);
    assert.doesNotMatch(stdout, /CONNECTED/);
  });
});

describe('closing and destroying a server', () => {
  test(
    'server.close(cb) lets an open stream finish, then closes the connection, emits close and runs cb',
    { timeout: 15_000 },
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const { server, client, serverCon, port } = setup;
      const order: string[] = [];
      const { local, remote } = await openPair(client, serverCon, 'in flight');
      const upload = randomBytes(2 * 1024 * 1024);
      local.write(upload.subarray(0, 1024 * 1024));
      const uploaded = collect(remote, 10_000).then((bytes) => {
        order.push('server got the whole upload');
        remote.end('thanks');
        return bytes;
      });
      const reply = collect(local, 10_000).then((bytes) => {
        order.push('client got the reply');
        return bytes;
      });
      server.on('close', () => order.push('server close event'));
      client.on('close', () => order.push('client close event'));
      const closedCb = new Promise<void>((resolve) => server.close(() => (order.push('close callback'), resolve())));

      // New connections are no longer accepted.
      await delay(50);
      const late = new MuxClient(port, HOST);
      t.after(() => late.destroy());
      const [lateErr] = await nextEvent(late, 'error');
      assert.equal((lateErr as MuxError).code, 'ERR_CONNECT_FAILED');
      // The closing connection opens no new streams.
      await assert.rejects(client.StreamPool.createStream('new after close'), { code: 'ERR_GOING_AWAY' });

      // The stream in flight still finishes both ways.
      local.end(upload.subarray(1024 * 1024));
      assert.equal(sha256(await uploaded), sha256(upload));
      assert.equal((await reply).toString(), 'thanks');
      await withTimeout(closedCb, 5000, 'the close callback');
      await waitFor(() => order.includes('client close event'), 5000, 'the client to close');
      assert.equal(order[0], 'server got the whole upload');
      assert.ok(order.indexOf('close callback') > order.indexOf('client got the reply'));
      assert.ok(order.includes('server close event'));
      assert.equal(serverCon.closing, true);
      assert.equal(server.listening, false);
      assert.equal(local.errored, null, 'the stream ended cleanly');
    },
  );

  test('server.close(cb) with no connections runs cb and emits close', { timeout: 5000 }, async () => {
    const { server } = await startServer();
    const events = recordEvents(server, ['close', 'error']);
    await withTimeout(new Promise<void>((resolve) => server.close(() => resolve())), 3000, 'close callback');
    assert.deepEqual(events.names, ['close']);
  });

  test(
    'server.destroy() cuts every connection at once: streams on both sides error and close, and close is emitted',
    { timeout: 15_000 },
    async (t) => {
      const setup = await startTcp();
      t.after(() => setup.cleanup());
      const pair: ConnectedPair = { client: setup.client, server: setup.serverCon, cut: () => {}, cleanup: setup.cleanup };
      const watched = await busyStreams(pair, 3);
      const serverEvents = recordEvents(setup.server, ['close', 'error']);
      const clientClosed = nextEvent(setup.client, 'close');
      await delay(50);
      setup.server.destroy();
      await expectAllCut(watched);
      await clientClosed;
      await waitFor(() => serverEvents.names.includes('close'), 5000, 'the server close event');
      assert.deepEqual(serverEvents.names, ['close']);
      assert.equal(setup.server.connectionCount, 0);
    },
  );

  for (const how of ['close', 'destroy'] as const) {
    test(`after server.${how}(), with a client still connected, nothing keeps the process alive`, { timeout: 15_000 }, async () => {
      const script = `
        const { MuxServer, MuxClient } = require('tcp-stream-muxer');
        const server = new MuxServer(0, { host: '${HOST}' }, () => {
          const client = new MuxClient(server.address().port, '${HOST}', () => {
            client.on('error', () => {});
            client.StreamPool.createStream({ hi: 1 }).then((stream) => {
              stream.on('error', () => {});
              stream.end('bye');
            });
          });
        });
        server.on('connection', (con) => {
          con.on('stream', (stream) => {
            stream.on('data', () => {});
            stream.on('end', () => { console.log('GOT'); stream.end(); server.${how}(); });
          });
        });
        server.on('close', () => console.log('CLOSED'));
      `;
      const started = Date.now();
      const { code, stdout, stderr } = await runNode(script, 10_000);
      assert.equal(code, 0, `exit code (stderr: ${stderr})`);
      assert.match(stdout, /GOT[\s\S]*CLOSED/);
      assert.ok(Date.now() - started < 8000, 'exited on its own, promptly');
    });
  }
});

/** Runs `script` in a fresh Node process in this package (so it can require itself). */
function runNode(script: string, ms: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { cwd: `${__dirname}/..`, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child process still running after ${ms} ms (stdout: ${stdout}, stderr: ${stderr})`));
    }, ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
