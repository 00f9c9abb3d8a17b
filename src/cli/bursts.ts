/**
 * Repeated messages summarised: the first of a kind is printed at once, the rest of its burst
 * counted and printed as one line when the burst's window ends. A forward that loses 10,000
 * connections to a refusing destination prints two lines a second, not 10,000.
 */
export class BurstReporter {
  private readonly repeats = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: (line: string) => void,
    private readonly windowMs = 1000,
  ) {}

  note(message: string): void {
    const seen = this.repeats.get(message);
    if (seen === undefined) {
      this.log(message);
      this.repeats.set(message, 0);
    } else this.repeats.set(message, seen + 1);
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.windowMs);
      this.timer.unref();
    }
  }

  /** Prints the counts of the burst so far and starts a new one. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const [message, more] of this.repeats) {
      if (more > 0) this.log(`${message} (${more} more like it within ${this.windowMs / 1000} s)`);
    }
    this.repeats.clear();
  }
}
