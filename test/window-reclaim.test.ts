/**
 * The connection's window budget is shared: a window that one stream grew for a burst and
 * no longer uses goes back to the initial size when another stream's growth needs the
 * budget. Driven from a raw peer whose PING answers are delayed (a long path, as the
 * server measures it) and whose data goes out only within the credit it was granted.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { MuxConnection, MuxStream } from '../src/index';
import { RECLAIM_IDLE_RTTS } from '../src/session/window-tuning';
import { delay, nextEvent, waitFor } from './helpers/async';
import { FrameType, rawClientForTest, serveForTest, type WirePeer } from './helpers/wire-peer';

const KiB = 1024;
const MiB = 1024 * KiB;
const FRAME = 64 * KiB;
const INITIAL = 256 * KiB;
const BUDGET = 2 * MiB;
const PING_DELAY_MS = 50;

/** Credit the peer holds per stream, from the initial window and every WINDOW_UPDATE since. */
function creditOf(peer: WirePeer, streamId: number, sent: number): number {
  const granted = peer.framesOf(FrameType.WINDOW_UPDATE, streamId).reduce((sum, frame) => sum + frame.payload.readUInt32BE(0), 0);
  return INITIAL + granted - sent;
}

/** Sends `bytes` on `streamId`, never beyond the credit granted; `sent` bytes went out before. */
async function sendWithinWindow(peer: WirePeer, streamId: number, bytes: number, sent = 0): Promise<number> {
  for (let left = bytes; left > 0;) {
    await waitFor(() => creditOf(peer, streamId, sent) > 0, 10_000, `window on stream ${streamId}`);
    const size = Math.min(FRAME, left, creditOf(peer, streamId, sent));
    peer.data(streamId, Buffer.alloc(size, 0x5a));
    sent += size;
    left -= size;
  }
  return sent;
}

async function acceptedStream(
  peer: WirePeer,
  con: MuxConnection,
  streamId: number,
): Promise<{ stream: MuxStream; received: () => number }> {
  const opened = nextEvent(con, 'stream');
  peer.open(streamId, { id: streamId });
  const [stream] = (await opened) as [MuxStream];
  let received = 0;
  stream.on('data', (chunk: Buffer) => (received += chunk.length));
  return { stream, received: () => received };
}

type Received = Awaited<ReturnType<typeof acceptedStream>>;

/** Sends `bytes` more on `streamId` within its credit and waits until the reader has them all. */
async function deliver(peer: WirePeer, streamId: number, reader: Received, bytes: number, sentBefore = 0): Promise<number> {
  const sent = await sendWithinWindow(peer, streamId, bytes, sentBefore);
  await waitFor(() => reader.received() === sent, 10_000, `stream ${streamId} to read everything`);
  return sent;
}

/**
 * A server whose budget is BUDGET, a raw peer on a path of `pingDelayMs` (two quiet round
 * trips measured, so the server trusts it), and stream 1 grown to the whole budget.
 */
async function grownFirstStream(t: TestContext, pingDelayMs: number) {
  const { server, port } = await serveForTest(t, { initialWindow: INITIAL, maxWindow: BUDGET, maxBufferedBytes: BUDGET });
  const { peer, con } = await rawClientForTest(t, server, port, { pingDelayMs });
  const slowestRtt = Math.max(await con.ping(), await con.ping());
  const first = await acceptedStream(peer, con, 1);
  const sentOnFirst = await deliver(peer, 1, first, 6 * MiB);
  assert.equal(first.stream.stats().receiveWindowSize, BUDGET, 'stream 1 grew to the whole budget');
  return { peer, con, first, sentOnFirst, slowestRtt };
}

test('an idle grown window is given back when another stream needs the budget; its credit stays valid', { timeout: 30_000 }, async (t) => {
  const grown = await grownFirstStream(t, PING_DELAY_MS);
  const { peer, con, first } = grown;
  let { sentOnFirst, slowestRtt } = grown;

  // Stream 1 goes quiet for longer than RECLAIM_IDLE_RTTS round trips.
  slowestRtt = Math.max(slowestRtt, await con.ping());
  await delay(RECLAIM_IDLE_RTTS * slowestRtt + 200);

  const second = await acceptedStream(peer, con, 3);
  await deliver(peer, 3, second, 6 * MiB);
  assert.equal(second.stream.stats().receiveWindowSize, BUDGET, 'stream 3 grew past what the budget left it (512 KiB)');
  assert.equal(first.stream.stats().receiveWindowSize, INITIAL, 'stream 1 went back to the initial window');
  const oldCredit = creditOf(peer, 1, sentOnFirst);
  assert.ok(oldCredit > INITIAL, `stream 1's peer still holds ${oldCredit} bytes of credit: it was not revoked`);
  assert.equal(first.stream.stats().receiveWindow, oldCredit, 'both sides agree on the credit');

  // The peer may still use all of stream 1's old credit; grants resume once it is back inside the window.
  const updatesBefore = peer.framesOf(FrameType.WINDOW_UPDATE, 1).length;
  sentOnFirst = await deliver(peer, 1, first, oldCredit + MiB, sentOnFirst);
  await peer.sync();
  assert.deepEqual(peer.framesOf(FrameType.GO_AWAY), [], 'no flow-control error: the old credit was honoured');
  assert.deepEqual(peer.framesOf(FrameType.RESET, 1), []);
  const later = peer.framesOf(FrameType.WINDOW_UPDATE, 1).slice(updatesBefore);
  assert.ok(later.length > 0, 'stream 1 grants again once inside its window');
  const credit = creditOf(peer, 1, sentOnFirst);
  const { receiveWindow, receiveWindowSize } = first.stream.stats();
  assert.equal(receiveWindow, credit, 'both sides agree on the credit');
  assert.ok(credit > 0 && credit <= receiveWindowSize, `the peer holds ${credit} bytes: back within the window (${receiveWindowSize})`);
  // Busy again, stream 1 may grow, but only by what stream 3 left of the budget.
  const growth = receiveWindowSize - INITIAL + (second.stream.stats().receiveWindowSize - INITIAL);
  assert.ok(growth <= BUDGET, `windows grew by ${growth} bytes in all, within the budget`);
});

test('a grown window that is still in use is not taken', { timeout: 30_000 }, async (t) => {
  // A long path (8 round trips: 1.6 s) leaves a slow machine ample time for stream 3's transfer.
  const { peer, con, first } = await grownFirstStream(t, 200);

  // At once, well within RECLAIM_IDLE_RTTS round trips of stream 1's last growth.
  const second = await acceptedStream(peer, con, 3);
  // Enough for a few tunings of stream 3, all blocked by the budget.
  await deliver(peer, 3, second, 1 * MiB);
  assert.equal(first.stream.stats().receiveWindowSize, BUDGET, 'stream 1 keeps its window');
  assert.equal(second.stream.stats().receiveWindowSize, 2 * INITIAL, 'stream 3 grew only by the INITIAL bytes the budget had left');
});

test('a grown window returns to the budget when its stream closes', { timeout: 30_000 }, async (t) => {
  const { peer, con, first } = await grownFirstStream(t, PING_DELAY_MS);
  const closed = new Promise<void>((resolve) => first.stream.once('close', () => resolve()));
  first.stream.on('error', () => {});
  peer.reset(1, 0);
  await closed;

  // At once, not after RECLAIM_IDLE_RTTS: nothing is left to reclaim, the budget is simply free.
  const second = await acceptedStream(peer, con, 3);
  await deliver(peer, 3, second, 6 * MiB);
  assert.equal(second.stream.stats().receiveWindowSize, BUDGET);
});
