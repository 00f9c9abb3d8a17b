/**
 * Liveness on its own, with a fake host: which round trips count for window tuning, and
 * how heartbeats stand in for keepalive while reading is paused, and when a transport that
 * refuses writes counts as stalled. No real time is asserted: the stall tests mock the clock.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Liveness, type LivenessHost } from '../src/session/liveness';
import { FrameType, Flag, HEADER_LENGTH } from '../src/protocol/constants';
import type { MuxError } from '../src/errors';
import { isFastPath } from '../src/session/window-tuning';

function fakeHost(): LivenessHost & { frames: Buffer[]; moved: number; timeouts: MuxError[] } {
  return {
    frames: [],
    moved: 0,
    timeouts: [],
    queueControl(frame: Buffer) {
      this.frames.push(frame);
    },
    onKeepAliveTimeout(err: MuxError) {
      this.timeouts.push(err);
    },
    bytesMoved() {
      return this.moved;
    },
  };
}

/** Answers the last PING the host sent, as the peer would. */
function answerLastPing(liveness: Liveness, host: ReturnType<typeof fakeHost>): void {
  const frame = host.frames[host.frames.length - 1];
  assert.equal(frame[1], FrameType.PING);
  assert.equal(frame.readUInt16BE(2) & Flag.ACK, 0, 'a request, not an answer');
  liveness.onPing(Flag.ACK, frame.subarray(HEADER_LENGTH));
}

/**
 * A Liveness (keepalive every `intervalMs`, timeout 1,000 ms) whose clock and timers run only
 * when the test says: `advance` moves both, `moveClock` the clock alone.
 */
function withMockedClock(t: TestContext, intervalMs: number) {
  let now = 0;
  t.mock.timers.enable({ apis: ['setTimeout'] });
  t.mock.method(performance, 'now', () => now);
  const host = fakeHost();
  const liveness = new Liveness(host, intervalMs, 1000, 512 * 1024);
  const moveClock = (ms: number): void => {
    now += ms;
  };
  const advance = (ms: number): void => {
    moveClock(ms);
    t.mock.timers.tick(ms);
  };
  return { host, liveness, advance, moveClock };
}

describe('Liveness round-trip samples', () => {
  test('a round trip during which little moved counts toward minRtt and samples', async () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 0, 1000, 512 * 1024);
    const rtt = liveness.ping();
    host.moved += 100 * 1024;
    answerLastPing(liveness, host);
    assert.ok((await rtt) >= 0);
    assert.equal(liveness.samples, 1);
    assert.equal(liveness.minRtt, liveness.lastRtt);
  });

  test('a round trip that waited behind bulk data updates lastRtt but not minRtt or samples', async () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 0, 1000, 512 * 1024);
    const rtt = liveness.ping();
    host.moved += 4 * 1024 * 1024;
    answerLastPing(liveness, host);
    await rtt;
    assert.notEqual(liveness.lastRtt, null);
    assert.equal(liveness.samples, 0);
    assert.equal(liveness.minRtt, null);
  });

  test('a PING from the peer is answered with ACK and the same payload, and leaves nothing pending', () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 0, 1000, 1024);
    const payload = Buffer.from('0102030405060708', 'hex');
    liveness.onPing(0, payload);
    const answer = host.frames[0];
    assert.equal(answer[1], FrameType.PING);
    assert.equal(answer.readUInt16BE(2), Flag.ACK);
    assert.deepEqual(answer.subarray(HEADER_LENGTH), payload);
  });
});

describe('Liveness while reading is paused', () => {
  test('pausing starts heartbeats that nobody waits for, and stop() clears them', async () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 20, 20, 1024);
    liveness.setReading(false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const beats = host.frames.filter((f) => f[1] === FrameType.PING && f.subarray(HEADER_LENGTH).equals(Buffer.alloc(8, 0xff)));
    assert.ok(beats.length >= 2, `heartbeats sent: ${beats.length}`);
    assert.equal(host.timeouts.length, 0, 'no keepalive verdict while paused');
    liveness.stop(() => new Error('done'));
    const count = host.frames.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(host.frames.length, count, 'no heartbeat after stop()');
  });

  test('a keepalive ping goes out every interval however busy the peer is, and only its answer meets the deadline', () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 1000, 1000, 1024);
    liveness.tick(); // a keepalive ping, whatever else arrives: a peer that sends but never reads must answer it
    assert.equal(host.frames.length, 1);
    const payload = host.frames[0].subarray(HEADER_LENGTH);
    liveness.onPing(Flag.ACK, payload); // answered
    liveness.tick(); // the next interval: a new ping
    assert.equal(host.frames.length, 2);
    liveness.tick(); // one at a time: no second ping while the first waits
    assert.equal(host.frames.length, 2);
    liveness.expire(); // its answer never came
    assert.equal(host.timeouts.length, 1);
    assert.equal(host.timeouts[0].code, 'ERR_KEEPALIVE_TIMEOUT');
    liveness.stop(() => new Error('done'));
  });
});

