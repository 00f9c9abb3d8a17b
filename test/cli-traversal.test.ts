/**
 * The real `tsmux serve` against hostile file names, sent with the library (the tsmux
 * sender never produces such names): every one is refused as a stream with the reason, and
 * nothing is written outside --dir, also through symbolic links planted inside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MuxClient, MuxError, util } from '../src/index';
import { listFiles, startServeCli, tempDir } from './helpers/cli';

async function connectTo(port: number): Promise<MuxClient> {
  const client = new MuxClient(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return client;
}

test('serve refuses traversal names, absolute names and link escapes; nothing lands outside --dir', async (t) => {
  const work = await tempDir(t, 'traversal');
  const inbox = path.join(work, 'deep', 'inbox'); // '../x' and 'a/../../x' would land in work/deep or work
  const outside = path.join(work, 'outside');
  mkdirSync(inbox, { recursive: true });
  mkdirSync(outside);
  // Links planted inside --dir (by someone with local access) must not lead the peer out.
  symlinkSync(outside, path.join(inbox, 'escape-dir'));
  symlinkSync(path.join(outside, 'target.txt'), path.join(inbox, 'escape-file'));
  mkdirSync(path.join(inbox, 'ok-dir'));
  symlinkSync('../ok-dir', path.join(inbox, 'ok-dir', 'loop')); // stays inside: allowed
  const source = path.join(work, 'payload.txt');
  writeFileSync(source, 'payload');
  const { port, proc } = await startServeCli(t, ['--dir', inbox]);
  const client = await connectTo(port);
  t.after(() => client.destroy());

  const hostile: [string, RegExp][] = [
    ['../x', /"\.\." segment/],
    ['a/../../x', /"\.\." segment/],
    ['../../outside/x', /"\.\." segment/],
    ['/etc/x', /absolute/],
    [path.join(outside, 'abs.txt'), /absolute/],
    ['a\\..\\..\\x', /backslash/],
    ['./x', /"\." segment/],
    ['a//x', /empty path segment/],
    ['x\u0000y', /NUL/],
    ['line\nbreak', /control characters/],
    ['C:/x', /absolute/],
    ['a'.repeat(300), /longer than/],
    ['', /missing file name/],
    ['escape-dir/x', /outside the receiving directory/],
    ['escape-dir/sub/x', /outside the receiving directory/],
    ['escape-file', /already exists/],
  ];
  for (const [name, reason] of hostile) {
    await assert.rejects(util.sendFileOver(client, source, { name }), (err: unknown) => {
      assert.ok(err instanceof MuxError, String(err));
      assert.equal(err.code, 'ERR_STREAM_REFUSED', `${JSON.stringify(name)}: ${err.message}`);
      assert.match(err.message, reason, JSON.stringify(name));
      return true;
    });
  }
  // A link that stays inside --dir is fine, and the connection still works after refusals.
  await util.sendFileOver(client, source, { name: 'ok-dir/loop/inside.txt' });
  await util.sendFileOver(client, source, { name: 'fine.txt' });

  assert.deepEqual(readdirSync(outside), [], 'nothing written outside --dir');
  assert.deepEqual(readdirSync(work).sort(), ['deep', 'outside', 'payload.txt']);
  assert.deepEqual(readdirSync(path.join(work, 'deep')), ['inbox']);
  assert.deepEqual(listFiles(inbox), ['escape-dir', 'escape-file', 'fine.txt', 'ok-dir/inside.txt', 'ok-dir/loop']);
  await proc.waitFor(/refused "\.\.\/x": file name has a "\.\." segment/);
});

test('serve refuses an unknown stream type and a forward not on --allow-forward', async (t) => {
  const work = await tempDir(t, 'types');
  const { port } = await startServeCli(t, ['--dir', path.join(work, 'inbox')]);
  const client = await connectTo(port);
  t.after(() => client.destroy());
  await assert.rejects(client.StreamPool.createStream({ type: 'shell', cmd: 'rm -rf /' }), {
    code: 'ERR_STREAM_REFUSED',
    message: /unknown stream type "shell"/,
  });
  await assert.rejects(client.StreamPool.createStream({ type: 'forward', to: '127.0.0.1:22' }), {
    code: 'ERR_STREAM_REFUSED',
    message: /forwarding to 127\.0\.0\.1:22 is not allowed/,
  });
  await assert.rejects(client.StreamPool.createStream({ type: 'file', name: 'x', size: -1 }), {
    code: 'ERR_STREAM_REFUSED',
    message: /size/,
  });
});
