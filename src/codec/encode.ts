import { FrameType, HEADER_LENGTH, MAX_CONTROL_PAYLOAD, PROTOCOL_VERSION } from '../protocol/constants';

/** Writes a frame header into `target` at `offset` (12 bytes, big-endian). */
export function writeHeader(target: Buffer, offset: number, type: FrameType, flags: number, streamId: number, length: number): void {
  target[offset] = PROTOCOL_VERSION;
  target[offset + 1] = type;
  target.writeUInt16BE(flags, offset + 2);
  target.writeUInt32BE(streamId, offset + 4);
  target.writeUInt32BE(length, offset + 8);
}

/** A fresh 12-byte frame header. */
export function encodeHeader(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_LENGTH);
  writeHeader(header, 0, type, flags, streamId, length);
  return header;
}

/** Header and payload in one buffer: for control frames, whose payloads are small. */
export function encodeFrame(type: FrameType, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const length = payload ? payload.length : 0;
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + length);
  writeHeader(frame, 0, type, flags, streamId, length);
  if (payload) frame.set(payload, HEADER_LENGTH);
  return frame;
}

/** Payload of RESET, REFUSE and GO_AWAY: u32 code then UTF-8 reason, cut to fit the limit. */
export function encodeCodeAndReason(code: number, reason = ''): Buffer {
  let text: Buffer = Buffer.from(reason, 'utf8');
  if (text.length > MAX_CONTROL_PAYLOAD - 4) text = truncateUtf8(text, MAX_CONTROL_PAYLOAD - 4);
  const payload = Buffer.allocUnsafe(4 + text.length);
  payload.writeUInt32BE(code >>> 0, 0);
  payload.set(text, 4);
  return payload;
}

/** Reads the payload written by {@link encodeCodeAndReason}. Caller ensures length >= 4. */
export function decodeCodeAndReason(payload: Buffer): { code: number; reason: string } {
  return { code: payload.readUInt32BE(0), reason: payload.toString('utf8', 4) };
}

/**
 * A whole GO_AWAY frame: the connection is going away with `code`, for `reason`. `version`
 * frames it for a peer that speaks a retired version (the layout of GO_AWAY never changed).
 */
export function encodeGoAway(code: number, reason: string, version = PROTOCOL_VERSION): Buffer {
  const frame = encodeFrame(FrameType.GO_AWAY, 0, 0, encodeCodeAndReason(code, reason));
  if (version !== PROTOCOL_VERSION) frame[0] = version;
  return frame;
}

/** Payload of a WINDOW_UPDATE frame. */
export function encodeWindowUpdate(streamId: number, increment: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_LENGTH + 4);
  writeHeader(frame, 0, FrameType.WINDOW_UPDATE, 0, streamId, 4);
  frame.writeUInt32BE(increment, HEADER_LENGTH);
  return frame;
}

// Cuts at a code-point boundary so the receiver never sees a broken character.
function truncateUtf8(bytes: Buffer, max: number): Buffer {
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}