describe('Liveness keepalive on the shared wheel', () => {
  test("the peer's PING carries ours along with its answer, and our own turn then sends nothing", () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 60_000, 1000, 1024);
    liveness.start();
    liveness.onPing(0, Buffer.alloc(8, 7));
    assert.equal(host.frames.length, 2, 'the answer and our keepalive ping, queued together');
    assert.equal(host.frames[0].readUInt16BE(2), Flag.ACK);
    assert.equal(host.frames[1].readUInt16BE(2) & Flag.ACK, 0);
    liveness.onPing(0, Buffer.alloc(8, 8));
    assert.equal(host.frames.length, 3, 'while ours waits for its answer, only the answer goes');
    answerLastPingAt(liveness, host, 1);
    liveness.tick();
    assert.equal(host.frames.length, 3, 'our turn is covered by the ping that rode along');
    liveness.stop(() => new Error('done'));
  });

  test('a connection that never opens a stream never probes its round trip; the first stream starts three probes', () => {
    const host = fakeHost();
    const liveness = new Liveness(host, 0, 1000, 1024);
    liveness.start();
    assert.equal(host.frames.length, 0);
    liveness.measurePath();
    liveness.measurePath();
    assert.equal(host.frames.length, 1, 'one probe now, the others later, once');
    liveness.stop(() => new Error('done'));
  });
});

describe('Liveness probes for later streams', () => {
  /** A mocked-clock Liveness without keepalive, and a way to count what measurePath sends. */
  function withClock(t: TestContext) {
    const { host, liveness, moveClock } = withMockedClock(t, 0);
    t.after(() => liveness.stop(() => new Error('done')));
    /** Pings measurePath sent now (the first stream's timed probes are not counted). */
    const streamAdded = (): number => {
      const before = host.frames.length;
      liveness.measurePath();
      return host.frames.length - before;
    };
    /** Answers the last ping after `rtt` ms (nothing else moved: a quiet round trip). */
    const answerAfter = (rtt: number): void => {
      moveClock(rtt);
      answerLastPing(liveness, host);
    };
    // Only the clock moves: the first stream's timed probes stay unsent and do not interfere.
    return { liveness, streamAdded, answerAfter, wait: moveClock };
  }

  test('on a path first measured long, a later stream probes again, and a quick answer makes the path fast', (t) => {
    const { liveness, streamAdded, answerAfter, wait } = withClock(t);
    assert.equal(streamAdded(), 1, "the first stream's probe");
    answerAfter(6);
    assert.equal(streamAdded(), 1, 'one sample of 6 ms: not measured fast yet');
    answerAfter(6);
    assert.equal(liveness.samples, 2);
    assert.equal(isFastPath(liveness), false);
    wait(100);
    assert.equal(streamAdded(), 1, 'two samples of 6 ms read a long path: a later stream probes again');
    answerAfter(1);
    assert.equal(liveness.minRtt, 1);
    assert.equal(isFastPath(liveness), true);
    wait(1000);
    assert.equal(streamAdded(), 0, 'a path measured fast is not probed again');
  });

  test('no probe while one is unanswered, at most one per REPROBE interval, and at most 16 on a long path', (t) => {
    const { streamAdded, answerAfter, wait } = withClock(t);
    assert.equal(streamAdded(), 1);
    assert.equal(streamAdded(), 0, 'the first probe is still out');
    answerAfter(50);
    let probes = 0;
    for (let i = 0; i < 40; i++) {
      const sent = streamAdded();
      probes += sent;
      assert.equal(streamAdded(), 0, 'a second stream at the same moment adds nothing');
      if (sent !== 0) {
        answerAfter(50);
        assert.equal(streamAdded(), 0, 'answered, but within 100 ms of the last probe: none');
      }
      wait(60);
    }
    assert.equal(probes, 16, 'a path that stays long is probed 16 more times, then left alone');
  });

  test("an application's ping still out holds the probe back", (t) => {
    const { liveness, streamAdded, answerAfter, wait } = withClock(t);
    assert.equal(streamAdded(), 1);
    answerAfter(50);
    wait(100);
    const pending = liveness.ping();
    assert.equal(streamAdded(), 0, 'the answer to ping() will measure the path too');
    answerAfter(50);
    return pending.then(() => assert.equal(streamAdded(), 1, 'answered: the next stream probes'));
  });
});

function answerLastPingAt(liveness: Liveness, host: ReturnType<typeof fakeHost>, index: number): void {
  liveness.onPing(Flag.ACK, host.frames[index].subarray(HEADER_LENGTH));
}

describe('Liveness write stalls', () => {
  test('a transport that refuses writes for keepAliveTimeout ends the connection', (t) => {
    const { host, liveness, advance } = withMockedClock(t, 500);
    liveness.writeBlocked();
    advance(999);
    assert.equal(host.timeouts.length, 0);
    advance(1);
    assert.equal(host.timeouts.length, 1);
    assert.equal(host.timeouts[0].code, 'ERR_KEEPALIVE_TIMEOUT');
  });

  test('blocking again after a drain restarts the count: the timeout runs from the last refusal', (t) => {
    const { host, liveness, advance } = withMockedClock(t, 500);
    liveness.writeBlocked();
    advance(300);
    liveness.writeDrained();
    advance(300);
    liveness.writeBlocked(); // blocked since 600: due at 1600, not at 1000
    advance(900);
    assert.equal(host.timeouts.length, 0, 'the check at 1000 saw 400 ms of refusal and waits on');
    advance(100);
    assert.equal(host.timeouts.length, 1);
  });

  test('a sender that blocks and drains once per frame leaves no stall behind, and stop() disarms the check', (t) => {
    const { host, liveness, advance } = withMockedClock(t, 500);
    for (let frame = 0; frame < 10_000; frame++) {
      liveness.writeBlocked();
      liveness.writeDrained();
      if (frame % 100 === 0) advance(10);
    }
    advance(5000);
    assert.equal(host.timeouts.length, 0);
    liveness.writeBlocked();
    liveness.stop(() => new Error('closed'));
    advance(5000);
    assert.equal(host.timeouts.length, 0, 'a stopped connection reports no stall');
  });
});
