/**
 * Any transport: one scenario (several streams each way with meta, data hash-checked both
 * ways, half-close, graceful close) run over every duplex a user may already have, each
 * end made with `wrap(duplex, { role })` / `new MuxConnection(duplex, { role })`:
 * node:tls with a self-signed certificate made by openssl here, a Unix domain socket (bare,
 * and through the `path` option of MuxServer and MuxClient), a WebSocket through `ws`'s
 * `createWebSocketStream`, and an in-memory duplex pair.
 */
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { WebSocket, WebSocketServer, createWebSocketStream } from 'ws';
import { MuxClient, MuxConnection, MuxError, MuxServer, wrap, type MuxStream } from '../src/index';
import { duplexPair } from './helpers/duplex-pair';
import { HOST } from './helpers/mux';
import { nextEvent, sha256, withTimeout } from './helpers/async';
import { collect } from './helpers/streams';
import { makeSelfSignedCert } from './helpers/certs';

interface Ends {
  client: MuxConnection;
  server: MuxConnection;
}

let tmp: string;
let key: Buffer;
let cert: Buffer;

before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'tsm-tr-'));
  // A self-signed certificate for 127.0.0.1, trusted by the client as its own CA.
  const made = makeSelfSignedCert(tmp);
  key = readFileSync(made.key);
  cert = readFileSync(made.cert);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Both ends wrapped; resolves once both handshakes are done. */
async function ready(client: MuxConnection, server: Promise<MuxConnection>): Promise<Ends> {
  const [serverCon] = await withTimeout(Promise.all([server, nextEvent(client, 'connect', 5000)]), 5000, 'both handshakes');
  if (!serverCon.ready) await nextEvent(serverCon, 'connect', 5000);
  return { client, server: serverCon };
}

/** Resolves with the first value `emitter` passes to `event`, wrapped as a connection by `make`. */
function onFirst<T>(emitter: NodeJS.EventEmitter, event: string, make: (arg: T) => MuxConnection): Promise<MuxConnection> {
  return new Promise((resolve) => emitter.once(event, (arg: T) => resolve(make(arg))));
}

const transports: { name: string; open(t: TestContext): Promise<Ends> }[] = [
  {
    name: 'an in-memory duplex pair',
    async open() {
      const [a, b] = duplexPair();
      const server = wrap(b, { role: 'server' });
      return ready(wrap(a, { role: 'client' }), Promise.resolve(server));
    },
  },
  {
    name: 'node:tls with a self-signed certificate (a TLSSocket wrapped directly)',
    async open(t) {
      const tlsServer = tls.createServer({ key, cert });
      t.after(() => tlsServer.close());
      await new Promise<void>((resolve) => tlsServer.listen(0, HOST, resolve));
      const server = onFirst(tlsServer, 'secureConnection', (socket: tls.TLSSocket) => new MuxConnection(socket, { role: 'server' }));
      // Wrapped at once: what the connection writes before the TLS handshake ends waits in the socket.
      const socket = tls.connect({ host: HOST, port: (tlsServer.address() as AddressInfo).port, ca: cert });
      const ends = await ready(new MuxConnection(socket, { role: 'client' }), server);
      assert.equal(socket.authorized, true, 'the self-signed certificate was verified as trusted');
      return ends;
    },
  },
  {
    name: 'a Unix domain socket (net.Socket wrapped directly)',
    async open(t) {
      const socketPath = path.join(tmp, `bare-${process.pid}.sock`);
      const netServer = net.createServer();
      t.after(() => netServer.close());
      await new Promise<void>((resolve) => netServer.listen(socketPath, resolve));
      const server = onFirst(netServer, 'connection', (socket: net.Socket) => wrap(socket, { role: 'server' }));
      return ready(wrap(net.connect(socketPath), { role: 'client' }), server);
    },
  },
  {
    name: "a Unix domain socket through MuxServer's and MuxClient's path option",
    async open(t) {
      const socketPath = path.join(tmp, `mux-${process.pid}.sock`);
      const muxServer = new MuxServer(0, { path: socketPath });
      t.after(() => muxServer.destroy());
      await nextEvent(muxServer, 'listening', 5000);
      assert.equal(muxServer.address(), socketPath);
      const server = new Promise<MuxConnection>((resolve) => muxServer.once('connection', resolve));
      return ready(new MuxClient({ path: socketPath }), server);
    },
  },
  {
    name: "a WebSocket through ws's createWebSocketStream",
    async open(t) {
      const wss = new WebSocketServer({ host: HOST, port: 0 });
      t.after(() => wss.close());
      await nextEvent(wss, 'listening', 5000);
      const server = onFirst(wss, 'connection', (ws: WebSocket) => wrap(createWebSocketStream(ws), { role: 'server' }));
      const ws = new WebSocket(`ws://${HOST}:${(wss.address() as AddressInfo).port}`);
      return ready(wrap(createWebSocketStream(ws), { role: 'client' }), server);
    },
  },
];

