/**
 * MuxServer's `proxyProtocol`: the client named by a PROXY header (v1 or v2) is what
 * `con.remoteAddress`, `remotePort`, `authenticate`'s `info` and `clientError` report; the
 * bytes after the header reach the handshake, TLS included; LOCAL keeps the socket's
 * address; untrusted peers, missing, malformed, oversize and late headers are `clientError`s;
 * sockets reading their header count as handshakes; bad options fail at construction.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Duplex } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MuxClient, MuxConnection, MuxError, MuxServer, type ClientInfo, type MuxServerOptions } from '../src/index';
import { HOST, startServer, stopServer } from './helpers/mux';
import { nextEvent, waitFor, withTimeout } from './helpers/async';
import { collect } from './helpers/streams';
import { closedWithBytes, rawSocket } from './helpers/raw-peer';
import { makeCert, NO_OPENSSL } from './helpers/certs';
import { ipv4Block, ipv6Block, v1, v2 } from './helpers/proxy-builder';

const T = { timeout: 15_000 };

interface Reported {
  err: MuxError;
  socket: net.Socket;
  client: ClientInfo;
}

/** A proxy-protocol server that echoes every stream, with what it reports recorded. */
async function proxiedServer(t: TestContext, options: MuxServerOptions = {}) {
  const seen = { infos: [] as ClientInfo[], clientErrors: [] as Reported[], connections: [] as MuxConnection[] };
  const { server, port } = await startServer({
    proxyProtocol: true,
    authenticate: (_hello, info) => {
      seen.infos.push(info);
      return true;
    },
    ...options,
  });
  t.after(() => stopServer(server));
  server.on('clientError', (err, socket, client) => seen.clientErrors.push({ err, socket, client }));
  server.on('connection', (con) => {
    seen.connections.push(con);
    con.on('error', () => {});
    con.on('stream', (stream) => stream.pipe(stream));
  });
  return { server, port, seen };
}

/**
 * A muxer client that writes `header` first, as a balancer would, then its handshake. In the
 * clear the two are corked into one segment, so the server must hand the HELLO on; a TLS
 * socket writes through the raw socket's handle, so there the header goes out first, alone.
 */
async function clientBehind(port: number, header: Buffer, wrapTls?: (socket: net.Socket) => tls.TLSSocket): Promise<MuxConnection> {
  const socket = await rawSocket(port);
  if (!wrapTls) socket.cork();
  socket.write(header);
  const transport = wrapTls ? wrapTls(socket) : socket;
  const con = new MuxConnection(transport, { role: 'client' });
  if (!wrapTls) process.nextTick(() => socket.uncork());
  con.on('error', () => {});
  await nextEvent(con, 'connect', 5000);
  return con;
}

/** `socket` as a duplex whose first write goes out with `header` in front, in one segment. */
function prefixFirstWrite(socket: net.Socket, header: Buffer): Duplex {
  let first = true;
  const duplex = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      socket.write(first ? Buffer.concat([header, chunk]) : chunk, callback);
      first = false;
    },
    final(callback) {
      socket.end(callback);
    },
    read() {
      socket.resume();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  return duplex;
}

async function echoes(con: MuxConnection): Promise<void> {
  const stream = await con.StreamPool.createStream({ echo: true });
  const reply = collect(stream, 5000);
  stream.end('through the balancer');
  assert.equal((await reply).toString(), 'through the balancer');
}

