import { encodeFrame } from '../codec/encode';
import { MuxError } from '../errors';
import { Flag, FrameType, PING_PAYLOAD_LENGTH } from '../protocol/constants';

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

// Round-trip probes after the handshake: at once, then after these delays.
const RTT_PROBE_DELAYS_MS = [100, 1000];

interface PendingPing {
  start: bigint;
  /** `bytesMoved()` when the ping left. */
  moved: number;
  resolve: (rtt: number) => void;
  reject: (err: Error) => void;
  keepAlive: boolean;
}

/**
 * PING round trips and keepalive for one connection. Every interval a keepalive ping goes
 * out, one at a time so nothing accumulates per ping; only its answer meets the deadline
 * (other traffic does not: a peer that keeps sending but never reads must not pass), and an
 * unanswered one ends the connection instead of leaving it hanging.
 */
export class Liveness {
  private readonly pending = new Map<bigint, PendingPing>();
  private counter = 0n;
  private interval: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
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
    if (this.stallTimer !== null || this.intervalMs === 0) return;
    this.stallTimer = setTimeout(onWriteStall, this.timeoutMs, this);
    this.stallTimer.unref();
  }

  /** The transport drained: the peer reads. */
  writeDrained(): void {
    if (this.stallTimer === null) return;
    clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /** @internal */
  stalled(): void {
    this.stallTimer = null;
    this.host.onKeepAliveTimeout(
      new MuxError('ERR_KEEPALIVE_TIMEOUT', `peer has not read anything this side sent for ${this.timeoutMs} ms`),
    );
  }

  /** @internal An unanswered-by-design PING: nothing waits for its answer. */
  beat(): void {
    this.host.queueControl(encodeFrame(FrameType.PING, 0, 0, HEARTBEAT_PAYLOAD));
  }

  /** Starts keepalive, and measures the path's round trip a few times while it is fresh. */
  start(): void {
    this.probe(0);
    if (this.intervalMs === 0 || this.interval) return;
    this.interval = setInterval(onInterval, this.intervalMs, this);
    this.interval.unref();
  }

  // The first sample is often slow (a cold peer, JIT); later ones show the path itself.
  private probe(index: number): void {
    this.ping().catch(() => {});
    const delay = RTT_PROBE_DELAYS_MS[index];
    if (delay === undefined) return;
    this.probeTimer = setTimeout(() => this.probe(index + 1), delay);
    this.probeTimer.unref();
  }

  private probeTimer: NodeJS.Timeout | null = null;

  /** Sends a PING; resolves to the round trip in milliseconds. */
  ping(keepAlive = false): Promise<number> {
    const payload = Buffer.allocUnsafe(PING_PAYLOAD_LENGTH);
    const id = this.counter++;
    payload.writeBigUInt64BE(id);
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { start: process.hrtime.bigint(), moved: this.host.bytesMoved(), resolve, reject, keepAlive });
      this.host.queueControl(encodeFrame(FrameType.PING, 0, 0, payload));
    });
  }

  /** A PING frame from the peer: answer it, or settle the ping it answers. */
  onPing(flags: number, payload: Buffer): void {
    if (!(flags & Flag.ACK)) {
      this.host.queueControl(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
      return;
    }
    const id = payload.readBigUInt64BE(0);
    const ping = this.pending.get(id);
    if (!ping) return; // an answer nobody waits for any more
    this.pending.delete(id);
    const rtt = Number(process.hrtime.bigint() - ping.start) / 1e6;
    this.lastRtt = rtt;
    if (this.host.bytesMoved() - ping.moved <= this.quietBytes) {
      if (this.minRtt === null || rtt < this.minRtt) this.minRtt = rtt;
      this.samples++;
    }
    if (ping.keepAlive) this.clearDeadline();
    ping.resolve(rtt);
  }

  /** @internal */
  tick(): void {
    // One keepalive ping at a time, sent whatever else arrives: only its answer proves the
    // peer reads. A peer that keeps sending but never reads would satisfy any other test.
    // While we do not read ourselves (heartbeats), the answer could not be seen: no deadline.
    if (this.deadline || this.heartbeat) return;
    this.deadline = setTimeout(onDeadline, this.timeoutMs, this);
    this.deadline.unref();
    this.ping(true).catch(() => {});
  }

  /** @internal */
  expire(): void {
    this.deadline = null;
    this.host.onKeepAliveTimeout(new MuxError('ERR_KEEPALIVE_TIMEOUT', `peer did not answer a keepalive ping within ${this.timeoutMs} ms`));
  }

  /** Stops the timers and fails every unanswered ping with `err`. */
  stop(err: Error): void {
    this.setReading(true);
    this.writeDrained();
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    if (this.interval) clearInterval(this.interval);
    this.interval = null;
    this.clearDeadline();
    for (const ping of this.pending.values()) ping.reject(err);
    this.pending.clear();
  }

  private clearDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
  }
}

function onInterval(liveness: Liveness): void {
  liveness.tick();
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
