/**
 * Repeated messages summarised: the first of a kind is printed at once, the rest of its burst
 * counted and printed as one line when the burst's window ends. A forward that loses 10,000
 * connections to a refusing destination prints two lines a second, not 10,000.
 */
/**
 * Kinds printed per burst. The messages carry peer-chosen text (a reset's reason, a SOCKS
 * target's name): a peer varying it must not get a line, and a map entry, per message.
 */
export const MAX_KINDS = 32;

export class BurstReporter {
  private readonly repeats = new Map<string, number>();
  /** Messages of kinds beyond MAX_KINDS in this burst, counted only. */
  private others = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: (line: string) => void,
    private readonly windowMs = 1000,
  ) {}

  note(message: string): void {
    const seen = this.repeats.get(message);
    if (seen === undefined && this.repeats.size >= MAX_KINDS) this.others++;
    else if (seen === undefined) {
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
    if (this.others > 0) this.log(`(${this.others} more messages of other kinds within ${this.windowMs / 1000} s)`);
    this.others = 0;
    this.repeats.clear();
  }
}
