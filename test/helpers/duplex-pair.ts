import { Duplex } from 'node:stream';

/**
 * One end of an in-memory byte pipe. What one end writes, the other reads, delivered on a
 * later turn of the event loop (as a network would), with backpressure: a write completes
 * only once the peer's readable side has taken the bytes.
 */
class PipeEnd extends Duplex {
  peer!: PipeEnd;
  /** The peer's write, waiting until our reader wants more. */
  private blockedWrite: (() => void) | null = null;

  override _read(): void {
    const resume = this.blockedWrite;
    this.blockedWrite = null;
    if (resume) resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.transfer(chunk, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    this.transfer(Buffer.concat(chunks.map(({ chunk }) => chunk)), callback);
  }

  private transfer(bytes: Buffer, callback: (err?: Error | null) => void): void {
    setImmediate(() => {
      const peer = this.peer;
      if (peer.destroyed || peer.readableEnded) return callback();
      if (peer.push(bytes)) callback();
      else peer.blockedWrite = () => callback();
    });
  }

  override _final(callback: (err?: Error | null) => void): void {
    setImmediate(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      callback();
    });
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // Like a cut cable: the other end closes too (without a clean end).
    const resume = this.blockedWrite;
    this.blockedWrite = null;
    if (resume) resume();
    setImmediate(() => {
      if (!this.peer.destroyed) this.peer.destroy();
    });
    callback(err);
  }
}

/** Two connected in-memory duplex streams: bytes written to one are read from the other. */
export function duplexPair(): [Duplex, Duplex] {
  const a = new PipeEnd({ allowHalfOpen: true });
  const b = new PipeEnd({ allowHalfOpen: true });
  a.peer = b;
  b.peer = a;
  return [a, b];
}
