/**
 * A fault-injecting TCP proxy for tests: listens on 127.0.0.1:0, forwards every connection
 * to a target port, and misbehaves on the way as a bad network would. Faults apply per
 * connection and per direction ('up' is client to server, 'down' the way back):
 *
 * - `rechunk`: every byte goes out as its own 1-byte write.
 * - `delay`: each chunk waits `ms` before it is forwarded (in order; reading waits too).
 * - `stall`: after `afterBytes`, nothing is forwarded (or read) for `ms`, then it resumes.
 * - `cut`: after `at` bytes the connection is destroyed both ways, mid-frame if `at` says so.
 * - `flip`: the byte at `at` is XORed with `mask` (default 0xff); everything else is intact.
 *
 * A position (`at`) is an absolute byte offset in that direction, or a place in the muxer's
 * framing: `{ frame, byte }` is byte `byte` of frame number `frame` (0 = the HELLO right
 * after the 4-byte magic), counted from the start of its 12-byte header, so a test can aim
 * at a header field or into a payload deterministically, whatever the chunking.
 */
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

export type Direction = 'up' | 'down';

/** Absolute offset, or byte `byte` of frame `frame` (header included, HELLO = frame 0). */
export type Position = number | { frame: number; byte: number };

export type Fault =
  | { kind: 'none' }
  | { kind: 'rechunk' }
  | { kind: 'delay'; ms: number }
  | { kind: 'stall'; afterBytes: number; ms: number }
  | { kind: 'cut'; at: Position }
  | { kind: 'flip'; at: Position; mask?: number };

/** A fault and the directions it applies to (default both). */
export interface FaultSpec {
  fault: Fault;
  directions?: Direction[];
}

/** What happened on one direction of one proxied connection. */
export interface DirectionReport {
  /** Bytes forwarded. */
  forwarded: number;
  /** Frames that began in this direction (the HELLO included). */
  frames: number;
  /** Set once the fault fired: the absolute offset it hit. */
  firedAt: number | null;
  /** Where in the framing that offset was, if the tracker knew. */
  firedIn: string | null;
}

export interface ConnectionReport {
  up: DirectionReport;
  down: DirectionReport;
}

const MAGIC_LENGTH = 4;
const HEADER_LENGTH = 12;

/**
 * Follows the muxer's framing on one direction, from byte 0: the magic, then headers and
 * payloads. It only reads lengths, so it stays in step with what the sender wrote (a fault
 * applied by the proxy happens after tracking).
 */
class FrameTracker {
  /** Offset where the current frame's header starts, and its index. */
  private frameStart = MAGIC_LENGTH;
  private frameIndex = 0;
  private header = Buffer.alloc(HEADER_LENGTH);
  private headerFill = 0;
  private frameEnd = -1; // known once the header is complete
  /** Offsets of frame starts seen so far, by index (for resolving a {frame, byte} position). */
  readonly starts: number[] = [];

  /** Feeds `chunk`, which starts at absolute offset `offset`. */
  feed(chunk: Buffer, offset: number): void {
    let i = 0;
    while (i < chunk.length) {
      const at = offset + i;
      if (at < MAGIC_LENGTH) {
        i += Math.min(chunk.length - i, MAGIC_LENGTH - at);
        continue;
      }
      if (this.frameEnd < 0) {
        if (this.headerFill === 0) this.starts[this.frameIndex] = this.frameStart;
        const take = Math.min(chunk.length - i, HEADER_LENGTH - this.headerFill);
        chunk.copy(this.header, this.headerFill, i, i + take);
        this.headerFill += take;
        i += take;
        if (this.headerFill === HEADER_LENGTH) {
          this.frameEnd = this.frameStart + HEADER_LENGTH + this.header.readUInt32BE(8);
        }
      } else {
        i += Math.min(chunk.length - i, this.frameEnd - at);
      }
      if (this.frameEnd >= 0 && offset + i >= this.frameEnd) {
        this.frameStart = this.frameEnd;
        this.frameIndex++;
        this.headerFill = 0;
        this.frameEnd = -1;
      }
    }
  }

  /** The absolute offset of `position`, or null while frame `position.frame` has not begun. */
  resolve(position: Position): number | null {
    if (typeof position === 'number') return position;
    const start = this.starts[position.frame];
    return start === undefined ? null : start + position.byte;
  }

