/**
 * TLS: MuxServer over tls.createServer and MuxClient over tls.connect, with certificates made
 * at test time by the openssl CLI (a CA, a server certificate for 127.0.0.1 and localhost, a
 * client certificate). Verification is on by default, mutual TLS works, and a peer that
 * speaks the wrong transport fails with a typed error without hanging either side.
 */
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { MuxClient, MuxError, type MuxClientOptions, type MuxConnection, type MuxServer, type MuxStream } from '../src/index';
import { HOST, startServer, stopServer } from './helpers/mux';
import { nextEvent, recordEvents, sha256, waitFor, withTimeout, type EventLog } from './helpers/async';
import { collect, nextStream } from './helpers/streams';
import { makeCert } from './helpers/certs';
import { FrameType, HEADER_LENGTH, PROTOCOL_VERSION } from '../src/protocol/constants';
import { frameBufferCounts } from '../src/session/frame-buffers';

interface Pki {
  ca: Buffer;
  serverKey: Buffer;
  serverCert: Buffer;
  clientKey: Buffer;
  clientCert: Buffer;
  /** A CA nobody here trusts, with a client certificate it signed. */
  otherCa: Buffer;
  otherClientKey: Buffer;
  otherClientCert: Buffer;
}

function makePki(dir: string): Pki {
  const caExt = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
  const ca = makeCert(dir, 'ca', '/CN=tcp-stream-muxer test CA', caExt);
  const server = makeCert(
    dir,
    'server',
    '/CN=localhost',
    ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth', 'basicConstraints=CA:FALSE'],
    ca,
  );
  const client = makeCert(dir, 'client', '/CN=test client', ['extendedKeyUsage=clientAuth', 'basicConstraints=CA:FALSE'], ca);
  const otherCa = makeCert(dir, 'other-ca', '/CN=untrusted CA', caExt);
  const otherClient = makeCert(dir, 'other-client', '/CN=stranger', ['extendedKeyUsage=clientAuth', 'basicConstraints=CA:FALSE'], otherCa);
  const read = (file: string): Buffer => readFileSync(file);
  return {
    ca: read(ca.cert),
    serverKey: read(server.key),
    serverCert: read(server.cert),
    clientKey: read(client.key),
    clientCert: read(client.cert),
    otherCa: read(otherCa.cert),
    otherClientKey: read(otherClient.key),
    otherClientCert: read(otherClient.cert),
  };
}

let pki: Pki;
let pkiDir: string;
before(() => {
  pkiDir = mkdtempSync(path.join(os.tmpdir(), 'tsm-tls-'));
  pki = makePki(pkiDir);
});
after(() => rmSync(pkiDir, { recursive: true, force: true }));

/** Short enough that a hang shows up as ERR_HANDSHAKE_TIMEOUT well inside the test timeout. */
const HANDSHAKE_TIMEOUT = 4000;

interface WatchedServer {
  server: MuxServer;
  port: number;
  events: EventLog;
  clientErrors: unknown[];
}

async function tlsServer(t: TestContext, tlsOptions: tls.TlsOptions = {}): Promise<WatchedServer> {
  const { server, port } = await startServer({
    handshakeTimeout: HANDSHAKE_TIMEOUT,
    tls: { key: pki.serverKey, cert: pki.serverCert, ...tlsOptions },
  });
  return watch(t, server, port);
}

function watch(t: TestContext, server: MuxServer, port: number): WatchedServer {
  t.after(() => stopServer(server));
  const events = recordEvents(server, ['error', 'connection']);
  const clientErrors: unknown[] = [];
  server.on('clientError', (err: unknown) => clientErrors.push(err));
  // Every stream the server gets is an echo that also proves it carries bytes the other way.
  server.on('connection', (con: MuxConnection) => {
    con.on('error', () => {});
    con.on('stream', (stream: MuxStream) => serveDigest(stream));
  });
  return { server, port, events, clientErrors };
}

/**
 * The server side of a checked exchange: reads everything, then answers with the SHA-256 of
 * what it read followed by `meta.reply` bytes of its own (seeded by the client, so the
 * client knows what to expect).
 */
function serveDigest(stream: MuxStream): void {
  stream.on('error', () => {});
  const { reply } = stream.meta as { reply: number };
  collect(stream).then(
    (data) => {
      const answer = Buffer.concat([Buffer.from(sha256(data), 'hex'), replyBytes(reply)]);
      stream.end(answer);
    },
    () => stream.destroy(),
  );
}

