/**
 * util.sendFileOver (opens the `{ type: 'file', name, size }` stream itself) and
 * receiveFile's `overwrite: false` (an existing file is never replaced, even one that
 * appears during the transfer).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { MuxError, util, type MuxStream } from '../src/index';
import { memoryTransport, type ConnectedPair } from './helpers/mux';
import { sha256, withTimeout } from './helpers/async';

async function setup(
  t: TestContext,
  server: Parameters<typeof memoryTransport.connect>[0] = {},
): Promise<{ pair: ConnectedPair; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tsm-over-'));
  const pair = await memoryTransport.connect(server);
  t.after(async () => {
    await pair.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  return { pair, dir };
}

test('sendFileOver opens a file stream with name and size and sends the file', async (t) => {
  const { pair, dir } = await setup(t);
  const content = randomBytes(300_000);
  const source = path.join(dir, 'source.bin');
  await writeFile(source, content);
  const seen: unknown[] = [];
  pair.server.on('stream', (stream: MuxStream) => {
    seen.push(stream.meta);
    void util.receiveFile(path.join(dir, 'stored.bin'), stream).catch(() => {});
  });
  const progress: number[] = [];
  const result = await withTimeout(
    util.sendFileOver(pair.client, source, { name: 'sub/x.bin', meta: { from: 'test' }, onProgress: (bytes) => progress.push(bytes) }),
    10_000,
    'sendFileOver',
  );
  assert.deepEqual(seen, [{ from: 'test', type: 'file', name: 'sub/x.bin', size: content.length }]);
  assert.equal(result.size, content.length);
  assert.equal(result.sha256, sha256(content));
  assert.equal(sha256(readFileSync(path.join(dir, 'stored.bin'))), sha256(content));
  assert.equal(progress.at(-1), content.length);
});

test('sendFileOver takes a StreamPool and defaults the name to the base name', async (t) => {
  const { pair, dir } = await setup(t);
  const source = path.join(dir, 'empty.txt');
  await writeFile(source, '');
  let meta: unknown;
  pair.server.on('stream', (stream: MuxStream) => {
    meta = stream.meta;
    void util.receiveFile(path.join(dir, 'out.txt'), stream).catch(() => {});
  });
  const result = await withTimeout(util.sendFileOver(pair.client.StreamPool, source), 10_000, 'sendFileOver');
  assert.deepEqual(meta, { type: 'file', name: 'empty.txt', size: 0 });
  assert.equal(result.size, 0);
  assert.equal(readFileSync(path.join(dir, 'out.txt')).length, 0);
});

test('sendFileOver rejects with the refusal reason when the receiver refuses the stream', async (t) => {
  const { pair, dir } = await setup(t, {
    server: { acceptStream: (meta) => ((meta as { name?: string }).name === 'ok' ? true : 'bad name') },
  });
  const source = path.join(dir, 'a.txt');
  await writeFile(source, 'a');
  await assert.rejects(util.sendFileOver(pair.client, source, { name: '../evil' }), (err: unknown) => {
    assert.ok(err instanceof MuxError);
    assert.equal(err.code, 'ERR_STREAM_REFUSED');
    assert.match(err.message, /bad name/);
    return true;
  });
});

test('sendFileOver with an aborted signal rejects with ERR_ABORTED, also while the open waits', async (t) => {
  // acceptStream never answers: the open waits until the signal fires.
  const { pair, dir } = await setup(t, { server: { acceptStream: () => new Promise(() => {}) } });
  const source = path.join(dir, 'a.txt');
  await writeFile(source, 'a');
  await assert.rejects(util.sendFileOver(pair.client, source, { signal: AbortSignal.abort() }), { code: 'ERR_ABORTED' });
  const controller = new AbortController();
  const sending = util.sendFileOver(pair.client, source, { signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await assert.rejects(withTimeout(sending, 5000, 'the abort'), { code: 'ERR_ABORTED' });
});

test('receiveFile with overwrite: false keeps a file that appeared during the transfer, and leaves no temporary file', async (t) => {
  const { pair, dir } = await setup(t);
  const source = path.join(dir, 'source.bin');
  await writeFile(source, randomBytes(100_000));
  const inbox = path.join(dir, 'inbox');
  await mkdir(inbox);
  const target = path.join(inbox, 'x.bin');
  const received = new Promise<unknown>((resolve) => {
    pair.server.on('stream', (stream: MuxStream) => {
      // Someone else creates the file while the bytes are on their way.
      void writeFile(target, 'theirs').then(() => util.receiveFile(target, stream, { overwrite: false }).then(resolve, resolve));
    });
  });
  await assert.rejects(util.sendFileOver(pair.client, source), (err: unknown) => {
    assert.ok(err instanceof MuxError);
    assert.equal(err.code, 'ERR_FILE_REJECTED');
    assert.match(err.message, /already exists/);
    return true;
  });
  const outcome = await received;
  assert.ok(outcome instanceof MuxError);
  assert.equal(readFileSync(target, 'utf8'), 'theirs');
  assert.deepEqual(await readdir(inbox), ['x.bin']);
  assert.ok(existsSync(target));
});
