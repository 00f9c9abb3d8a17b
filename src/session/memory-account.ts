/**
 * What a peer makes a connection hold, counted in one place: received stream data at its
 * real cost, the streams the peer opened with their metas, and the answers queued for it.
 *
 * Flow control keeps a peer that follows the protocol inside its share (the connection
 * window bounds the data; opens are refused before streams and metas outgrow theirs), so
 * going over the whole account means the peer broke the rules or stopped reading: the
 * connection then goes away. Every connection of a server also adds to one
 * {@link MemoryPool}, which refuses new connections and streams once the server is full.
 */

/** The server-wide sum of its connections' accounts. */
export class MemoryPool {
  /** Bytes charged by all connections together. */
  used = 0;
  /** Connections whose accounts add to this pool. */
  connections = 0;
  /** Connection-window growth granted to peers beyond their first window: credit promised, not yet charged. */
  reserved = 0;

  constructor(
    /** `maxServerMemory`: past it, new connections and streams are refused. */
    readonly limit: number,
  ) {}

  /** True when nothing new may be taken on. */
  get full(): boolean {
    return this.used >= this.limit;
  }
}

/** Why an open would not fit, as the peer will read it in the REFUSE; null when it fits. */
export type OpenVerdict = string | null;

/** One connection's account. */
export class MemoryAccount {
  /** Received stream data not yet read by the application, at its real cost. */
  data = 0;
  /** Streams the peer opened and their metas. */
  streams = 0;
  /** The metas' part of {@link streams}. */
  metas = 0;
  /** Frames queued for the peer and not yet written (answers it asked for among them). */
  control = 0;
  /** Growth of this connection's window that the pool has promised. */
  private reserved = 0;
  /** False once the connection closed: late releases from streams being torn down change nothing. */
  private open = true;

  constructor(
    /** `maxBufferedBytes`: the whole account. */
    readonly limit: number,
    /**
     * What data may cost at most while the peer keeps to its credit: twice the connection
     * window, since a kept view pins up to twice its bytes. The rest is for streams, metas
     * and answers.
     */
    readonly dataShare: number,
    private readonly pool: MemoryPool | null,
  ) {
    if (pool !== null) pool.connections++;
  }

  /** Everything charged. */
  get used(): number {
    return this.data + this.streams + this.control;
  }

  /** True when the peer made the connection hold more than the whole account. */
  get exceeded(): boolean {
    return this.data + this.streams + this.control > this.limit;
  }

  chargeData(cost: number): void {
    if (!this.open) return;
    this.data += cost;
    if (this.pool !== null) this.pool.used += cost;
  }

  releaseData(cost: number): void {
    if (!this.open) return;
    this.data -= cost;
    if (this.pool !== null) this.pool.used -= cost;
  }

  /** A stream the peer opened is kept: `cost` in all, `metaCost` of it for its meta. */
  chargeStream(cost: number, metaCost: number): void {
    if (!this.open) return;
    this.streams += cost;
    this.metas += metaCost;
    if (this.pool !== null) this.pool.used += cost;
  }

  releaseStream(cost: number, metaCost: number): void {
    if (!this.open) return;
    this.streams -= cost;
    this.metas -= metaCost;
    if (this.pool !== null) this.pool.used -= cost;
  }

  /** Queued frames grew (or shrank, with a negative `delta`). */
  addControl(delta: number): void {
    if (!this.open) return;
    this.control += delta;
    if (this.pool !== null) this.pool.used += delta;
  }

  /**
   * Whether a stream costing `cost` (itself and its meta; `metaCost` of it for the meta) may be
   * opened by the peer now. Metas together may take an eighth of the account: they are
   * routing data, and a peer that sends large ones should not fill the share that streams need.
   */
  admit(cost: number, metaCost: number): OpenVerdict {
    // A full server still lets a connection that holds less than its fair share open a stream:
    // those that filled it are refused, not every client that happens to ask next.
    const pool = this.pool;
    if (pool !== null && pool.used + cost > pool.limit && this.used + cost > pool.limit / pool.connections) {
      return 'the server is out of memory for new streams';
    }
    if (this.metas + metaCost > this.limit / 8) return `the connection's memory for metas is spent (${this.limit / 8} bytes)`;
    if (this.streams + this.control + cost > this.limit - this.dataShare) {
      return `the connection's memory for streams and metas is spent (${this.limit - this.dataShare} bytes)`;
    }
    return null;
  }

  /**
   * Whether the connection window may grow by `bytes`: on a server, only while all that is
   * held and promised fits in `maxServerMemory`, so growth cannot promise memory it lacks.
   */
  reserveGrowth(bytes: number): boolean {
    const pool = this.pool;
    if (pool === null) return this.open;
    if (!this.open || pool.used + pool.reserved + bytes > pool.limit) return false;
    pool.reserved += bytes;
    this.reserved += bytes;
    return true;
  }

  /** The connection is gone: its whole charge leaves the pool. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    if (this.pool !== null) {
      this.pool.used -= this.data + this.streams + this.control;
      this.pool.reserved -= this.reserved;
      this.pool.connections--;
    }
    this.data = this.streams = this.control = 0;
  }
}