describe('proxyProtocol: the client the header names', () => {
  test('a v2 TCP4 header: con.remoteAddress/remotePort and authenticate see the client, and streams flow', T, async (t) => {
    const { seen, port } = await proxiedServer(t);
    const con = await clientBehind(port, v2({ body: ipv4Block('203.0.113.9', '127.0.0.1', 40001, port) }));
    t.after(() => con.destroy());
    await waitFor(() => seen.connections.length === 1, 2000, 'connection');
    assert.deepEqual(seen.infos, [{ remoteAddress: '203.0.113.9', remotePort: 40001 }]);
    assert.equal(seen.connections[0].remoteAddress, '203.0.113.9');
    assert.equal(seen.connections[0].remotePort, 40001);
    await echoes(con);
  });

  test('a v2 TCP6 header and a v1 TCP4 header, each in one segment with the HELLO', T, async (t) => {
    const { seen, port } = await proxiedServer(t);
    const six = await clientBehind(
      port,
      v2({ familyProtocol: 0x21, body: ipv6Block('20010db8000000000000000000000009', '00000000000000000000000000000001', 5, port) }),
    );
    t.after(() => six.destroy());
    const one = await clientBehind(port, v1(`TCP4 198.51.100.20 127.0.0.1 65535 ${port}`));
    t.after(() => one.destroy());
    await waitFor(() => seen.connections.length === 2, 2000, 'connections');
    assert.deepEqual(
      seen.connections.map((c) => [c.remoteAddress, c.remotePort]),
      [
        ['2001:db8::9', 5],
        ['198.51.100.20', 65535],
      ],
    );
    await echoes(six);
    await echoes(one);
  });

  test("LOCAL (a health check), v1 UNKNOWN and v2 AF_UNSPEC keep the socket's own address", T, async (t) => {
    const { seen, port } = await proxiedServer(t);
    for (const header of [v2({ command: 0, familyProtocol: 0 }), v1('UNKNOWN'), v2({ familyProtocol: 0 })]) {
      const con = await clientBehind(port, header);
      t.after(() => con.destroy());
      const local = con.transportSocket as net.Socket;
      await waitFor(() => seen.infos.length > 0, 2000, 'authenticate');
      assert.deepEqual(seen.infos.pop(), { remoteAddress: local.localAddress, remotePort: local.localPort });
      await echoes(con);
    }
  });

  test(
    "TLS follows the header, alone or in one segment with the ClientHello; both sides see the header's client",
    { ...T, skip: NO_OPENSSL },
    async (t) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tsmux-proxy-tls-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const { key, cert } = makeCert(dir, 'server', '/CN=localhost', ['subjectAltName=DNS:localhost']);
      const { seen, port } = await proxiedServer(t, { tls: { key: readFileSync(key), cert: readFileSync(cert) } });
      const header = v1(`TCP4 192.0.2.33 127.0.0.1 1234 ${port}`);
      const alone = await clientBehind(port, header, (socket) => tls.connect({ socket, ca: readFileSync(cert), servername: 'localhost' }));
      t.after(() => alone.destroy());
      const together = await clientBehind(port, Buffer.alloc(0), (socket) =>
        tls.connect({ socket: prefixFirstWrite(socket, header), ca: readFileSync(cert), servername: 'localhost' }),
      );
      t.after(() => together.destroy());
      await waitFor(() => seen.connections.length === 2, 2000, 'connections');
      for (const [i, con] of [alone, together].entries()) {
        assert.ok(con.transportSocket instanceof tls.TLSSocket);
        assert.deepEqual([seen.connections[i].remoteAddress, seen.connections[i].remotePort], ['192.0.2.33', 1234]);
        assert.ok(seen.connections[i].transportSocket instanceof tls.TLSSocket);
        await echoes(con);
      }
    },
  );

  test("a client refused by authenticate is reported with the header's address", T, async (t) => {
    const { seen, port } = await proxiedServer(t, { authenticate: () => false });
    const socket = await rawSocket(port);
    const con = new MuxConnection(null, { role: 'client' });
    con.on('error', () => {});
    socket.write(v2({ body: ipv4Block('203.0.113.50', '127.0.0.1', 999, port) }));
    con.attach(socket);
    await waitFor(() => seen.clientErrors.length === 1, 5000, 'clientError');
    assert.equal(seen.clientErrors[0].err.code, 'ERR_AUTH_FAILED');
    assert.deepEqual(seen.clientErrors[0].client, { remoteAddress: '203.0.113.50', remotePort: 999 });
  });
});

