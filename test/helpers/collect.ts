import { FrameDecoder, type DecoderLimits, type FrameSink } from '../../src/codec/decoder';
import { MuxError } from '../../src/errors';
import type { FrameType } from '../../src/protocol/constants';

/** What a decoder produced, in the same shape as {@link referenceDecode}'s frames. */
export type DecodedFrame =
  | { kind: 'frame'; type: number; flags: number; streamId: number; payload: Buffer }
  | { kind: 'oversize-open'; streamId: number; length: number };

/** Generous limits for tests that are not about limits. */
export const TEST_LIMITS: Required<DecoderLimits> = Object.freeze({
  maxFrameSize: 65536,
  maxMetaBytes: 65536,
  maxHelloBytes: 65536,
});

/**
 * A sink that records whole frames. DATA pieces are copied as they arrive and joined into
 * one frame on the last piece, so a frame cut short at the end of input is not reported.
 */
export class CollectingSink implements FrameSink {
  readonly frames: DecodedFrame[] = [];
  /** Lengths of the DATA pieces as delivered, for tests about piecewise delivery. */
  readonly pieceLengths: number[] = [];
  private pending: Buffer[] = [];

  onData(streamId: number, flags: number, piece: Buffer, last: boolean): void {
    this.pieceLengths.push(piece.length);
    this.pending.push(Buffer.from(piece));
    if (!last) return;
    const payload = Buffer.concat(this.pending);
    this.pending = [];
    this.frames.push({ kind: 'frame', type: 0, flags, streamId, payload });
  }

  onControl(type: FrameType, flags: number, streamId: number, payload: Buffer): void {
    this.frames.push({ kind: 'frame', type, flags, streamId, payload: Buffer.from(payload) });
  }

  onOversizeOpen(streamId: number, length: number): void {
    this.frames.push({ kind: 'oversize-open', streamId, length });
  }
}

export interface DecodeOutcome {
  frames: DecodedFrame[];
  /** The MuxError the decoder threw, or null. */
  error: MuxError | null;
  decoder: FrameDecoder;
  sink: CollectingSink;
}

/**
 * Pushes every chunk to a fresh decoder, one `push()` call per chunk, and stops at the first
 * error. Anything thrown that is not a MuxError is rethrown: that is a decoder bug.
 */
export function decodeChunks(
  chunks: readonly Buffer[],
  limits: DecoderLimits = TEST_LIMITS,
  options: { expectMagic?: boolean } = { expectMagic: false },
): DecodeOutcome {
  const sink = new CollectingSink();
  const decoder = new FrameDecoder(sink, limits, options);
  let error: MuxError | null = null;
  for (const chunk of chunks) {
    try {
      decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof MuxError)) throw err;
      error = err;
      break;
    }
  }
  return { frames: sink.frames, error, decoder, sink };
}

/** `bytes` cut at the given offsets, each piece copied into its own Buffer (no shared memory). */
export function splitAt(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (const offset of [...offsets].sort((a, b) => a - b)) {
    if (offset <= start || offset >= bytes.length) continue;
    chunks.push(Buffer.from(bytes.subarray(start, offset)));
    start = offset;
  }
  chunks.push(Buffer.from(bytes.subarray(start)));
  return chunks;
}

/** One-byte chunks, each its own Buffer. */
export function bytewise(bytes: Buffer): Buffer[] {
  return Array.from(bytes, (byte) => Buffer.from([byte]));
}
