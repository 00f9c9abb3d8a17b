/**
 * When `tsmux serve` creates the directories of a received file's name: only for a stream it
 * accepted, and only once that stream's bytes arrive. A stream refused at open, one the sender
 * resets before the server has decided, and one that never sends a byte leave no new
 * directory under --dir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { MuxClient, MuxError, util, WireErrorCode, type MuxStream } from '../src/index';
import { encodeCodeAndReason } from '../src/codec/encode';
import { nextEvent, waitFor, withTimeout } from './helpers/async';
import { startServeCli, tempDir } from './helpers/cli';
import { encodeFrame, FrameType, handshakenWirePeer } from './helpers/wire-peer';

/** Every entry under `dir`, directories included, as sorted relative paths. */
function entries(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

async function connectTo(port: number): Promise<MuxClient> {
  const client = new MuxClient(port, '127.0.0.1');
  await withTimeout(nextEvent(client, 'connect'), 5000, 'the client to connect');
  return client;
}

test('serve makes no directories for a file stream it refuses at open, or that the sender resets before the verdict', async (t) => {
  const work = await tempDir(t, 'refused-dirs');
  const inbox = path.join(work, 'inbox');
  const big = path.join(work, 'big.bin');
  const small = path.join(work, 'small.bin');
  writeFileSync(big, Buffer.alloc(3000, 1));
  writeFileSync(small, 'small');
  const { port, proc } = await startServeCli(t, ['--dir', inbox, '--max-size', '2K']);
  const client = await connectTo(port);
  t.after(() => client.destroy());

  await assert.rejects(util.sendFileOver(client, big, { name: 'too/big/big.bin' }), (err: unknown) => {
    assert.ok(err instanceof MuxError, String(err));
    assert.equal(err.code, 'ERR_STREAM_REFUSED');
    assert.match(err.message, /over this server's limit/);
    return true;
  });

  // OPEN and RESET in one write: the server judges the name while the stream is already gone,
  // so the stream is never accepted.
  const peer = await handshakenWirePeer(port);
  t.after(() => peer.socket.destroy());
  const meta = Buffer.from(JSON.stringify({ type: 'file', name: 'gone/before/accept.bin', size: 5 }));
  peer.send(
    encodeFrame(FrameType.OPEN, 0, 1, meta),
    encodeFrame(FrameType.RESET, 0, 1, encodeCodeAndReason(WireErrorCode.CANCEL, 'changed my mind')),
  );
  await peer.sync();

  // A transfer that starts afterwards completes after the server has judged the reset stream.
  await util.sendFileOver(client, small, { name: 'made/on/arrival.bin' });
  await proc.waitFor(/received made\/on\/arrival\.bin/);
  assert.deepEqual(entries(inbox), ['made', 'made/on', 'made/on/arrival.bin'], 'only the accepted file made its directories');
});

test('serve makes no directories for an accepted file stream that never sends a byte', { timeout: 20_000 }, async (t) => {
  const work = await tempDir(t, 'silent-dirs');
  const inbox = path.join(work, 'inbox');
  const { port, proc } = await startServeCli(t, ['--dir', inbox, '--stall', '1']);
  const client = await connectTo(port);
  t.after(() => client.destroy());
  const stream: MuxStream = await client.StreamPool.createStream({ type: 'file', name: 'never/sent/a.bin', size: 1 });
  stream.on('error', () => {});
  await proc.waitFor(/failed never\/sent\/a\.bin: no data for 1(\.0)? s/, 10_000);
  await waitFor(() => stream.destroyed, 5000, 'the silent stream to be reset');
  assert.deepEqual(entries(inbox), [], 'no directory, no file, no temporary file');
});