  /** Human-readable place of absolute offset `at` (for failure messages). */
  describe(at: number): string {
    if (at < MAGIC_LENGTH) return `magic byte ${at}`;
    let index = -1;
    for (let k = 0; k < this.starts.length; k++) if (this.starts[k] <= at) index = k;
    if (index < 0) return `offset ${at}`;
    const within = at - this.starts[index];
    return within < HEADER_LENGTH ? `frame ${index} header byte ${within}` : `frame ${index} payload byte ${within - HEADER_LENGTH}`;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `socket` can take more, or is gone. */
function drained(socket: net.Socket): Promise<void> {
  if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

export class FaultProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** One report per accepted connection, in order. */
  readonly connections: ConnectionReport[] = [];

  private constructor(
    private readonly targetPort: number,
    private readonly specs: FaultSpec[],
  ) {
    this.server = net.createServer((socket) => this.onClient(socket));
  }

  /** Starts a proxy to `targetPort` on 127.0.0.1 with `specs` applied to every connection. */
  static async start(targetPort: number, specs: FaultSpec | FaultSpec[] = []): Promise<FaultProxy> {
    const proxy = new FaultProxy(targetPort, Array.isArray(specs) ? specs : [specs]);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and destroys every proxied socket. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private faultsFor(direction: Direction): Fault[] {
    return this.specs.filter((s) => (s.directions ?? ['up', 'down']).includes(direction)).map((s) => s.fault);
  }

  private onClient(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const report: ConnectionReport = {
      up: { forwarded: 0, frames: 0, firedAt: null, firedIn: null },
      down: { forwarded: 0, frames: 0, firedAt: null, firedIn: null },
    };
    this.connections.push(report);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => {}); // resets are part of the game; the muxer reports them
      socket.once('close', () => {
        this.sockets.delete(socket);
        // One side gone: the other goes too (a half-close is forwarded as an end first).
        client.destroy();
        upstream.destroy();
      });
    }
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
    };
    void this.pump(client, upstream, this.faultsFor('up'), report.up, kill);
    void this.pump(upstream, client, this.faultsFor('down'), report.down, kill);
  }

  /** Copies `from` to `to` chunk by chunk, applying `faults`, with backpressure. */
  private async pump(from: net.Socket, to: net.Socket, faults: Fault[], report: DirectionReport, kill: () => void): Promise<void> {
    const tracker = new FrameTracker();
    let offset = 0;
    let stalled = false;
    try {
      for await (const data of from as AsyncIterable<Buffer>) {
        let chunk: Buffer = data;
        tracker.feed(chunk, offset);
        report.frames = tracker.starts.length;
        const end = offset + chunk.length;
        let cutAt: number | null = null;
        for (const fault of faults) {
          switch (fault.kind) {
            case 'flip': {
              const at = tracker.resolve(fault.at);
              if (report.firedAt === null && at !== null && at >= offset && at < end) {
                if (chunk === data) chunk = Buffer.from(data); // never modify the sender's buffer
                chunk[at - offset] ^= fault.mask ?? 0xff;
                report.firedAt = at;
                report.firedIn = tracker.describe(at);
              }
              break;
            }
            case 'cut': {
              const at = tracker.resolve(fault.at);
              if (at !== null && at < end) cutAt = Math.max(at, offset);
              break;
            }
            default:
              break;
          }
        }
        if (cutAt !== null) {
          // Forward exactly the bytes before the cut, then drop the connection both ways.
          const head = chunk.subarray(0, cutAt - offset);
          if (head.length > 0) await this.forward(to, head, faults);
          report.forwarded += head.length;
          report.firedAt = cutAt;
          report.firedIn = tracker.describe(cutAt);
          // Let the bytes before the cut reach the peer, then cut.
          await new Promise<void>((resolve) => (to.writableLength === 0 ? resolve() : to.write(Buffer.alloc(0), () => resolve())));
          kill();
          return;
        }
        for (const fault of faults) {
          if (fault.kind === 'stall' && !stalled && end > fault.afterBytes) {
            stalled = true;
            const head = chunk.subarray(0, Math.max(0, fault.afterBytes - offset));
            if (head.length > 0) await this.forward(to, head, faults);
            report.forwarded += head.length;
            report.firedAt = fault.afterBytes;
            report.firedIn = tracker.describe(fault.afterBytes);
            chunk = chunk.subarray(head.length);
            await sleep(fault.ms);
          }
        }
        if (to.destroyed) return;
        if (chunk.length > 0) await this.forward(to, chunk, faults);
        report.forwarded += chunk.length;
        offset = end;
      }
      if (!to.destroyed) to.end();
    } catch {
      kill();
    }
  }

  private async forward(to: net.Socket, chunk: Buffer, faults: Fault[]): Promise<void> {
    for (const fault of faults) if (fault.kind === 'delay') await sleep(fault.ms);
    if (to.destroyed) return;
    if (faults.some((f) => f.kind === 'rechunk')) {
      for (let i = 0; i < chunk.length; i++) {
        if (to.destroyed) return;
        if (!to.write(chunk.subarray(i, i + 1))) await drained(to);
      }
      return;
    }
    if (!to.write(chunk)) await drained(to);
  }
}
