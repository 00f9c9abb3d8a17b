/**
 * A FIFO of byte chunks with a byte count, from which exact lengths are taken: a view when
 * they lie in the head chunk, one copy when they straddle chunks (ws's receiver technique).
 * A moving head index instead of `Array#shift` keeps taking O(1) per chunk however many
 * small chunks wait (a writer of 64-byte messages queues thousands).
 */
export class ChunkQueue {
  // Never reassigned, only emptied or spliced: V8 then keeps treating the field as constant,
  // and the optimised code of every queue does not deoptimise when one queue is cleared.
  private readonly chunks: Buffer[] = [];
  private head = 0;
  /** Bytes queued. */
  bytes = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Length of the first chunk (0 when empty). */
  get headLength(): number {
    return this.head < this.chunks.length ? this.chunks[this.head].length : 0;
  }

  /**
   * Removes exactly `n` bytes (at most {@link bytes}) from the front. Bytes that straddle
   * chunks are copied into `scratch` when it is large enough (the result is then a view of
   * it: `result.buffer === scratch.buffer`), otherwise into a new buffer.
   */
  take(n: number, scratch?: Buffer): Buffer {
    this.bytes -= n;
    const first = this.chunks[this.head];
    if (n === first.length) return this.shift();
    if (n < first.length) {
      this.chunks[this.head] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = scratch !== undefined && scratch.length >= n ? scratch.subarray(0, n) : Buffer.allocUnsafe(n);
    let offset = 0;
    while (offset < n) {
      const chunk = this.chunks[this.head];
      const size = Math.min(chunk.length, n - offset);
      out.set(size === chunk.length ? chunk : chunk.subarray(0, size), offset);
      offset += size;
      if (size === chunk.length) this.shift();
      else this.chunks[this.head] = chunk.subarray(size);
    }
    return out;
  }

  clear(): void {
    this.chunks.length = 0;
    this.head = 0;
    this.bytes = 0;
  }

  private shift(): Buffer {
    const chunk = this.chunks[this.head];
    this.chunks[this.head++] = EMPTY;
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
    return chunk;
  }
}

const EMPTY = Buffer.alloc(0);
