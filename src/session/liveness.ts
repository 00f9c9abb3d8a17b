import { encodeFrame, writeHeader } from '../codec/encode';
import { MuxError } from '../errors';
import { Flag, FrameType, HEADER_LENGTH, PING_PAYLOAD_LENGTH } from '../protocol/constants';
import { wheelFor, type WheelMember } from './keepalive-wheel';
import { isFastPath } from './window-tuning';

/** What {@link Liveness} needs from its connection. */
export interface LivenessHost {
  queueControl(frame: Buffer): void;
  /** The peer stopped answering keepalive pings. */
  onKeepAliveTimeout(err: MuxError): void;
  /** Bytes received plus bytes sent on the transport so far. */
  bytesMoved(): number;
}

// Payload of heartbeat PINGs; its answer matches no pending ping and is ignored.
const HEARTBEAT_PAYLOAD = Buffer.from('ffffffffffffffff', 'hex');

// Round-trip probes once the connection carries its first stream: at once, then after these delays.
const RTT_PROBE_DELAYS_MS = [100, 1000];
// A later stream on a path not yet measured fast probes again, at most this often and this many
// times in all: enough to correct a first sample from cold processes, bounded on a long path.
const REPROBE_INTERVAL_MS = 100;
const MAX_REPROBES = 16;

interface PendingPing {
  start: number;
  /** `bytesMoved()` when the ping left. */
  moved: number;
  resolve: (rtt: number) => void;
  reject: (err: Error) => void;
}

/**
 * PING round trips and keepalive for one connection. Every interval a keepalive ping goes
 * out, one at a time so nothing accumulates per ping; only its answer meets the deadline
 * (other traffic does not: a peer that keeps sending but never reads must not pass), and an
 * unanswered one ends the connection instead of leaving it hanging.
 *
 * The intervals of all connections are driven by one shared timer (keepalive-wheel.ts),
 * each connection at a random point of the interval. When the peer's ping arrives and ours
 * is due in the second half of the interval anyway, ours goes out with the answer, in the
 * same write: both sides' keepalives then cost three packets an interval instead of four,
 * and each side still proves every interval that the other reads.
 *
 * A connection that never carries a stream never measures its round trip: the samples are
 * for window tuning, and ten thousand idle connections would pay three round trips each.
 */
export class Liveness implements WheelMember {
  private pending: Map<number, PendingPing> | null = null;
  private counter = 0;
  private deadline: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  /**
   * When the transport last refused a write (ms, `performance.now()`); -Infinity while it takes
   * them. Times are fractional: a sentinel that is a double from the start spares V8 a change
   * of the field's representation, which would deoptimise code using every Liveness.
   */
  private blockedSince = -Infinity;
  private probeTimer: NodeJS.Timeout | null = null;
  /** Next entry of RTT_PROBE_DELAYS_MS; -1 before the probes started. */
  private probeIndex = -1;
  /** Probes sent for later streams (measurePath), and when the last left (a double, as blockedSince). */
  private reprobes = 0;
  private reprobedAt = -Infinity;
  /** Id of the keepalive ping in flight (valid while `deadline` is set). */
  private keepAliveId = 0;
  /** When the last keepalive ping left (ms, `performance.now()`), and `bytesMoved()` then; -Infinity: never (a double, as blockedSince). */
  private keepAliveAt = -Infinity;
  private keepAliveMoved = 0;
  /** The last keepalive ping went out early, with the answer to the peer's. */
  private piggybacked = false;
  /** @internal WheelMember */
  wheelSlot = -1;
  /** @internal WheelMember */
  wheelIndex = 0;
  /** Last measured round trip in milliseconds, or null before the first. */
  lastRtt: number | null = null;
  /**
   * Smallest round trip measured while the connection was quiet: the path's delay without
   * queueing, in milliseconds. A ping that waited behind bulk data measures the queue, not
   * the path, and would make window tuning grow the very queue it measured.
   */
  minRtt: number | null = null;
  /** Quiet round trips measured so far. */
  samples = 0;

  /**
   * @param quietBytes a round trip during which at most this many bytes moved either way
   *   counts as measured on a quiet connection.
   */
  constructor(
    private readonly host: LivenessHost,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly quietBytes: number,
  ) {}