/** Deterministic pseudo-random bytes: both sides derive the same from `size`. */
function replyBytes(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = size * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Opens a stream, sends `size` random bytes, and checks the server's digest and reply. */
async function checkedExchange(client: MuxConnection, size: number, reply: number): Promise<void> {
  const stream = await withTimeout(client.StreamPool.createStream({ reply }), 5000, 'createStream');
  const payload = randomBytes(size);
  const answer = collect(stream, 10_000);
  stream.end(payload);
  const data = await answer;
  assert.equal(data.length, 32 + reply, 'digest and reply arrive whole');
  assert.equal(data.subarray(0, 32).toString('hex'), sha256(payload), 'the server read exactly what was sent');
  assert.equal(sha256(data.subarray(32)), sha256(replyBytes(reply)), 'the reply arrived intact');
}

interface Attempt {
  client: MuxClient;
  connected: boolean;
  events: EventLog;
}

/** Starts a client; records whether onConnected ran and what it emitted. */
function attempt(t: TestContext, port: number, options: MuxClientOptions): Attempt {
  let connected = false;
  const client = new MuxClient(port, HOST, { handshakeTimeout: HANDSHAKE_TIMEOUT, ...options }, () => {
    connected = true;
  });
  t.after(() => client.destroy());
  const events = recordEvents(client, ['error', 'close']);
  return {
    client,
    events,
    get connected() {
      return connected;
    },
  };
}

async function connected(t: TestContext, port: number, options: MuxClientOptions): Promise<MuxClient> {
  const a = attempt(t, port, options);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      a.client.once('connect', () => resolve());
      a.client.once('error', reject);
    }),
    HANDSHAKE_TIMEOUT + 1000,
    'the TLS client to connect',
  );
  return a.client;
}

/** Waits for the attempt's `close`, then checks it failed with `error` only, of a typed code. */
async function expectRefused(a: Attempt, codes: string[]): Promise<MuxError> {
  await withTimeout(
    new Promise<void>((resolve) => {
      if (a.events.names.includes('close')) resolve();
      else a.client.once('close', () => resolve());
    }),
    HANDSHAKE_TIMEOUT + 2000,
    'the client to give up',
  );
  assert.equal(a.connected, false, 'onConnected is never called');
  assert.deepEqual(a.events.names, ['error', 'close'], 'one error, then close');
  const err = a.events.args.get('error');
  assert.ok(err instanceof MuxError, `the client's error is a MuxError, got ${String(err)}`);
  assert.ok(codes.includes(err.code), `the client's error code ${err.code} is one of ${codes.join(', ')}: ${err.message}`);
  assert.equal(a.client.ready, false);
  return err;
}

