/**
 * A slow, obviously-correct decoder for differential tests: it reads a whole byte array at
 * once with a DataView and applies the rules of PROTOCOL.md sections 3 and 5, written out
 * again with literal numbers rather than imported from src/, so a change to the real
 * decoder or to the constants cannot silently change both sides of a comparison.
 * (The idea is js-libp2p-yamux's test/codec.util.ts.)
 *
 * Where several rules are broken by one header, the first failing check in this order
 * decides the error code: version, reserved bit, unknown flag bits, unknown type, stream
 * kind, flags not allowed on the type, payload length.
 */

export interface ReferenceLimits {
  maxFrameSize: number;
  maxMetaBytes: number;
  maxHelloBytes: number;
}

export type ReferenceFrame =
  | { kind: 'frame'; type: number; flags: number; streamId: number; payload: Buffer }
  | { kind: 'oversize-open'; streamId: number; length: number };

export interface ReferenceResult {
  /** Every complete frame before the end of input or the first error. */
  frames: ReferenceFrame[];
  /** MuxError code the input must fail with, or null if it is valid so far. */
  error: string | null;
  /** Bytes at the end that do not yet make a whole frame. */
  incomplete: number;
}

const FIN = 0x1;
const ACK = 0x2;

// type -> [needs stream 0? ('any': stream 0 or a stream), flags allowed, min length, max length or 'limit' key]
type Rule = { session: boolean | 'any'; flags: number; min: number; max: number | keyof ReferenceLimits };
const RULES: Record<number, Rule> = {
  0x0: { session: false, flags: FIN, min: 0, max: 'maxFrameSize' }, // DATA
  0x1: { session: 'any', flags: 0, min: 4, max: 4 }, // WINDOW_UPDATE: stream 0 is the connection's window
  0x2: { session: true, flags: ACK, min: 8, max: 8 }, // PING
  0x3: { session: true, flags: 0, min: 4, max: 1028 }, // GO_AWAY
  0x4: { session: false, flags: 0, min: 0, max: Number.POSITIVE_INFINITY }, // OPEN: oversize is skipped
  0x5: { session: false, flags: 0, min: 0, max: 0 }, // ACCEPT
  0x6: { session: false, flags: 0, min: 4, max: 1028 }, // REFUSE
  0x7: { session: false, flags: 0, min: 4, max: 1028 }, // RESET
  0x8: { session: true, flags: 0, min: 0, max: 'maxHelloBytes' }, // HELLO
};

export function referenceDecode(input: Uint8Array, limits: ReferenceLimits, options: { expectMagic?: boolean } = {}): ReferenceResult {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const frames: ReferenceFrame[] = [];
  let offset = 0;
  const result = (error: string | null): ReferenceResult => ({ frames, error, incomplete: error ? 0 : input.length - offset });

  if (options.expectMagic !== false) {
    if (input.length < 4) return result(null);
    const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== 'TSMX') return result('ERR_HANDSHAKE_FAILED');
    offset = 4;
  }

  while (input.length - offset >= 12) {
    const version = view.getUint8(offset);
    const type = view.getUint8(offset + 1);
    const flags = view.getUint16(offset + 2, false);
    const word = view.getUint32(offset + 4, false);
    const length = view.getUint32(offset + 8, false);
    if (version !== 2) return result('ERR_VERSION_MISMATCH');
    if (word >= 0x80000000) return result('ERR_PROTOCOL');
    if ((flags & ~(FIN | ACK)) !== 0) return result('ERR_PROTOCOL');
    const rule = RULES[type];
    if (rule === undefined) return result('ERR_PROTOCOL');
    if (rule.session !== 'any' && rule.session !== (word === 0)) return result('ERR_PROTOCOL');
    if ((flags & ~rule.flags) !== 0) return result('ERR_PROTOCOL');
    const max = typeof rule.max === 'string' ? limits[rule.max] : rule.max;
    if (length > max) return result('ERR_FRAME_TOO_LARGE');
    if (length < rule.min) return result('ERR_PROTOCOL');
    // An oversize OPEN is reported as soon as its header is complete; its payload is skipped.
    const oversizeOpen = type === 0x4 && length > limits.maxMetaBytes;
    if (oversizeOpen) frames.push({ kind: 'oversize-open', streamId: word, length });
    if (input.length - offset - 12 < length) return result(null);
    const start = offset + 12;
    offset = start + length;
    if (!oversizeOpen) {
      frames.push({ kind: 'frame', type, flags, streamId: word, payload: Buffer.from(input.subarray(start, start + length)) });
    }
  }
  return result(null);
}
