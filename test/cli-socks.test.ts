/**
 * `tsmux forward -D`: a SOCKS5 server whose CONNECTs travel over the one mux connection and
 * are checked against serve's --allow-forward (ranges and `host:*` included). A raw SOCKS5
 * client checks the reply codes; curl --socks5-hostname (when installed) checks a real one.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { spawnCli, startServeCli, tempDir } from './helpers/cli';

async function httpTarget(t: TestContext): Promise<number> {
  const app = http.createServer((req, res) => res.end(`socks ok ${req.url}`));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    app.close();
    app.closeAllConnections();
  });
  return (app.address() as net.AddressInfo).port;
}

/** serve with `allow`, and forward -D through it: the SOCKS port. */
async function socksVia(t: TestContext, allow: string): Promise<number> {
  const work = await tempDir(t, 'socks');
  const { port: servePort } = await startServeCli(t, ['--dir', work, '--allow-forward', allow]);
  const forward = spawnCli(t, ['forward', '-D', '0', '--via', `127.0.0.1:${servePort}`]);
  return Number((await forward.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
}

/** A SOCKS5 CONNECT by IPv4 address (atyp 1) or name (atyp 3); resolves with the reply code and the socket. */
function socksConnect(socksPort: number, host: string, port: number): Promise<{ code: number; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socksPort, '127.0.0.1');
    socket.on('error', reject);
    let stage = 0;
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (stage === 0 && buffered.length >= 2) {
        assert.deepEqual([...buffered.subarray(0, 2)], [5, 0], 'no authentication');
        buffered = buffered.subarray(2);
        stage = 1;
        const portBytes = Buffer.alloc(2);
        portBytes.writeUInt16BE(port);
        const address = net.isIPv4(host)
          ? Buffer.from([1, ...host.split('.').map(Number)])
          : Buffer.concat([Buffer.from([3, host.length]), Buffer.from(host)]);
        socket.write(Buffer.concat([Buffer.from([5, 1, 0]), address, portBytes]));
      }
      if (stage === 1 && buffered.length >= 10) {
        stage = 2;
        socket.removeAllListeners('data');
        resolve({ code: buffered[1], socket });
      }
    });
    socket.write(Buffer.from([5, 1, 0]));
  });
}

function httpOver(socket: net.Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.write(`GET ${path} HTTP/1.0\r\nHost: x\r\n\r\n`);
  });
}

test('SOCKS5 CONNECT by address and by name goes through; refused targets get SOCKS error codes', { timeout: 30_000 }, async (t) => {
  const target = await httpTarget(t);
  const closed = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const socks = await socksVia(t, `127.0.0.0/8:*,localhost:${target}`);

  const byAddress = await socksConnect(socks, '127.0.0.1', target);
  assert.equal(byAddress.code, 0);
  assert.match(await httpOver(byAddress.socket, '/by-address'), /socks ok \/by-address$/);

  const byName = await socksConnect(socks, 'localhost', target);
  assert.equal(byName.code, 0);
  assert.match(await httpOver(byName.socket, '/by-name'), /socks ok \/by-name$/);

  assert.equal((await socksConnect(socks, '127.0.0.1', closed)).code, 5, 'connection refused');
  assert.equal((await socksConnect(socks, '192.0.2.1', 80)).code, 2, 'not allowed by the ruleset');
  assert.equal((await socksConnect(socks, 'localhost', closed)).code, 2, 'localhost is allowed on one port only');
});

test(
  'curl --socks5-hostname works through forward -D',
  { timeout: 30_000, skip: !existsSync('/usr/bin/curl') && 'curl is not installed' },
  async (t) => {
    const target = await httpTarget(t);
    const socks = await socksVia(t, `localhost:*`);
    const body = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        ['-sS', '--max-time', '10', '--socks5-hostname', `127.0.0.1:${socks}`, `http://localhost:${target}/curl`],
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    assert.equal(body, 'socks ok /curl');
  },
);
