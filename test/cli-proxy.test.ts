/**
 * `tsmux serve --proxy-protocol [CIDR,...]`: the log shows the client a PROXY header names;
 * peers outside the list are refused and logged as themselves; a balancer's bare TCP health
 * check is not logged; a bad range is a usage error; SIGTERM closes the listener first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { MuxConnection, util } from '../src/index';
import { delay, nextEvent } from './helpers/async';
import { runCli, startServeCli, tempDir } from './helpers/cli';
import { rawSocket, closedWithBytes } from './helpers/raw-peer';
import { ipv4Block, v1, v2 } from './helpers/proxy-builder';
import { writeFileSync, readFileSync } from 'node:fs';

/** A muxer client whose connection starts with `header`, as a balancer's would. */
async function behindBalancer(port: number, header: Buffer): Promise<MuxConnection> {
  const socket = await rawSocket(port);
  socket.write(header);
  const con = new MuxConnection(socket, { role: 'client' });
  con.on('error', () => {});
  await nextEvent(con, 'connect', 5000);
  return con;
}

test('serve --proxy-protocol (any peer) logs the client the header names, and stores its file', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'proxy-any');
  const inbox = path.join(work, 'inbox');
  const { proc, port } = await startServeCli(t, ['--dir', inbox, '--proxy-protocol']);
  await proc.waitFor(/storing files in .*, PROXY protocol from any peer$/m);
  const con = await behindBalancer(port, v2({ body: ipv4Block('203.0.113.9', '127.0.0.1', 40001, port) }));
  t.after(() => con.destroy());
  await proc.waitFor(/^connection from 203\.0\.113\.9:40001$/m);
  const source = path.join(work, 'a.txt');
  writeFileSync(source, 'from behind the balancer');
  await util.sendFileOver(con, source);
  await proc.waitFor(/^received a\.txt .* from 203\.0\.113\.9$/m);
  assert.equal(readFileSync(path.join(inbox, 'a.txt'), 'utf8'), 'from behind the balancer');

  // A balancer's TCP health check: connect, close, not a byte. Nothing to log.
  const check = await rawSocket(port);
  const closed = closedWithBytes(check);
  check.end();
  await closed;
  // A real client that skipped the balancer is logged.
  const direct = await rawSocket(port);
  const refused = closedWithBytes(direct);
  direct.write('TSMX');
  await refused;
  await proc.waitFor(/^rejected client 127\.0\.0\.1: PROXY protocol: expected a PROXY protocol header .*\[ERR_PROXY_HEADER\]$/m);
  assert.doesNotMatch(proc.stdout, /closed before its PROXY protocol header/);
});

test('serve --proxy-protocol with a list believes only those peers, and logs others as themselves', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'proxy-list');
  const { proc, port } = await startServeCli(t, ['--dir', path.join(work, 'inbox'), '--proxy-protocol', '10.0.0.0/8,fd00::/8']);
  await proc.waitFor(/PROXY protocol from 10\.0\.0\.0\/8, fd00::\/8$/m);
  const socket = await rawSocket(port);
  const closed = closedWithBytes(socket);
  socket.write(v1(`TCP4 203.0.113.9 127.0.0.1 1 ${port}`));
  await closed;
  await proc.waitFor(
    /^rejected client 127\.0\.0\.1: PROXY protocol header from 127\.0\.0\.1, which is not trusted .*\[ERR_PROXY_UNTRUSTED\]$/m,
  );

  const { proc: trusting, port: trustingPort } = await startServeCli(t, ['--proxy-protocol=127.0.0.1', '--dir', path.join(work, 'inbox2')]);
  const con = await behindBalancer(trustingPort, v1(`TCP4 198.51.100.7 127.0.0.1 65000 ${trustingPort}`));
  t.after(() => con.destroy());
  await trusting.waitFor(/^connection from 198\.51\.100\.7:65000$/m);
});

test('serve --proxy-protocol with something that is not an address or range is a usage error', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'proxy-usage');
  const result = await runCli(t, ['serve', '--port', '0', '--dir', path.join(work, 'inbox'), '--proxy-protocol', 'lb.example.org']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--proxy-protocol: "lb\.example\.org" is not an IP address or CIDR range/);
});

test('on SIGTERM serve closes its listener at once, while a transfer in flight still finishes', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'proxy-drain');
  const { proc, port } = await startServeCli(t, ['--dir', path.join(work, 'inbox'), '--proxy-protocol']);
  const con = await behindBalancer(port, v1(`TCP4 192.0.2.1 127.0.0.1 5 ${port}`));
  t.after(() => con.destroy());
  const stream = await con.StreamPool.createStream({ type: 'file', name: 'slow.bin', size: 4 });
  const goaway = nextEvent(con, 'goaway', 5000);
  proc.child.kill('SIGTERM');
  await goaway;
  // The port refuses new connections (a health check fails) while the transfer goes on.
  const refused = await new Promise<boolean>((resolve) => {
    const probe = net.connect(port, '127.0.0.1');
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', () => resolve(true));
  });
  assert.equal(refused, true, 'the listener is closed while draining');
  await delay(100);
  const file = path.join(work, 'slow.bin');
  writeFileSync(file, 'late');
  await util.sendFile(file, stream);
  await proc.waitFor(/^received slow\.bin 4 B/m);
  assert.equal((await proc.exited()).code, 0);
});
