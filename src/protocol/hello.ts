import type { JsonValue } from '../config';
import { MuxError } from '../errors';
import { MAX_STREAM_ID, MAX_WINDOW } from './constants';

/** What each peer announces in its HELLO frame (PROTOCOL.md, "Handshake"). */
export interface PeerSettings {
  /** Receive window the sender grants on every new stream, in bytes. */
  initialWindow: number;
  /** Largest DATA payload the sender accepts, in bytes. */
  maxFrameSize: number;
  /** Streams the receiver of this HELLO may have open toward the sender at once. */
  maxStreams: number;
  /** Largest OPEN meta the sender accepts, in bytes. */
  maxMetaBytes: number;
  /** Client only: application credentials or greeting; `null` when none. */
  hello: JsonValue;
}

const NUMERIC_FIELDS: [keyof PeerSettings, number, number][] = [
  ['initialWindow', 1024, MAX_WINDOW],
  ['maxFrameSize', 1024, 0x7fffffff],
  ['maxStreams', 0, MAX_STREAM_ID],
  ['maxMetaBytes', 2, 0x7fffffff],
];

export function encodeSettings(settings: PeerSettings): Buffer {
  return Buffer.from(JSON.stringify(settings), 'utf8');
}

/** Parses and checks a HELLO payload; throws `ERR_HANDSHAKE_FAILED` on anything malformed. */
export function parseSettings(payload: Buffer): PeerSettings {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new MuxError('ERR_HANDSHAKE_FAILED', 'HELLO payload is not valid JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MuxError('ERR_HANDSHAKE_FAILED', 'HELLO payload must be a JSON object');
  }
  const record = value as Record<string, unknown>;
  const settings = { hello: (record.hello ?? null) as JsonValue } as PeerSettings;
  for (const [key, min, max] of NUMERIC_FIELDS) {
    const field = record[key];
    if (typeof field !== 'number' || !Number.isInteger(field) || field < min || field > max) {
      throw new MuxError('ERR_HANDSHAKE_FAILED', `HELLO field ${key} must be an integer from ${min} to ${max}`);
    }
    (settings as unknown as Record<string, number>)[key] = field;
  }
  return settings;
}
