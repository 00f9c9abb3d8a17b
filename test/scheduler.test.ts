/**
 * The write scheduler on its own: a real WriteScheduler and real MuxStreams, with a fake
 * connection whose transport is an in-memory Duplex that records every byte written to it
 * (and can hold its write callbacks, to push back). What was written is decoded again with
 * FrameDecoder, so every test asserts on frames as a peer would see them: order, stream
 * ids, flags and sizes. Nothing here depends on timing.
 *
 * Where a test needs several streams queued at the same moment, it queues them while the
 * host reports no writable transport (as during the handshake) and then opens it: the
 * scheduler may flush at once when a whole frame is waiting, so queueing them in one tick
 * alone does not guarantee they are queued together.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { encodeFrame, encodeWindowUpdate } from '../src/codec/encode';
import { Flag, FrameType, HEADER_LENGTH } from '../src/protocol/constants';
import { WriteScheduler, type SchedulerHost } from '../src/session/scheduler';
import { MuxStream, OpenState, type StreamHost } from '../src/session/stream';
import { decodeChunks, type DecodedFrame } from './helpers/collect';

type Frame = Extract<DecodedFrame, { kind: 'frame' }>;

/** A Duplex that keeps every chunk written to it; with `hold`, write callbacks wait for release(). */
class RecordingTransport extends Duplex {
  readonly chunks: Buffer[] = [];
  /** `_write`/`_writev` calls: one per uncorked batch. */
  batches = 0;
  hold = false;
  private held: (() => void)[] = [];

