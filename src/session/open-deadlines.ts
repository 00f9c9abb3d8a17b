import { OpenState, type MuxStream } from './stream';

/**
 * Gives each open `timeoutMs` to be accepted: our OPEN waiting for ACCEPT, or the peer's
 * stream waiting in the backlog for a `stream` listener. One timer per connection serves
 * them all, in the order they began (a FIFO, since every deadline is as long). A stream
 * leaves as soon as it is accepted or closed, so only streams still waiting are held.
 */
export class OpenDeadlines {
  // Made on first use: most connections never wait for an open.
  private deadlines: Map<MuxStream, number> | null = null;
  private timer: NodeJS.Timeout | null = null;

  /** @param host told of a stream still waiting when its time is up. */
  constructor(
    private readonly timeoutMs: number,
    private readonly host: { openExpired(stream: MuxStream): void },
  ) {}

  watch(stream: MuxStream): void {
    if (this.timeoutMs === 0) return;
    (this.deadlines ??= new Map()).set(stream, Date.now() + this.timeoutMs);
    if (this.timer === null) this.arm(this.timeoutMs);
  }

  forget(stream: MuxStream): void {
    if (this.deadlines !== null) this.deadlines.delete(stream);
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.deadlines = null;
  }

  /** @internal The timer fired: expire what is overdue, then wait for the next one. */
  expire(): void {
    this.timer = null;
    const now = Date.now();
    const deadlines = this.deadlines;
    if (deadlines === null) return;
    for (const [stream, at] of deadlines) {
      if (at > now) return this.arm(at - now);
      deadlines.delete(stream);
      if (!stream.destroyed && stream.openState !== OpenState.OPEN) this.host.openExpired(stream);
    }
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(onTimer, Math.max(1, delayMs), this);
    this.timer.unref();
  }
}

function onTimer(deadlines: OpenDeadlines): void {
  deadlines.expire();
}
