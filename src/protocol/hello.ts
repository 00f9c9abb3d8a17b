import type { JsonValue } from '../meta';
import { MuxError } from '../errors';
import { MAX_STREAM_ID, MAX_WINDOW } from './constants';
import { encodeIJson, parseIJson } from './json';
import { CACHED_HELLO_MAX_BYTES } from '../config';

/** What each peer announces in its HELLO frame (PROTOCOL.md, "Handshake"). */
export interface PeerSettings {
  /** Receive window the sender grants on every new stream, in bytes. */
  initialWindow: number;
  /**
   * Receive window the sender grants for DATA on all streams together, in bytes: the
   * connection-level credit the receiver of this HELLO starts with (PROTOCOL.md, section 8).
   */
  connectionWindow: number;
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
  ['connectionWindow', 1024, MAX_WINDOW],
  ['maxFrameSize', 1024, 0x7fffffff],
  ['maxStreams', 0, MAX_STREAM_ID],
  // 4 bytes carry the smallest meta there is: `null`.
  ['maxMetaBytes', 4, 0x7fffffff],
];

/** The HELLO payload: compact JSON, fields in the order of PROTOCOL.md's table. Throws `ERR_INVALID_META` for a `hello` that is not I-JSON. */
export function encodeSettings(settings: PeerSettings): Buffer {
  return encodeIJson(settings, 'hello');
}

/**
 * The last HELLO payload without a greeting that was parsed, and its settings: a server's
 * clients, and a client's connections to one server, all send the same bytes. Only small
 * payloads are kept, so a peer padding its HELLO with unknown fields pins nothing.
 */
let lastPayload: Buffer | null = null;
let lastSettings: Readonly<PeerSettings> | null = null;

/**
 * Parses and checks a HELLO payload; throws `ERR_HANDSHAKE_FAILED` on anything malformed.
 * The result is frozen when it may be shared with other connections.
 */
export function parseSettings(payload: Buffer): Readonly<PeerSettings> {
  if (lastPayload !== null && payload.equals(lastPayload)) return lastSettings!;
  const settings = parseFresh(payload);
  if (settings.hello === null && payload.length <= CACHED_HELLO_MAX_BYTES) {
    // A copy: the payload is a view of a socket read that must not stay pinned.
    lastPayload = Buffer.from(payload);
    lastSettings = Object.freeze(settings);
  }
  return settings;
}

function parseFresh(payload: Buffer): PeerSettings {
  const { value } = parseIJson(payload, 'HELLO payload', 'ERR_HANDSHAKE_FAILED');
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