  constructor(highWaterMark: number) {
    super({ writableHighWaterMark: highWaterMark });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.batches++;
    this.chunks.push(Buffer.from(chunk));
    this.settle(callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    this.batches++;
    for (const { chunk } of chunks) this.chunks.push(Buffer.from(chunk));
    this.settle(callback);
  }

  private settle(callback: () => void): void {
    if (this.hold) this.held.push(callback);
    else callback();
  }

  /** Completes the held writes (which lets the transport emit `drain`). */
  release(): void {
    for (const callback of this.held.splice(0)) callback();
  }

  get heldWrites(): number {
    return this.held.length;
  }

  get bytesWritten(): number {
    let total = 0;
    for (const chunk of this.chunks) total += chunk.length;
    return total;
  }
}

interface Harness {
  transport: RecordingTransport;
  scheduler: WriteScheduler;
  /** Every setReadingPaused call, in order. */
  pauses: boolean[];
  /** While false, writableTransport() returns null (as during the handshake): nothing may be written. */
  open: boolean;
  /** Makes the transport writable and flushes, as the session does when its handshake completes. */
  openTransport(): void;
  /** A real MuxStream driven by this scheduler (open, with `sendWindow` bytes of send window). */
  stream(id: number, sendWindow?: number): MuxStream;
  /** Every frame written so far, decoded. */
  frames(): Frame[];
}

const BIG = 1 << 30;

function harness(options: { frameLimit?: number; highWaterMark?: number } = {}): Harness {
  const frameLimit = options.frameLimit ?? 16 * 1024;
  const transport = new RecordingTransport(options.highWaterMark ?? BIG);
  const pauses: boolean[] = [];
  const state = { open: true };
  const schedulerHost: SchedulerHost = {
    writableTransport: () => (state.open ? transport : null),
    frameLimit: () => frameLimit,
    setReadingPaused: (paused) => {
      pauses.push(paused);
    },
    controlQueued: () => {},
    writeBlocked: () => {},
  };
  const scheduler = new WriteScheduler(schedulerHost);
  scheduler.addSendCredit(0x7fffffff);
  // As the session does: the transport's drain restarts the flush.
  transport.on('drain', () => scheduler.flush());
  const streamHost: StreamHost = {
    scheduleSend: (stream) => scheduler.queueStream(stream),
    sendWindowUpdate: (stream, increment) => scheduler.queueControl(encodeWindowUpdate(stream.id, increment)),
    sendReset: () => {},
    streamClosed: () => {},
    releaseReceived: () => {},
    deliverLater: (stream) => stream.deliverStaged(),
    tuneWindow: (_stream, current) => current,
    windowResized: () => {},
    windowUpdateThreshold: (window) => window / 2,
  };
  return {
    transport,
    scheduler,
    pauses,
    get open() {
      return state.open;
    },
    set open(value: boolean) {
      state.open = value;
    },
    openTransport() {
      state.open = true;
      scheduler.schedule();
    },
    stream: (id, sendWindow = BIG) =>
      new MuxStream({
        id,
        meta: null,
        host: streamHost,
        recvWindow: 256 * 1024,
        sendWindow,
        openState: OpenState.OPEN,
        highWaterMark: 256 * 1024,
      }),
    frames: () => {
      const { frames, error } = decodeChunks(transport.chunks, { maxFrameSize: frameLimit, maxMetaBytes: 65536, maxHelloBytes: 65536 });
      assert.equal(error, null, `the scheduler wrote bytes that do not decode: ${error?.message}`);
      return frames.filter((f): f is Frame => f.kind === 'frame');
    },
  };
}

function immediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits until nothing more is written for a few turns of the event loop. */
async function settled(transport: RecordingTransport): Promise<void> {
  let quiet = 0;
  let last = -1;
  for (let i = 0; i < 100_000 && quiet < 3; i++) {
    await immediate();
    const now = transport.chunks.length;
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
}

const isData = (f: Frame): boolean => f.type === FrameType.DATA;
const dataOf = (frames: Frame[], id: number): Frame[] => frames.filter((f) => isData(f) && f.streamId === id);
const joined = (frames: Frame[]): Buffer => Buffer.concat(frames.map((f) => f.payload));

function ping(n: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(n, 4);
  return encodeFrame(FrameType.PING, 0, 0, payload);
}

describe('WriteScheduler: control frames first', () => {
  test('control frames queued after stream data are written before any DATA frame of the same flush, in their own order', async () => {
    const h = harness();
    h.open = false;
    const a = h.stream(1);
    a.write(pattern(40_000, 1));
    h.scheduler.queueControl(ping(1));
    h.scheduler.queueControl(encodeWindowUpdate(7, 1234));
    await settled(h.transport);
    assert.equal(h.transport.bytesWritten, 0, 'nothing goes out before the transport is writable');
    h.openTransport();
    await settled(h.transport);

    const frames = h.frames();
    assert.deepEqual(
      frames.slice(0, 2).map((f) => f.type),
      [FrameType.PING, FrameType.WINDOW_UPDATE],
    );
    assert.equal(frames[0].payload.readUInt32BE(4), 1);
    assert.equal(frames[1].streamId, 7);
    assert.deepEqual(
      frames.slice(2).map((f) => f.type),
      [FrameType.DATA, FrameType.DATA, FrameType.DATA],
      'then 40,000 bytes in frames of at most 16 KiB',
    );
    assert.deepEqual(joined(dataOf(frames, 1)), pattern(40_000, 1));
    // Everything went out in one corked batch.
    assert.equal(h.transport.batches, 1);
  });

  test('a control frame queued in the same tick as a small write goes out before its DATA frame', async () => {
    const h = harness();
    const a = h.stream(1);
    a.write(pattern(100, 1));
    h.scheduler.queueControl(ping(1));
    await settled(h.transport);
    assert.deepEqual(
      h.frames().map((f) => [f.type, f.streamId]),
      [
        [FrameType.PING, 0],
        [FrameType.DATA, 1],
      ],
    );
  });

  test('a control frame queued while a bulk transfer is under way goes out before the next DATA frame', async () => {
    const h = harness({ frameLimit: 16 * 1024 });
    const a = h.stream(1);
    const size = 4 * 1024 * 1024;
    a.write(pattern(size, 2));
    // Let the first flush run: it stops after its budget and continues on a later turn.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    const before = h.frames();
    assert.ok(before.length > 0, 'the first flush wrote something');
    const sentBefore = joined(dataOf(before, 1)).length;
    assert.ok(sentBefore < size, `one flush must not write all ${size} bytes (wrote ${sentBefore})`);

    h.scheduler.queueControl(ping(9));
    await settled(h.transport);
    const after = h.frames().slice(before.length);
    assert.equal(after[0].type, FrameType.PING, 'the ping is the first frame after the mark');
    assert.equal(after.filter((f) => f.type === FrameType.PING).length, 1);
    assert.deepEqual(joined(dataOf(h.frames(), 1)), pattern(size, 2));
  });
});

describe('WriteScheduler: fairness between streams', () => {
  test('three streams with lots of queued data are served round-robin A, B, C, A, B, C in frames of at most frameLimit bytes', async () => {
    const frameLimit = 4096;
    const h = harness({ frameLimit });
    const ids = [1, 3, 5];
    const size = 100 * 1024; // 25 frames each, 300 KiB in all: within one flush's budget
    const streams = ids.map((id) => h.stream(id));
    h.open = false;
    streams.forEach((s, i) => s.write(pattern(size, i)));
    h.openTransport();
    await settled(h.transport);

    const data = h.frames().filter(isData);
    assert.equal(data.length, 3 * (size / frameLimit));
    const expectedOrder = data.map((_, i) => ids[i % 3]);
    assert.deepEqual(
      data.map((f) => f.streamId),
      expectedOrder,
    );
    for (const f of data) assert.ok(f.payload.length <= frameLimit, `DATA frame of ${f.payload.length} bytes exceeds ${frameLimit}`);
    ids.forEach((id, i) => assert.deepEqual(joined(dataOf(data, id)), pattern(size, i), `stream ${id}'s bytes arrive intact and in order`));
  });

  test('round-robin continues across flushes when the streams hold more than one flush writes, and frames never exceed frameLimit', async () => {
    const frameLimit = 16 * 1024;
    const h = harness({ frameLimit });
    const size = 1536 * 1024; // 3 MiB together: several flushes
    const a = h.stream(1);
    const b = h.stream(3);
    h.open = false;
    a.write(pattern(size, 1));
    b.write(pattern(size, 2));
    h.openTransport();
    await settled(h.transport);

    const data = h.frames().filter(isData);
    assert.ok(h.transport.batches > 1, 'more than one flush was needed');
    assert.equal(data.length, (2 * size) / frameLimit);
    for (let i = 1; i < data.length; i++) {
      assert.notEqual(data[i].streamId, data[i - 1].streamId, `frames ${i - 1} and ${i} both belong to stream ${data[i].streamId}`);
    }
    for (const f of data) assert.ok(f.payload.length <= frameLimit);
    assert.deepEqual(joined(dataOf(data, 1)), pattern(size, 1));
    assert.deepEqual(joined(dataOf(data, 3)), pattern(size, 2));
  });

  test('a small write queued behind a stream with megabytes queued goes out in the first round', async () => {
    const h = harness({ frameLimit: 16 * 1024 });
    const bulk = h.stream(1);
    const small = h.stream(3);
    h.open = false;
    bulk.write(pattern(8 * 1024 * 1024, 1));
    small.write(pattern(100, 2));
    h.openTransport();
    await settled(h.transport);

    const data = h.frames().filter(isData);
    assert.deepEqual(
      data.slice(0, 2).map((f) => [f.streamId, f.payload.length]),
      [
        [1, 16 * 1024],
        [3, 100],
      ],
    );
    assert.equal(dataOf(data, 3).length, 1);
  });

  test('a small write made while megabytes of another stream are being sent waits behind at most one frame of it', async () => {
    const h = harness({ frameLimit: 16 * 1024 });
    const bulk = h.stream(1);
    const small = h.stream(3);
    bulk.write(pattern(8 * 1024 * 1024, 1));
    await new Promise<void>((resolve) => process.nextTick(resolve));
    const mark = h.frames().length;
    assert.ok(mark > 0, 'the bulk transfer has started');

    small.write(pattern(100, 2));
    await settled(h.transport);
    const after = h.frames().slice(mark);
    const at = after.findIndex((f) => f.streamId === 3);
    assert.ok(at >= 0, 'the small write went out');
    assert.ok(at <= 1, `the small write waited behind ${at} bulk frames`);
    assert.equal(joined(dataOf(h.frames(), 1)).length, 8 * 1024 * 1024, 'and the bulk transfer completed');
  });
});

describe('WriteScheduler: send window', () => {
  test('a stream whose send window is 0 is skipped while others are served, and resumes after onWindowUpdate', async () => {
    const frameLimit = 4096;
    const h = harness({ frameLimit });
    const blocked = h.stream(1, 0);
    const open = h.stream(3);
    blocked.write(pattern(20_000, 1));
    open.write(pattern(20_000, 2));
    await settled(h.transport);

    let frames = h.frames();
    assert.equal(dataOf(frames, 1).length, 0, 'no DATA for the stream without window');
    assert.deepEqual(joined(dataOf(frames, 3)), pattern(20_000, 2));
    assert.equal(blocked.queuedForSend, false, 'it is not parked in the ready list either');

    // A partial grant: exactly that much goes out, in frames of at most frameLimit.
    blocked.onWindowUpdate(10_000);
    await settled(h.transport);
    frames = h.frames();
    assert.deepEqual(
      dataOf(frames, 1).map((f) => f.payload.length),
      [4096, 4096, 10_000 - 8192],
    );
    assert.equal(blocked.stats().sendWindow, 0);

    blocked.onWindowUpdate(1 << 20);
    await settled(h.transport);
    frames = h.frames();
    assert.deepEqual(joined(dataOf(frames, 1)), pattern(20_000, 1));
    assert.equal(blocked.stats().sendWindow, (1 << 20) - 10_000);
  });
});

describe('WriteScheduler: FIN', () => {
  test('FIN goes on the last DATA frame after all queued data, and only there', async () => {
    const h = harness({ frameLimit: 4096 });
    const a = h.stream(1);
    let finished = false;
    a.on('finish', () => (finished = true));
    a.write(pattern(10_000, 1));
    a.end(pattern(5_000, 2));
    await settled(h.transport);

    const frames = dataOf(h.frames(), 1);
    assert.deepEqual(joined(frames), Buffer.concat([pattern(10_000, 1), pattern(5_000, 2)]));
    const finAt = frames.map((f, i) => (f.flags & Flag.FIN ? i : -1)).filter((i) => i >= 0);
    assert.deepEqual(finAt, [frames.length - 1], 'exactly one FIN, on the last frame');
    assert.equal(a.finSent, true);
    assert.equal(finished, true, "end()'s finish follows the FIN being written");
  });

  test('end() without data sends one empty DATA frame with FIN', async () => {
    const h = harness();
    const a = h.stream(1);
    a.end();
    await settled(h.transport);
    const frames = h.frames();
    assert.equal(frames.length, 1);
    assert.deepEqual([frames[0].type, frames[0].flags, frames[0].streamId, frames[0].payload.length], [FrameType.DATA, Flag.FIN, 1, 0]);
  });

  test('FIN waits behind data held back by the send window and goes out with its last byte', async () => {
    const h = harness({ frameLimit: 4096 });
    const a = h.stream(1, 3000);
    a.end(pattern(8000, 3));
    await settled(h.transport);
    let frames = dataOf(h.frames(), 1);
    assert.deepEqual(
      frames.map((f) => [f.payload.length, f.flags]),
      [[3000, 0]],
    );
    assert.equal(a.finSent, false);

    a.onWindowUpdate(5000);
    await settled(h.transport);
    frames = dataOf(h.frames(), 1);
    assert.deepEqual(
      frames.map((f) => [f.payload.length, f.flags]),
      [
        [3000, 0],
        [4096, 0],
        [904, Flag.FIN],
      ],
    );
    assert.deepEqual(joined(frames), pattern(8000, 3));
  });
});

describe('WriteScheduler: coalescing', () => {
  test('1,000 writes of 64 bytes on one stream become ceil(64,000 / frameLimit) full frames, not 1,000', async () => {
    const frameLimit = 16 * 1024;
    const h = harness({ frameLimit });
    const a = h.stream(1);
    const all = pattern(64_000, 5);
    for (let i = 0; i < 1000; i++) a.write(all.subarray(i * 64, (i + 1) * 64));
    await settled(h.transport);

    const data = dataOf(h.frames(), 1);
    assert.deepEqual(
      data.map((f) => f.payload.length),
      [frameLimit, frameLimit, frameLimit, 64_000 - 3 * frameLimit],
    );
    assert.deepEqual(joined(data), all);
  });
});

describe('WriteScheduler: the ready list', () => {
  test('a lone bulk writer ahead of its eager one-frame flushes keeps the ready list at one entry, not one per frame', async () => {
    const frameLimit = 1024;
    const h = harness({ frameLimit });
    // White-box: the list's length is what matters here. Grown by one per frame, it was
    // spliced 1,024 frames in, on a path the optimised flush had not seen (V8 deoptimised it
    // in the middle of a bulk transfer).
    const internals = h.scheduler as unknown as { ready: unknown[] };
    let longest = 0;
    const measure = (): void => {
      longest = Math.max(longest, internals.ready.length);
    };
    // Also at every batch the transport writes: once the stream's Writable buffers writes,
    // each frame taken calls back into it, and it queues the stream again from inside the
    // flush (which once put it in the list twice, and then once more per frame).
    const write = h.transport._write.bind(h.transport);
    const writev = h.transport._writev.bind(h.transport);
    h.transport._write = (chunk, encoding, callback) => (measure(), write(chunk, encoding, callback));
    h.transport._writev = (chunks, callback) => (measure(), writev(chunks, callback));
    const a = h.stream(1);
    // Two frames per write: each write's eager flush sends one, so the stream stays queued
    // with more to send, as a writer ahead of its socket does.
    const all = pattern(2 * 1500 * frameLimit, 9);
    for (let i = 0; i < 1500; i++) {
      a.write(all.subarray(2 * i * frameLimit, 2 * (i + 1) * frameLimit));
      measure();
    }
    await settled(h.transport);
    assert.ok(longest <= 2, `the ready list grew to ${longest} entries for one stream`);
    const data = dataOf(h.frames(), 1);
    assert.equal(data.length, 3000);
    assert.ok(data.every((f) => f.payload.length === frameLimit));
    assert.deepEqual(joined(data), all);
  });
});

describe('WriteScheduler: transport backpressure', () => {
  test('stops writing as soon as transport.write returns false and continues on the flush after drain', async () => {
    const frameLimit = 4096;
    const highWaterMark = 16 * 1024;
    const h = harness({ frameLimit, highWaterMark });
    h.transport.hold = true;
    const a = h.stream(1);
    const total = 64 * 1024;
    a.write(pattern(total, 7));
    await settled(h.transport);

    // write() turns false on the frame that takes the bytes buffered in the transport to its
    // high-water mark; the scheduler hands over no frame after that one.
    const perBurst = Math.ceil(highWaterMark / (HEADER_LENGTH + frameLimit));
    assert.equal(h.scheduler.framesOut, perBurst, `the scheduler handed over ${h.scheduler.framesOut} frames`);
    assert.equal(h.transport.writableNeedDrain, true);

    // More flushes while the transport needs drain write nothing, control frames included.
    const handed = h.scheduler.framesOut;
    const length = h.transport.writableLength;
    const recorded = h.transport.bytesWritten;
    h.scheduler.flush();
    h.scheduler.queueControl(ping(3));
    await settled(h.transport);
    assert.equal(h.scheduler.framesOut, handed, 'no frame handed over while the transport needs drain');
    assert.equal(h.transport.writableLength, length);
    assert.equal(h.transport.bytesWritten, recorded);

    // Each drain restarts the flush; the ping queued meanwhile leads the burst after the first drain.
    let rounds = 0;
    while (h.transport.heldWrites > 0 && rounds++ < 1000) {
      h.transport.release();
      await settled(h.transport);
    }
    const frames = h.frames();
    assert.equal(frames[handed].type, FrameType.PING, 'the first frame after the drain is the ping');
    assert.deepEqual(
      frames.slice(0, handed).map((f) => f.type),
      new Array(handed).fill(FrameType.DATA),
    );
    assert.deepEqual(joined(dataOf(frames, 1)), pattern(total, 7));
    assert.equal(dataOf(frames, 1).length, total / frameLimit);
    assert.ok(rounds > 2, `the data went out over ${rounds} drains`);
  });
});

describe('WriteScheduler: clear() and the control backlog', () => {
  test('clear() drops queued control frames and ready streams; a cleared stream can be queued again', async () => {
    const h = harness();
    const a = h.stream(1);
    a.write(pattern(1000, 1));
    h.scheduler.queueControl(ping(1));
    h.scheduler.queueControl(encodeWindowUpdate(1, 100));
    assert.equal(h.scheduler.pendingControlBytes, 2 * HEADER_LENGTH + 8 + 4);
    assert.equal(a.queuedForSend, true);

    h.scheduler.clear();
    assert.equal(h.scheduler.pendingControlBytes, 0);
    assert.equal(a.queuedForSend, false);
    await settled(h.transport);
    assert.equal(h.transport.bytesWritten, 0, 'nothing was written after clear()');
    assert.equal(h.scheduler.framesOut, 0);

    h.scheduler.queueStream(a);
    await settled(h.transport);
    const frames = h.frames();
    assert.deepEqual(
      frames.map((f) => [f.type, f.streamId, f.payload.length]),
      [[FrameType.DATA, 1, 1000]],
    );
  });

  test('clear() with nothing queued reports no change to the memory account (never -0, a double)', () => {
    const deltas: number[] = [];
    const scheduler = new WriteScheduler({
      writableTransport: () => null,
      frameLimit: () => 16 * 1024,
      setReadingPaused: () => {},
      controlQueued: (delta) => deltas.push(delta),
      writeBlocked: () => {},
    });
    scheduler.clear();
    assert.deepEqual(deltas, []);
    assert.ok(!deltas.some((delta) => Object.is(delta, -0)));
    scheduler.queueControl(ping(1));
    scheduler.clear();
    assert.deepEqual(deltas, [HEADER_LENGTH + 8, -(HEADER_LENGTH + 8)]);
  });

  test('control frames piling up beyond 1 MiB pause reading, and reading resumes once they are written', async () => {
    const h = harness();
    const frame = encodeWindowUpdate(1, 1);
    const count = Math.floor((1024 * 1024) / frame.length) + 1;
    // All queued in one tick, before the scheduler's flush can run.
    for (let i = 0; i < count; i++) h.scheduler.queueControl(frame);
    assert.deepEqual(h.pauses, [true], 'one pause when the backlog passed 1 MiB');
    await settled(h.transport);
    assert.deepEqual(h.pauses, [true, false]);
    assert.equal(h.scheduler.pendingControlBytes, 0);
    assert.equal(h.frames().length, count);
  });
  test("the first two flushes of a turn leave at the end of their tick, later ones together after the turn's I/O", async () => {
    const hs = [harness(), harness(), harness(), harness()];
    // Start from a turn of the event loop in which nothing has flushed yet.
    await immediate();
    await immediate();
    const written = await new Promise<{ atTick: number[]; atTurnEnd: number[] }>((resolve) => {
      setTimeout(() => {
        hs.forEach((h, i) => h.scheduler.queueControl(ping(i)));
        process.nextTick(() => {
          const atTick = hs.map((h) => h.frames().length);
          setImmediate(() => resolve({ atTick, atTurnEnd: hs.map((h) => h.frames().length) }));
        });
      }, 1);
    });
    assert.deepEqual(written.atTick, [1, 1, 0, 0], 'a window update or an answer must not wait for the turn to end');
    assert.deepEqual(written.atTurnEnd, [1, 1, 1, 1]);
  });
  test('a lost end-of-turn reset (fake timers dropping an immediate) delays eager flushes for one turn only', async () => {
    const hs = [harness(), harness(), harness(), harness()];
    await immediate();
    await immediate();
    // One turn: the reset that the first eager flush queues is dropped, as fake timers would.
    await new Promise<void>((resolve) => {
      setTimeout(() => {
        const realSetImmediate = globalThis.setImmediate;
        globalThis.setImmediate = (() => undefined) as unknown as typeof setImmediate;
        hs[0].scheduler.queueControl(ping(0));
        globalThis.setImmediate = realSetImmediate;
        for (let i = 1; i < hs.length; i++) hs[i].scheduler.queueControl(ping(i));
        setImmediate(resolve);
      }, 1);
    });
    // A later turn flushes at the end of its tick again.
    const atTick = await new Promise<number[]>((resolve) => {
      setTimeout(() => {
        const before = hs.map((h) => h.frames().length);
        hs.forEach((h, i) => h.scheduler.queueControl(ping(10 + i)));
        process.nextTick(() => resolve(hs.map((h, i) => h.frames().length - before[i])));
      }, 1);
    });
    assert.deepEqual(atTick, [1, 1, 0, 0]);
  });
});
