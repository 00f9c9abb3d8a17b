/**
 * What `tsmux serve` does about a peer that lies about a file's size, sends one that is too
 * large, or stops sending: the transfer fails, the sender is told, and no temporary file is
 * left behind. The hostile peer is the library itself, which can send anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MuxClient, MuxError, util, type MuxStream } from '../src/index';
import { nextEvent, waitFor, withTimeout } from './helpers/async';
import { runCli, startServeCli, tempDir } from './helpers/cli';
import { fileHeader } from './helpers/streams';

async function connectTo(port: number): Promise<MuxClient> {
  const client = new MuxClient(port, '127.0.0.1');
  await withTimeout(nextEvent(client, 'connect'), 5000, 'the client to connect');
  return client;
}

test('serve rejects a transfer whose header disagrees with the size in its meta, and keeps nothing', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'lying-size');
  const inbox = path.join(work, 'inbox');
  const source = path.join(work, 'big.bin');
  writeFileSync(source, Buffer.alloc(100_000, 7));
  const { port, proc } = await startServeCli(t, ['--dir', inbox]);
  const client = await connectTo(port);
  t.after(() => client.destroy());
  // meta says 1 byte; the transfer itself carries 100,000.
  const stream = await client.StreamPool.createStream({ type: 'file', name: 'lie.bin', size: 1 });
  await assert.rejects(util.sendFile(source, stream), (err: unknown) => {
    assert.ok(err instanceof MuxError, String(err));
    assert.equal(err.code, 'ERR_FILE_REJECTED');
    assert.match(err.message, /announced 1 bytes but its transfer carries 100000/);
    return true;
  });
  await proc.waitFor(/failed lie\.bin/);
  assert.deepEqual(readdirSync(inbox), [], 'neither the file nor a temporary file is left');
});

test('serve --max-size refuses a larger file at open, with the reason', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'max-size');
  const inbox = path.join(work, 'inbox');
  const small = path.join(work, 'small.bin');
  const large = path.join(work, 'large.bin');
  writeFileSync(small, Buffer.alloc(1024, 1));
  writeFileSync(large, Buffer.alloc(3000, 2));
  const { port } = await startServeCli(t, ['--dir', inbox, '--max-size', '2K']);
  const client = await connectTo(port);
  t.after(() => client.destroy());
  await assert.rejects(util.sendFileOver(client, large), (err: unknown) => {
    assert.ok(err instanceof MuxError, String(err));
    assert.equal(err.code, 'ERR_STREAM_REFUSED');
    assert.match(err.message, /over this server's limit of 2048/);
    return true;
  });
  await util.sendFileOver(client, small);
  assert.deepEqual(readdirSync(inbox), ['small.bin']);
});

test('serve --stall aborts a transfer that stops moving and deletes its temporary file', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'stall');
  const inbox = path.join(work, 'inbox');
  const { port, proc } = await startServeCli(t, ['--dir', inbox, '--stall', '1']);
  const client = await connectTo(port);
  t.after(() => client.destroy());
  const stream: MuxStream = await client.StreamPool.createStream({ type: 'file', name: 'stuck.bin', size: 100 });
  stream.on('error', () => {});
  stream.write(Buffer.concat([fileHeader(100), Buffer.from('abc')])); // then nothing more
  await waitFor(() => readdirSync(inbox).some((name) => name.endsWith('.part')), 5000, 'the temporary file to appear');
  await proc.waitFor(/failed stuck\.bin: no data for 1(\.0)? s/, 10_000);
  await waitFor(() => readdirSync(inbox).length === 0, 5000, 'the temporary file to be deleted');
  await waitFor(() => stream.destroyed, 5000, 'the stalled stream to be closed');
});

test('serve --stall also aborts a file stream that never sends a byte, not even the header', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'silent');
  const inbox = path.join(work, 'inbox');
  const { port, proc } = await startServeCli(t, ['--dir', inbox, '--stall', '1']);
  const client = await connectTo(port);
  t.after(() => client.destroy());
  // Accepted, then silence: the stall timer must run from the accept, not from the first byte.
  const stream: MuxStream = await client.StreamPool.createStream({ type: 'file', name: 'silent.bin', size: 100 });
  stream.on('error', () => {});
  await proc.waitFor(/failed silent\.bin: no data for 1(\.0)? s/, 10_000);
  await waitFor(() => stream.destroyed, 5000, 'the silent stream to be reset');
  assert.equal((stream.errored as MuxError | null)?.code, 'ERR_STREAM_RESET');
  assert.deepEqual(readdirSync(inbox), [], 'no file, no temporary file');
});

test(
  'serve --max-connections turns one client too many away with OVERLOADED; bad values are usage errors',
  { timeout: 20_000 },
  async (t) => {
    const work = await tempDir(t, 'max-connections');
    const { port } = await startServeCli(t, ['--dir', path.join(work, 'inbox'), '--max-connections', '1', '--max-memory', '64M']);
    const first = await connectTo(port);
    t.after(() => first.destroy());
    const second = new MuxClient(port, '127.0.0.1');
    t.after(() => second.destroy());
    const [err] = (await nextEvent(second, 'error')) as [MuxError];
    assert.equal(err.code, 'ERR_OVERLOADED');
    assert.match(err.message, /maximum of 1 connections/);
    for (const args of [
      ['--max-connections', '0'],
      ['--max-handshakes', 'x'],
      ['--max-memory', '0'],
    ]) {
      const { code, stderr } = await runCli(t, ['serve', '--port', '0', '--dir', path.join(work, 'other'), ...args]);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, new RegExp(args[0]));
    }
  },
);