/** Deterministic bytes both sides can derive from `size`. */
function replyBytes(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = size * 2654435761 + 7;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/**
 * The accepting side of every stream: reads to the end (the opener half-closed), then
 * answers on the same stream with the SHA-256 of what it read and `meta.reply` bytes.
 */
function serveDigests(con: MuxConnection, seen: unknown[]): void {
  con.on('stream', (stream: MuxStream) => {
    seen.push(stream.meta);
    const { reply } = stream.meta as { reply: number };
    collect(stream).then(
      (data) => stream.end(Buffer.concat([Buffer.from(sha256(data), 'hex'), replyBytes(reply)])),
      () => stream.destroy(),
    );
  });
}

/** Opens a stream, sends `size` random bytes, half-closes, and checks the answer. */
async function exchange(opener: MuxConnection, meta: { from: string; i: number; reply: number }, size: number): Promise<MuxStream> {
  const stream = await withTimeout(opener.StreamPool.createStream(meta), 5000, 'createStream');
  const payload = randomBytes(size);
  const answer = collect(stream, 15_000);
  stream.end(payload);
  const data = await answer;
  assert.equal(data.length, 32 + meta.reply, 'digest and reply arrive whole');
  assert.equal(data.subarray(0, 32).toString('hex'), sha256(payload), 'the peer read exactly what was sent');
  assert.ok(data.subarray(32).equals(replyBytes(meta.reply)), 'the reply arrived intact after our half-close');
  return stream;
}

describe('one connection over any Duplex', () => {
  for (const transport of transports) {
    test(
      `over ${transport.name}: streams each way with meta, hash-checked data, half-close, graceful close`,
      { timeout: 30_000 },
      async (t) => {
        const { client, server } = await transport.open(t);
        t.after(() => {
          client.destroy();
          server.destroy();
        });
        const clientSeen: unknown[] = [];
        const serverSeen: unknown[] = [];
        serveDigests(server, serverSeen);
        serveDigests(client, clientSeen);
        const errors: unknown[] = [];
        for (const con of [client, server]) con.on('error', (err: unknown) => errors.push(err));

        const fromClient = [
          [0, 3],
          [1, 0],
          [100_000, 70_000],
          [300 * 1024 + 7, 5],
        ] as const;
        const fromServer = [
          [17, 200_000],
          [256 * 1024, 1],
          [0, 0],
        ] as const;
        const streams = await Promise.all([
          ...fromClient.map(([size, reply], i) => exchange(client, { from: 'client', i, reply }, size)),
          ...fromServer.map(([size, reply], i) => exchange(server, { from: 'server', i, reply }, size)),
        ]);
        assert.ok(
          streams.slice(0, fromClient.length).every((s) => s.id % 2 === 1),
          'client-opened ids are odd',
        );
        assert.ok(
          streams.slice(fromClient.length).every((s) => s.id % 2 === 0 && s.id > 0),
          'server-opened ids are even',
        );
        const byIndex = (a: unknown, b: unknown): number => (a as { i: number }).i - (b as { i: number }).i;
        assert.deepEqual(
          serverSeen.sort(byIndex),
          fromClient.map(([, reply], i) => ({ from: 'client', i, reply })),
          'meta arrived deep-equal',
        );
        assert.deepEqual(
          clientSeen.sort(byIndex),
          fromServer.map(([, reply], i) => ({ from: 'server', i, reply })),
        );

        // Graceful close from the client: the server hears GO_AWAY, both close without error.
        const goaway = nextEvent(server, 'goaway', 5000);
        const closed = Promise.all([nextEvent(client, 'close', 5000), nextEvent(server, 'close', 5000)]);
        client.close();
        const [code] = await goaway;
        assert.equal(code, 0, 'GO_AWAY with the normal code');
        const [[clientHadError], [serverHadError]] = await closed;
        assert.equal(clientHadError, false);
        assert.equal(serverHadError, false);
        assert.deepEqual(errors, []);
        await assert.rejects(
          client.StreamPool.createStream({}),
          (err: unknown) => err instanceof MuxError && err.code === 'ERR_CONNECTION_CLOSED',
        );
      },
    );
  }
});

describe('the path option of MuxServer and MuxClient', () => {
  test('a client given a path where nothing listens fails with ERR_CONNECT_FAILED and never connects', { timeout: 10_000 }, async (t) => {
    const onConnected = t.mock.fn();
    const client = new MuxClient({ path: path.join(tmp, 'nobody.sock') }, onConnected);
    t.after(() => client.destroy());
    const [err] = await nextEvent(client, 'error', 5000);
    assert.ok(err instanceof MuxError);
    assert.equal(err.code, 'ERR_CONNECT_FAILED');
    assert.equal(onConnected.mock.callCount(), 0);
  });

  test('an empty path is rejected at construction', () => {
    assert.throws(
      () => new MuxClient({ path: '' }),
      (err: unknown) => err instanceof MuxError && err.code === 'ERR_INVALID_ARGUMENT',
    );
  });

  test('wrap is new MuxConnection with a required role', () => {
    const [a, b] = duplexPair();
    const con = wrap(a, { role: 'server', maxStreams: 3 });
    assert.ok(con instanceof MuxConnection);
    assert.equal(con.role, 'server');
    assert.equal(con.limits.maxStreams, 3);
    con.destroy();
    b.destroy();
  });
});