  /**
   * Reading from the peer stopped (the application is not reading and the memory budget is
   * spent) or started again. While stopped, PING answers sit unread behind data, so our own
   * keepalive cannot judge the peer; instead we send heartbeats, so that the peer's
   * keepalive, whose pings we are not reading either, still hears from us.
   */
  setReading(reading: boolean): void {
    if (reading) {
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = null;
      return;
    }
    if (this.heartbeat || this.intervalMs === 0) return;
    this.clearDeadline();
    this.heartbeat = setInterval(onHeartbeat, Math.max(1, Math.floor(Math.min(this.intervalMs, this.timeoutMs) / 2)), this);
    this.heartbeat.unref();
  }

  /**
   * The transport took no more of our bytes (its buffer is full): if it does not drain
   * within the keepalive timeout, the peer has stopped reading, whatever it still sends us,
   * and the connection ends. A peer that keeps sending but never reads would otherwise hold
   * it (and our unread answers) for ever, since its traffic satisfies the keepalive.
   */
  writeBlocked(): void {
    if (this.blockedSince !== -Infinity || this.intervalMs === 0) return;
    this.blockedSince = performance.now();
    if (this.stallTimer === null) this.checkStallIn(this.timeoutMs);
  }

  /**
   * The transport drained: the peer reads. The stall check stays armed: a bulk sender blocks
   * and drains once per frame, and a timer set and cleared each time cost more than the frame's
   * other work in a process that has not optimised it yet.
   */
  writeDrained(): void {
    this.blockedSince = -Infinity;
  }

  /** @internal The stall check is due: ends the connection if the transport has refused writes since timeoutMs ago. */
  stalled(): void {
    this.stallTimer = null;
    if (this.blockedSince === -Infinity) return; // drained since; the next refusal arms a new check
    const blockedFor = performance.now() - this.blockedSince;
    if (blockedFor < this.timeoutMs) {
      this.checkStallIn(this.timeoutMs - blockedFor);
      return;
    }
    this.host.onKeepAliveTimeout(
      new MuxError('ERR_KEEPALIVE_TIMEOUT', `peer has not read anything this side sent for ${this.timeoutMs} ms`),
    );
  }

  private checkStallIn(ms: number): void {
    this.stallTimer = setTimeout(onWriteStall, Math.max(1, Math.ceil(ms)), this);
    this.stallTimer.unref();
  }

  /** @internal An unanswered-by-design PING: nothing waits for its answer. */
  beat(): void {
    this.host.queueControl(encodeFrame(FrameType.PING, 0, 0, HEARTBEAT_PAYLOAD));
  }

  /** Starts keepalive: the connection joins its interval's wheel. */
  start(): void {
    if (this.intervalMs !== 0) wheelFor(this.intervalMs).add(this);
  }

  /**
   * A stream was added. The connection's first starts the probes. A later one, while the path
   * is not measured fast, sends one more: the first samples come from processes whose code is
   * not compiled yet, and on loopback they can read 5-7 ms, a long path. A busy connection's
   * pings are never quiet again, so without a later quiet moment (a new stream often opens
   * in a lull between transfers) that first reading would stand for good.
   */
  measurePath(): void {
    if (this.probeIndex === -1) {
      this.probeIndex = 0;
      this.probe();
      return;
    }
    if (this.reprobes >= MAX_REPROBES || isFastPath(this) || this.pendingPings !== 0) return;
    const now = performance.now();
    if (now - this.reprobedAt < REPROBE_INTERVAL_MS) return;
    this.reprobes++;
    this.reprobedAt = now;
    this.ping().catch(noop);
  }

  /** @internal The first sample is often slow (a cold peer, JIT); later ones show the path itself. */
  probe(): void {
    this.probeTimer = null;
    this.ping().catch(noop);
    const delay = RTT_PROBE_DELAYS_MS[this.probeIndex++];
    if (delay === undefined) return;
    this.probeTimer = setTimeout(onProbe, delay, this);
    this.probeTimer.unref();
  }

  /** Sends a PING; resolves to the round trip in milliseconds. */
  ping(): Promise<number> {
    const id = this.nextId();
    return new Promise<number>((resolve, reject) => {
      if (this.pending === null) this.pending = new Map();
      this.pending.set(id, { start: performance.now(), moved: this.host.bytesMoved(), resolve, reject });
      this.host.queueControl(pingFrame(0, id));
    });
  }