/** Waits until the server has reported `count` client errors, then checks they are typed. */
async function expectClientErrors(s: WatchedServer, count: number, codes: string[]): Promise<void> {
  await waitFor(() => s.clientErrors.length >= count, HANDSHAKE_TIMEOUT + 2000, `${count} clientError event(s)`);
  assert.equal(s.clientErrors.length, count);
  for (const err of s.clientErrors) {
    assert.ok(err instanceof MuxError, `clientError carries a MuxError, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `clientError code ${err.code} is one of ${codes.join(', ')}: ${err.message}`);
  }
}

/** The server still serves: a proper TLS client connects and passes a checked exchange. */
async function stillServes(t: TestContext, s: WatchedServer): Promise<void> {
  const client = await connected(t, s.port, { tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
  await checkedExchange(client, 64 * 1024, 4096);
  client.destroy();
}

describe('TLS with a CA-signed server certificate', () => {
  test(
    'a TLS client that trusts the CA verifies the server and carries streams with hash-checked data both ways',
    { timeout: 20_000 },
    async (t) => {
      const s = await tlsServer(t);
      const serverCon = nextEvent(s.server, 'connection', 5000);
      const client = await connected(t, s.port, { tls: { ca: pki.ca } });
      const [con] = (await serverCon) as [MuxConnection];
      const socket = client.transportSocket;
      assert.ok(socket instanceof tls.TLSSocket, 'the client runs over a TLS socket');
      assert.equal(socket.authorized, true, 'the server certificate was verified against the CA');
      assert.equal(socket.getPeerCertificate().subject.CN, 'localhost');
      assert.equal(s.server.connectionCount, 1);

      // Several streams at once, each with data both ways.
      const sizes: [number, number][] = [
        [0, 1],
        [1, 0],
        [300 * 1024, 200 * 1024],
        [64 * 1024 + 7, 1024 * 1024],
        [5, 5],
      ];
      await Promise.all(sizes.map(([size, reply]) => checkedExchange(client, size, reply)));

      // The server can open streams toward the client too.
      const incoming = nextStream(client);
      const fromServer = await con.StreamPool.createStream({ from: 'server' });
      const payload = randomBytes(128 * 1024);
      fromServer.end(payload);
      const received = await incoming;
      assert.deepEqual(received.meta, { from: 'server' });
      received.end();
      assert.equal(sha256(await collect(received)), sha256(payload));
      assert.deepEqual(s.events.names, ['connection']);
      assert.deepEqual(s.clientErrors, []);
    },
  );

  test(
    'over TLS a DATA frame is one write of at most 64 KiB, header included, so it fills whole TLS records',
    { timeout: 20_000 },
    async (t) => {
      const s = await tlsServer(t);
      const client = await connected(t, s.port, { tls: { ca: pki.ca } });
      const socket = client.transportSocket as tls.TLSSocket;
      const writes: Buffer[] = [];
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = (chunk: Buffer, ...rest: unknown[]) => {
        writes.push(Buffer.from(chunk));
        return write(chunk, ...rest);
      };
      const allocatedBefore = frameBufferCounts().allocated;
      // 1 MiB + 7 bytes in writes of 3,000: every frame gathers many of them.
      const stream = await withTimeout(client.StreamPool.createStream({ reply: 16 }), 5000, 'createStream');
      const payload = randomBytes(16 * 64 * 1024 + 7);
      const answer = collect(stream, 10_000);
      for (let offset = 0; offset < payload.length; offset += 3000) stream.write(payload.subarray(offset, offset + 3000));
      stream.end();
      const data = await answer;
      assert.equal(data.subarray(0, 32).toString('hex'), sha256(payload), 'the server read exactly what was sent');
      // Each frame is copied into a pooled buffer that comes back once the socket wrote it.
      assert.ok(frameBufferCounts().allocated - allocatedBefore < 16, 'frame buffers are reused, not one allocated per frame');
      const big = writes.filter((w) => w.length > 1024);
      assert.ok(big.length >= 16, `${big.length} large writes`);
      for (const w of big) {
        assert.ok(w.length <= 64 * 1024, `a write of ${w.length} bytes would start a 5th TLS record`);
        assert.equal(w[0], PROTOCOL_VERSION, 'each large write starts with a frame header');
        assert.equal(w[1], FrameType.DATA);
        assert.equal(w.readUInt32BE(8), w.length - HEADER_LENGTH, 'and carries exactly that frame');
      }
      // Window updates may cut a frame short; most are full.
      assert.ok(
        big.filter((w) => w.length === 64 * 1024).length >= 8,
        'full frames are exactly 64 KiB on the wire: four TLS records of 16 KiB',
      );
    },
  );

  test('over TLS a small frame does not hold a whole 64 KiB pooled buffer', { timeout: 20_000 }, async (t) => {
    const s = await tlsServer(t);
    const client = await connected(t, s.port, { tls: { ca: pki.ca }, maxFrameSize: 2048 });
    const socket = client.transportSocket as tls.TLSSocket;
    const held: number[] = [];
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    socket.write = (chunk: Buffer, ...rest: unknown[]) => {
      if (chunk.length > 1024) held.push(chunk.buffer.byteLength);
      return write(chunk, ...rest);
    };
    await checkedExchange(client, 256 * 1024, 16);
    assert.ok(held.length >= 100, `${held.length} frames of 1-2 KiB`);
    assert.ok(
      held.every((bytes) => bytes < 64 * 1024),
      'each sits in a buffer of its own size (or a shared slab), not in a pooled 64 KiB one',
    );
  });

  test('the name localhost verifies too, through SNI and the DNS subjectAltName', { timeout: 15_000 }, async (t) => {
    const s = await tlsServer(t);
    const client = new MuxClient(s.port, 'localhost', { handshakeTimeout: HANDSHAKE_TIMEOUT, tls: { ca: pki.ca } });
    t.after(() => client.destroy());
    client.on('error', () => {});
    await nextEvent(client, 'connect', HANDSHAKE_TIMEOUT + 1000);
    await checkedExchange(client, 10_000, 10_000);
  });

  test(
    'certificate verification is on by default: a client without the CA gets ERR_TLS_HANDSHAKE and the server a clientError',
    { timeout: 15_000 },
    async (t) => {
      const s = await tlsServer(t);
      const a = attempt(t, s.port, { tls: {} });
      const err = await expectRefused(a, ['ERR_TLS_HANDSHAKE']);
      assert.match(err.message, /certificate/i, 'the message says the certificate was not trusted');
      await expectClientErrors(s, 1, ['ERR_TLS_HANDSHAKE']);
      assert.deepEqual(s.events.names, [], 'the server emits neither error nor connection');
      assert.equal(s.server.connectionCount, 0);
      await stillServes(t, s);
    },
  );

  test('verification can be turned off explicitly with rejectUnauthorized: false', { timeout: 15_000 }, async (t) => {
    const s = await tlsServer(t);
    const client = await connected(t, s.port, { tls: { rejectUnauthorized: false } });
    const socket = client.transportSocket as tls.TLSSocket;
    assert.equal(socket.authorized, false, 'the certificate was not trusted, only tolerated');
    await checkedExchange(client, 16 * 1024, 16 * 1024);
  });

  test('a client that trusts a different CA is refused the same way', { timeout: 15_000 }, async (t) => {
    const s = await tlsServer(t);
    const a = attempt(t, s.port, { tls: { ca: pki.otherCa } });
    await expectRefused(a, ['ERR_TLS_HANDSHAKE']);
    await expectClientErrors(s, 1, ['ERR_TLS_HANDSHAKE']);
    assert.deepEqual(s.events.names, []);
  });
});

describe('mutual TLS', () => {
  const mutual = (): tls.TlsOptions => ({ ca: pki.ca, requestCert: true, rejectUnauthorized: true });

  test('a client presenting a certificate from the CA connects, and the server sees who it is', { timeout: 15_000 }, async (t) => {
    const s = await tlsServer(t, mutual());
    const serverCon = nextEvent(s.server, 'connection', 5000);
    const client = await connected(t, s.port, { tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    const [con] = (await serverCon) as [MuxConnection];
    const socket = con.transportSocket as tls.TLSSocket;
    assert.equal(socket.authorized, true);
    assert.equal(socket.getPeerCertificate().subject.CN, 'test client');
    await checkedExchange(client, 200 * 1024, 50 * 1024);
    assert.deepEqual(s.clientErrors, []);
  });

  for (const [label, options] of [
    ['without a certificate', (): tls.ConnectionOptions => ({ ca: pki.ca })],
    [
      'with a certificate from an untrusted CA',
      (): tls.ConnectionOptions => ({ ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey }),
    ],
  ] as const) {
    test(
      `a client ${label} is rejected: ERR_TLS_HANDSHAKE on the client, clientError on the server, never onConnected`,
      { timeout: 15_000 },
      async (t) => {
        const s = await tlsServer(t, mutual());
        const a = attempt(t, s.port, { tls: options() });
        await expectRefused(a, ['ERR_TLS_HANDSHAKE']);
        await expectClientErrors(s, 1, ['ERR_TLS_HANDSHAKE']);
        assert.deepEqual(s.events.names, [], 'no connection event and no server error');
        assert.equal(s.server.connectionCount, 0);
        await stillServes(t, s);
      },
    );
  }
});

describe('mismatched transports', () => {
  test('a plain TCP client against a TLS server fails with a typed error, and the server keeps serving', { timeout: 15_000 }, async (t) => {
    const s = await tlsServer(t);
    const a = attempt(t, s.port, {});
    // The TLS server cannot parse the muxer preface as a ClientHello and drops the socket.
    await expectRefused(a, ['ERR_HANDSHAKE_FAILED', 'ERR_CONNECTION_CLOSED']);
    await expectClientErrors(s, 1, ['ERR_TLS_HANDSHAKE']);
    assert.deepEqual(s.events.names, []);
    await stillServes(t, s);
  });

  test('a TLS client against a plain server fails with ERR_TLS_HANDSHAKE, and the server keeps serving', { timeout: 15_000 }, async (t) => {
    const { server, port } = await startServer({ handshakeTimeout: HANDSHAKE_TIMEOUT });
    const s = watch(t, server, port);
    const a = attempt(t, port, { tls: { ca: pki.ca } });
    // The plain server reads a ClientHello where the magic should be and closes without a word.
    await expectRefused(a, ['ERR_TLS_HANDSHAKE']);
    await expectClientErrors(s, 1, ['ERR_HANDSHAKE_FAILED']);
    assert.deepEqual(s.events.names, []);
    const plain = await connected(t, port, {});
    await checkedExchange(plain, 32 * 1024, 32 * 1024);
  });
});
