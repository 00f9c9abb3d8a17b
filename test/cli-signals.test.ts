/**
 * SIGTERM during a transfer, with the transfer held mid-file by a stalling proxy between
 * `tsmux send` and `tsmux serve`: nothing half-written is ever put in place. An interrupted
 * sender exits 143; a server lets an in-flight file finish within --grace, or aborts it. What
 * arrived of a cut file stays as a partial file, and the next send continues from its end.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { FaultProxy } from './helpers/fault-proxy';
import { waitFor } from './helpers/async';
import { hashFile, listFiles, runCli, spawnCli, startServeCli, tempDir } from './helpers/cli';

const MIB = 1024 * 1024;

interface Setup {
  work: string;
  inbox: string;
  serve: Awaited<ReturnType<typeof startServeCli>>['proc'];
  send: ReturnType<typeof spawnCli>;
}

/**
 * serve ← proxy (uploads stall after 1 MiB for `stallMs`) ← send big.bin; resolves once big.bin
 * is mid-transfer. The stall only has to outlast the signal; a long one would keep this file
 * running (the proxy sleeps through it).
 */
async function midTransfer(
  t: TestContext,
  stallMs: number,
  serveArgs: string[] = [],
  sendArgs: string[] = [],
  afterBytes = 1 * MIB,
): Promise<Setup> {
  const work = await tempDir(t, 'signals');
  const inbox = path.join(work, 'inbox');
  writeFileSync(path.join(work, 'big.bin'), randomBytes(6 * MIB));
  writeFileSync(path.join(work, 'small.txt'), 'queued behind big.bin');
  const { port, proc: serve } = await startServeCli(t, ['--dir', inbox, ...serveArgs]);
  const proxy = await FaultProxy.start(port, { fault: { kind: 'stall', afterBytes, ms: stallMs }, directions: ['up'] });
  t.after(() => proxy.close());
  const send = spawnCli(t, ['send', `127.0.0.1:${proxy.port}`, 'big.bin', ...sendArgs], { cwd: work });
  // The server holds a temporary file with some of the bytes: the transfer is under way.
  await waitFor(() => partials(inbox).some((file) => statSync(path.join(inbox, file)).size > 0), 10_000, 'a partial file on the server');
  return { work, inbox, serve, send };
}

/** Files put in place: everything but partial files. */
function placed(dir: string): string[] {
  return listFiles(dir).filter((name) => !name.endsWith('.part'));
}

function partials(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => name.endsWith('.part'));
  } catch {
    return [];
  }
}

for (const cutAt of [2, 3.5, 5]) {
  test(`SIGTERM to send after ${cutAt} of 6 MiB: exit 143, nothing put in place; the next send resumes and sends only the rest`, async (t) => {
    const { work, inbox, send, serve } = await midTransfer(t, 10_000, [], [], cutAt * MIB);
    // The receiver writes in 1 MiB batches: most of what came before the cut is on disk.
    await waitFor(
      () => partials(inbox).some((file) => statSync(path.join(inbox, file)).size >= (cutAt - 1.2) * MIB),
      10_000,
      'the bytes before the cut',
    );
    send.child.kill('SIGTERM');
    const exit = await send.exited();
    assert.equal(exit.code, 143);
    assert.match(send.stdout, /^0 files sent, .*\(interrupted by SIGTERM\)$/m);
    await serve.waitFor(/sync received from .*: 0 files/);
    assert.deepEqual(placed(inbox), [], 'no file put in place');
    const kept = partials(inbox);
    assert.equal(kept.length, 1, 'what arrived is kept');
    const keptBytes = statSync(path.join(inbox, kept[0])).size;
    assert.ok(keptBytes >= (cutAt - 0.5) * MIB && keptBytes < 6 * MIB, `kept ${keptBytes} bytes`);
    // The same command again, without the stalling proxy: only the rest crosses the wire.
    const port = /listening on [^:]+:(\d+)/.exec(serve.stdout)![1];
    const again = await runCli(t, ['send', `127.0.0.1:${port}`, 'big.bin', '--json'], { cwd: work });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const summary = JSON.parse(again.stdout) as { files: number; bytes: number; wireBytes: number };
    assert.equal(summary.files, 1);
    assert.equal(summary.bytes, 6 * MIB);
    assert.equal(summary.wireBytes, 6 * MIB - keptBytes, 'only the part after the kept prefix was sent');
    assert.equal(hashFile(path.join(inbox, 'big.bin')), hashFile(path.join(work, 'big.bin')), 'the whole file verified');
    assert.deepEqual(partials(inbox), []);
  });
}

test('SIGTERM to serve mid-transfer: the transfer is aborted after --grace, nothing put in place, serve exits 0', async (t) => {
  const { inbox, send, serve } = await midTransfer(t, 4000, ['--grace', '0.3'], ['small.txt'], 3 * MIB);
  serve.child.kill('SIGTERM');
  const exit = await serve.exited();
  assert.equal(exit.code, 0, serve.stderr);
  assert.deepEqual(placed(inbox), [], 'no file put in place');
  assert.match(serve.stdout, /shutting down/);
  const sent = await send.exited();
  assert.equal(sent.code, 1);
  assert.match(send.stdout, /^0 files sent, /m);
});

test('SIGTERM to serve mid-transfer: a file that finishes within --grace is stored whole', async (t) => {
  const { work, inbox, send, serve } = await midTransfer(t, 800, ['--grace', '20']);
  serve.child.kill('SIGTERM');
  const exit = await serve.exited();
  assert.equal(exit.code, 0, serve.stderr);
  assert.deepEqual(listFiles(inbox), ['big.bin']);
  assert.equal(hashFile(path.join(inbox, 'big.bin')), hashFile(path.join(work, 'big.bin')));
  assert.equal((await send.exited()).code, 0, send.stdout + send.stderr);
});

test('SIGTERM to send while the handshake hangs: exits 143 at once', async (t) => {
  const work = await tempDir(t, 'hang');
  writeFileSync(path.join(work, 'a.txt'), 'a');
  // Accepts TCP and never answers the handshake.
  const silent = net.createServer((socket) => socket.on('error', () => {}));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    silent.close();
  });
  const accepted = new Promise((resolve) => silent.once('connection', resolve));
  const send = spawnCli(t, ['send', `127.0.0.1:${(silent.address() as net.AddressInfo).port}`, 'a.txt'], { cwd: work });
  await accepted;
  send.child.kill('SIGTERM');
  const exit = await send.exited(5000);
  assert.equal(exit.code, 143);
  assert.match(send.stderr, /connecting aborted/);
});