  /** A PING frame from the peer: answer it, or settle the ping it answers. */
  onPing(flags: number, payload: Buffer): void {
    if (!(flags & Flag.ACK)) {
      this.host.queueControl(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
      // Ours rides along if it is due in this half of the interval anyway.
      if (this.wheelSlot !== -1 && this.deadline === null && this.heartbeat === null) {
        if (this.keepAliveAt < 0 || performance.now() - this.keepAliveAt >= this.intervalMs / 2) this.sendKeepAlive(true);
      }
      return;
    }
    const id = payload.readUInt32BE(0) * 2 ** 32 + payload.readUInt32BE(4);
    if (this.deadline !== null && id === this.keepAliveId) {
      this.clearDeadline();
      this.sample(performance.now() - this.keepAliveAt, this.keepAliveMoved);
      return;
    }
    const ping = this.pending?.get(id);
    if (!ping) return; // an answer nobody waits for any more
    this.pending!.delete(id);
    ping.resolve(this.sample(performance.now() - ping.start, ping.moved));
  }

  private sample(rtt: number, movedBefore: number): number {
    this.lastRtt = rtt;
    if (this.host.bytesMoved() - movedBefore <= this.quietBytes) {
      if (this.minRtt === null || rtt < this.minRtt) this.minRtt = rtt;
      this.samples++;
    }
    return rtt;
  }

  /** @internal WheelMember: this connection's keepalive turn. */
  tick(): void {
    // One keepalive ping at a time, sent whatever else arrives: only its answer proves the
    // peer reads. A peer that keeps sending but never reads would satisfy any other test.
    // While we do not read ourselves (heartbeats), the answer could not be seen: no deadline.
    if (this.deadline || this.heartbeat) return;
    // One went out with an answer lately: this turn is covered.
    if (this.piggybacked && performance.now() - this.keepAliveAt < this.intervalMs / 2) return;
    this.sendKeepAlive(false);
  }

  private sendKeepAlive(piggybacked: boolean): void {
    this.deadline = setTimeout(onDeadline, this.timeoutMs, this);
    this.deadline.unref();
    this.keepAliveId = this.nextId();
    this.keepAliveAt = performance.now();
    this.keepAliveMoved = this.host.bytesMoved();
    this.piggybacked = piggybacked;
    this.host.queueControl(pingFrame(0, this.keepAliveId));
  }

  private nextId(): number {
    return this.counter++;
  }

  /** @internal */
  expire(): void {
    this.deadline = null;
    this.host.onKeepAliveTimeout(new MuxError('ERR_KEEPALIVE_TIMEOUT', `peer did not answer a keepalive ping within ${this.timeoutMs} ms`));
  }

  /** Stops the timers and fails every unanswered ping with `err` (made only if one waits). */
  stop(err: () => Error): void {
    this.setReading(true);
    this.blockedSince = -Infinity;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    if (this.wheelSlot !== -1) wheelFor(this.intervalMs).remove(this);
    this.clearDeadline();
    const pending = this.pending;
    if (pending === null || pending.size === 0) return;
    const error = err();
    for (const ping of pending.values()) ping.reject(error);
    pending.clear();
  }

  /** @internal Every timed round-trip probe has been sent and answered (for tests); false again while a later stream's probe is out. */
  get probesDone(): boolean {
    return this.probeIndex > RTT_PROBE_DELAYS_MS.length && this.pendingPings === 0;
  }

  /** Pings waiting for their answer (keepalive's not counted). */
  get pendingPings(): number {
    return this.pending === null ? 0 : this.pending.size;
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
  }
}

/** A PING whose 8-byte payload is `id` (below 2^53; the heartbeat's all-ones payload is never one). */
function pingFrame(flags: number, id: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + PING_PAYLOAD_LENGTH);
  writeHeader(frame, 0, FrameType.PING, flags, 0, PING_PAYLOAD_LENGTH);
  frame.writeUInt32BE(Math.floor(id / 2 ** 32), HEADER_LENGTH);
  frame.writeUInt32BE(id >>> 0, HEADER_LENGTH + 4);
  return frame;
}

function noop(): void {}

function onProbe(liveness: Liveness): void {
  liveness.probe();
}

function onHeartbeat(liveness: Liveness): void {
  liveness.beat();
}

function onWriteStall(liveness: Liveness): void {
  liveness.stalled();
}

function onDeadline(liveness: Liveness): void {
  liveness.expire();
}
