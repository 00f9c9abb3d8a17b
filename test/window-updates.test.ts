/**
 * When window updates go back: one per half window consumed, but never more than
 * WINDOW_UPDATE_STEP apart on a long path, so a large window keeps the sender busy there;
 * and the connection's credit with each stream's update.
 * Driven frame by frame from a raw peer, so nothing here depends on timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MuxStream } from '../src/index';
import { WINDOW_UPDATE_STEP } from '../src/session/window-tuning';
import { nextEvent, waitFor } from './helpers/async';
import { encodeFrame, FrameType, rawClientForTest, serveForTest } from './helpers/wire-peer';

const FRAME = 64 * 1024;

function increments(frames: { payload: Buffer }[]): number[] {
  return frames.map((frame) => frame.payload.readUInt32BE(0));
}

/**
 * Sends `bytes` on stream 1 in 64 KiB frames to a server stream that reads everything. The
 * raw peer answers PINGs 20 ms late: the server measures a long path, where updates follow
 * WINDOW_UPDATE_STEP whatever the window.
 */
async function consumeOnServer(t: Parameters<typeof serveForTest>[0], window: number, bytes: number) {
  const { peer } = await bulkToServer(t, window, bytes);
  return increments(peer.framesOf(FrameType.WINDOW_UPDATE, 1));
}

async function bulkToServer(t: Parameters<typeof serveForTest>[0], window: number, bytes: number) {
  const { server, port } = await serveForTest(t, { initialWindow: window, maxWindow: window });
  const { peer, con } = await rawClientForTest(t, server, port, { pingDelayMs: 20 });
  const opened = nextEvent(con, 'stream');
  peer.open(1, 'window');
  const [stream] = (await opened) as [MuxStream];
  let received = 0;
  stream.on('data', (chunk: Buffer) => (received += chunk.length));
  for (let sent = 0; sent < bytes; sent += FRAME) peer.data(1, Buffer.alloc(FRAME, 0x77));
  await waitFor(() => received === bytes, 10_000, 'the server stream to read every byte');
  await peer.sync();
  return { peer };
}

test('a default-sized window is granted back once per half window consumed', { timeout: 15_000 }, async (t) => {
  const window = 256 * 1024;
  const updates = await consumeOnServer(t, window, 4 * window);
  assert.equal(updates.length, 8, 'one update per 128 KiB consumed');
  for (const increment of updates) assert.equal(increment, window / 2);
});

test('each stream update carries the connection credit owed with it, so the two never cost two writes', { timeout: 15_000 }, async (t) => {
  const window = 256 * 1024;
  const { peer } = await bulkToServer(t, window, 4 * window);
  const updates = peer.frames.filter((f) => f.type === FrameType.WINDOW_UPDATE);
  const streamUpdates = updates.filter((f) => f.streamId === 1).length;
  assert.equal(streamUpdates, 8);
  updates.forEach((frame, i) => {
    if (frame.streamId === 1) assert.equal(updates[i + 1]?.streamId, 0, `stream update ${i} is followed by the connection's`);
  });
  assert.equal(
    increments(updates.filter((f) => f.streamId === 0)).reduce((a, b) => a + b, 0) >= 4 * window - window / 2,
    true,
    'the connection credit kept pace with what was read',
  );
});

test(
  'a large window on a long path is granted back in steps of at most WINDOW_UPDATE_STEP, not half the window',
  { timeout: 15_000 },
  async (t) => {
    const window = 8 * WINDOW_UPDATE_STEP;
    const bytes = 3 * WINDOW_UPDATE_STEP;
    const updates = await consumeOnServer(t, window, bytes);
    assert.equal(updates.length, 3, 'half the window (4 MiB) was never consumed, yet credit came back');
    for (const increment of updates) assert.equal(increment, WINDOW_UPDATE_STEP);
    assert.equal(
      updates.reduce((a, b) => a + b, 0),
      bytes,
      'every consumed byte is credited back',
    );
  },
);

test(
  "a stream destroyed by its 'data' handler mid-read gives back every byte of the read: credit and memory",
  { timeout: 15_000 },
  async (t) => {
    const window = 128 * 1024;
    const { server, port } = await serveForTest(t, { connectionWindow: window, maxConnectionWindow: window });
    const { peer, con } = await rawClientForTest(t, server, port);
    let sent = 0;
    for (let id = 1; id <= 11; id += 2) {
      const opened = nextEvent(con, 'stream');
      peer.open(id, 'reject after the first chunk');
      const [stream] = (await opened) as [MuxStream];
      stream.on('error', () => {});
      stream.once('data', () => stream.destroy());
      // One write, so one read: a small frame (staged), then a large one that arrives after the
      // handler has destroyed the stream.
      peer.send(encodeFrame(FrameType.DATA, 0, id, Buffer.alloc(10, 1)), encodeFrame(FrameType.DATA, 0, id, Buffer.alloc(20_000, 2)));
      sent += 20_010;
      await peer.sync();
    }
    const granted = peer.framesOf(FrameType.WINDOW_UPDATE, 0).reduce((sum, frame) => sum + frame.payload.readUInt32BE(0), 0);
    // Releases are batched up to half the window; a leak of the large pieces would leave about 11 KB.
    assert.ok(window - sent + granted >= window / 2, `the peer holds ${window - sent + granted} bytes of connection credit`);
    const stats = con.stats();
    assert.equal(stats.bufferedIn, 0, 'nothing counts as buffered on a connection without streams');
    assert.equal(stats.memoryUsed, 0, 'nothing stays charged');
  },
);
