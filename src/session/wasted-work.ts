/**
 * A budget for work a peer causes without moving data: opening and resetting streams,
 * opens we refuse, pings, empty frames. Each costs little, but a peer can send tens of
 * thousands a second and starve every other connection's event loop without holding any
 * memory (HTTP/2's "rapid reset", CVE-2023-44487). A token bucket, as nghttp2 rate-limits
 * RST_STREAM: a burst is fine, a sustained flood ends the connection with ENHANCE_YOUR_CALM.
 */
export class WastedWork {
  private tokens: number;
  private refilledAt = performance.now();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  /** Spends `units`; false when the budget is exhausted (the peer is flooding). */
  spend(units: number): boolean {
    this.tokens -= units;
    if (this.tokens >= 0) return true;
    // Refill lazily, only when the bucket runs dry: the common case costs one subtraction.
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.perSecond) / 1000);
    this.refilledAt = now;
    return this.tokens >= 0;
  }
}