describe('proxyProtocol: what is refused', () => {
  test('a peer outside `trusted` is refused before a byte is read (ERR_PROXY_UNTRUSTED); one inside is served', T, async (t) => {
    const outside = await proxiedServer(t, { proxyProtocol: { trusted: ['10.0.0.0/8', 'fd00::/8'] } });
    const socket = await rawSocket(outside.port);
    const closed = closedWithBytes(socket);
    socket.write(v1(`TCP4 192.0.2.1 127.0.0.1 1 ${outside.port}`));
    assert.equal((await closed).length, 0, 'nothing is written to an untrusted peer');
    await waitFor(() => outside.seen.clientErrors.length === 1, 2000, 'clientError');
    const [{ err, client }] = outside.seen.clientErrors;
    assert.equal(err.code, 'ERR_PROXY_UNTRUSTED');
    assert.match(err.message, /from 127\.0\.0\.1, which is not trusted \(trusted: 10\.0\.0\.0\/8, fd00::\/8\)/);
    assert.equal(client.remoteAddress, '127.0.0.1');

    const inside = await proxiedServer(t, { proxyProtocol: { trusted: ['10.0.0.0/8', '127.0.0.1'] } });
    const con = await clientBehind(inside.port, v1(`TCP4 192.0.2.1 127.0.0.1 7 ${inside.port}`));
    t.after(() => con.destroy());
    await echoes(con);
    assert.deepEqual(inside.seen.infos, [{ remoteAddress: '192.0.2.1', remotePort: 7 }]);
  });

  test('a muxer client that skips the balancer (no header) is refused with ERR_PROXY_HEADER', T, async (t) => {
    const { seen, port } = await proxiedServer(t);
    const client = new MuxClient(port, HOST);
    const failed = nextEvent(client, 'error', 5000);
    t.after(() => client.destroy());
    await failed;
    await waitFor(() => seen.clientErrors.length === 1, 2000, 'clientError');
    assert.equal(seen.clientErrors[0].err.code, 'ERR_PROXY_HEADER');
    assert.match(seen.clientErrors[0].err.message, /expected a PROXY protocol header/);
    assert.equal(seen.connections.length, 0);
  });

  const bad: [string, Buffer, RegExp][] = [
    ['a malformed v1 header', v1('TCP4 192.0.2.1 127.0.0.1 99999 1'), /"99999" is not a port/],
    ['a malformed v2 header', v2({ familyProtocol: 0x12, body: Buffer.alloc(12) }), /datagram transport/],
    ['a v2 header over maxProxyHeaderBytes', v2({ body: Buffer.alloc(500) }), /516 bytes is over the limit of 300/],
    ['a header cut short by the peer closing', Buffer.from('PROXY TCP4 192.0'), /closed after 16 bytes/],
  ];
  for (const [what, bytes, message] of bad) {
    test(`${what} is a clientError (ERR_PROXY_HEADER), and the socket is closed`, T, async (t) => {
      const { seen, port } = await proxiedServer(t, { maxProxyHeaderBytes: 300 });
      const socket = await rawSocket(port);
      const closed = closedWithBytes(socket);
      socket.end(bytes);
      await closed;
      await waitFor(() => seen.clientErrors.length === 1, 2000, 'clientError');
      assert.equal(seen.clientErrors[0].err.code, 'ERR_PROXY_HEADER');
      assert.match(seen.clientErrors[0].err.message, message);
    });
  }

  test('no header within handshakeTimeout is ERR_HANDSHAKE_TIMEOUT', T, async (t) => {
    const { seen, port } = await proxiedServer(t, { handshakeTimeout: 200 });
    const socket = await rawSocket(port);
    const closed = closedWithBytes(socket);
    socket.write('PROXY TCP4 ');
    await withTimeout(closed, 3000, 'the server to close the socket');
    assert.equal(seen.clientErrors[0].err.code, 'ERR_HANDSHAKE_TIMEOUT');
    assert.match(seen.clientErrors[0].err.message, /no PROXY protocol header within 200 ms/);
  });

  test('sockets reading their header count toward maxHandshakes; server.close() drops them', T, async (t) => {
    const { server, seen, port } = await proxiedServer(t, { maxHandshakes: 2 });
    const silent = [await rawSocket(port), await rawSocket(port)];
    const dropped = silent.map((socket) => closedWithBytes(socket));
    await waitFor(() => server.handshakeCount === 2, 2000, 'two handshakes');
    const third = await rawSocket(port);
    const refused = await closedWithBytes(third);
    assert.equal(refused.subarray(0, 4).toString(), 'TSMX', 'turned away with the magic and GO_AWAY OVERLOADED');
    assert.equal(seen.clientErrors[0].err.code, 'ERR_OVERLOADED');
    const closedServer = new Promise<void>((resolve) => server.close(() => resolve()));
    await withTimeout(Promise.all(dropped), 3000, 'the silent sockets to be dropped');
    await withTimeout(closedServer, 3000, 'the server to close');
    assert.equal(server.handshakeCount, 0);
  });
});

describe('proxyProtocol: options', () => {
  const invalid: [string, Partial<MuxServerOptions>, RegExp][] = [
    ['a string', { proxyProtocol: 'yes' as unknown as boolean }, /option proxyProtocol must be/],
    ['an empty trusted list', { proxyProtocol: { trusted: [] } }, /at least one entry/],
    ['trusted as a string', { proxyProtocol: { trusted: '10.0.0.0/8' as unknown as string[] } }, /option proxyProtocol must be/],
    ['a prefix too long', { proxyProtocol: { trusted: ['10.0.0.0/33'] } }, /"10\.0\.0\.0\/33" is not an IP address or CIDR range/],
    ['a host name', { proxyProtocol: { trusted: ['lb.example.org'] } }, /"lb\.example\.org" is not an IP address/],
    ['two slashes', { proxyProtocol: { trusted: ['10.0.0.0/8/8'] } }, /not an IP address or CIDR range/],
    [
      'a header limit below what the spec needs',
      { proxyProtocol: true, maxProxyHeaderBytes: 100 },
      /maxProxyHeaderBytes must be an integer from 232 to 65551/,
    ],
  ];
  for (const [what, options, message] of invalid) {
    test(`${what} throws ERR_INVALID_CONFIG at construction, before listening`, () => {
      assert.throws(
        () => new MuxServer(0, { host: HOST, ...options }),
        (err: unknown) => err instanceof MuxError && err.code === 'ERR_INVALID_CONFIG' && message.test(err.message),
      );
    });
  }
});
