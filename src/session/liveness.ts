import { encodeFrame } from '../codec/encode';
import { MuxError } from '../errors';
import { Flag, FrameType, PING_PAYLOAD_LENGTH } from '../protocol/constants';

/** What {@link Liveness} needs from its connection. */
export interface LivenessHost {
  queueControl(frame: Buffer): void;
  /** The peer stopped answering keepalive pings. */
  onKeepAliveTimeout(err: MuxError): void;
}

interface PendingPing {
  start: bigint;
  resolve: (rtt: number) => void;
  reject: (err: Error) => void;
  keepAlive: boolean;
}

/**
 * PING round trips and keepalive for one connection. A quiet connection (nothing received
 * for a whole interval) is pinged; one keepalive ping at a time, so nothing accumulates
 * per ping, and an unanswered one ends the connection instead of leaving it hanging.
 */
export class Liveness {
  private readonly pending = new Map<bigint, PendingPing>();
  private counter = 0n;
  private interval: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private heardFrom = true;
  /** Last measured round trip in milliseconds, or null before the first. */
  lastRtt: number | null = null;

  constructor(
    private readonly host: LivenessHost,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
  ) {}

  /** Something arrived from the peer: it is alive. Called per received chunk, so it is cheap. */
  noteTraffic(): void {
    this.heardFrom = true;
  }

  start(): void {
    if (this.intervalMs === 0 || this.interval) return;
    this.interval = setInterval(onInterval, this.intervalMs, this);
    this.interval.unref();
  }

  /** Sends a PING; resolves to the round trip in milliseconds. */
  ping(keepAlive = false): Promise<number> {
    const payload = Buffer.allocUnsafe(PING_PAYLOAD_LENGTH);
    const id = this.counter++;
    payload.writeBigUInt64BE(id);
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { start: process.hrtime.bigint(), resolve, reject, keepAlive });
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
    if (ping.keepAlive) this.clearDeadline();
    ping.resolve(rtt);
  }

  /** @internal */
  tick(): void {
    if (this.heardFrom) {
      this.heardFrom = false;
      return;
    }
    if (this.deadline) return;
    this.deadline = setTimeout(onDeadline, this.timeoutMs, this);
    this.deadline.unref();
    this.ping(true).catch(() => {});
  }

  /** @internal */
  expire(): void {
    this.deadline = null;
    this.host.onKeepAliveTimeout(
      new MuxError('ERR_KEEPALIVE_TIMEOUT', `peer did not answer a keepalive ping within ${this.timeoutMs} ms`),
    );
  }

  /** Stops the timers and fails every unanswered ping with `err`. */
  stop(err: Error): void {
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

function onDeadline(liveness: Liveness): void {
  liveness.expire();
}
