/**
 * Wire vocabulary of protocol version 2. Every value here is defined by PROTOCOL.md, not an
 * implementation choice: changing one changes the wire and breaks interoperability.
 */

/** Protocol version carried in every frame header. */
export const PROTOCOL_VERSION = 2;

/**
 * Versions this side recognises but no longer speaks: a peer that sends one is told so in
 * its own version's framing, so it can report why instead of a bare mismatch.
 */
export const RETIRED_VERSIONS: readonly number[] = [1];

/** Bytes every peer sends before its first frame: ASCII "TSMX". */
export const MAGIC = Buffer.from([0x54, 0x53, 0x4d, 0x58]);

const SIZE_OF_VERSION = 1;
const SIZE_OF_TYPE = 1;
const SIZE_OF_FLAGS = 2;
const SIZE_OF_STREAM_ID = 4;
const SIZE_OF_LENGTH = 4;

/** Frame header size in bytes: version, type, flags, stream id, payload length. */
export const HEADER_LENGTH = SIZE_OF_VERSION + SIZE_OF_TYPE + SIZE_OF_FLAGS + SIZE_OF_STREAM_ID + SIZE_OF_LENGTH;

/** Largest stream id: the top bit of the 32-bit field is reserved and must be zero. */
export const MAX_STREAM_ID = 0x7fffffff;

/** Largest window a receiver may grant (the window arithmetic is 31-bit, as in HTTP/2). */
export const MAX_WINDOW = 0x7fffffff;

/** Length of a PING payload: opaque bytes the answering peer echoes back. */
export const PING_PAYLOAD_LENGTH = 8;

/** Length of a WINDOW_UPDATE payload: one u32 increment. */
export const WINDOW_UPDATE_PAYLOAD_LENGTH = 4;

/** Largest payload of a RESET, REFUSE or GO_AWAY frame: a u32 code plus a UTF-8 reason. */
export const MAX_CONTROL_PAYLOAD = 4 + 1024;

/** Frame types on the wire (PROTOCOL.md, section 4). */
export enum FrameType {
  /** Stream bytes. Counts against the receiver's window. With FIN, the sender's last bytes. */
  DATA = 0x0,
  /**
   * Grants the peer more send window: on a stream, for that stream; on stream 0, for the
   * connection (all streams' DATA together). Payload is a u32 increment (non-zero).
   */
  WINDOW_UPDATE = 0x1,
  /** Liveness and RTT probe on stream 0: 8 opaque bytes; answered by the same bytes with ACK. */
  PING = 0x2,
  /** The sender will open no more streams and accepts no more: u32 error code + UTF-8 reason. */
  GO_AWAY = 0x3,
  /** Opens a stream with the sender's next id: payload is the UTF-8 JSON meta value. */
  OPEN = 0x4,
  /** The receiver of an OPEN accepted it (its application has the stream). Empty payload. */
  ACCEPT = 0x5,
  /** The receiver of an OPEN refused it: u32 error code + UTF-8 reason. The id is closed. */
  REFUSE = 0x6,
  /** Aborts a stream in both directions: u32 error code + UTF-8 reason. The id is closed. */
  RESET = 0x7,
  /** First frame from each peer, on stream 0: UTF-8 JSON settings object. Only once. */
  HELLO = 0x8,
}

/** Frame flags on the wire (PROTOCOL.md, section 5). */
export enum Flag {
  /** On DATA: the sender half-closes; no more DATA follows from it on this stream. */
  FIN = 0x1,
  /** On PING: this is the answer to a PING with the same payload. */
  ACK = 0x2,
}

/** Every flag bit this version defines; a frame with any other bit set is a protocol error. */
export const KNOWN_FLAGS = Flag.FIN | Flag.ACK;

/** Codes carried by RESET, REFUSE and GO_AWAY frames. */
export enum WireErrorCode {
  /** No error: a normal go-away. */
  NORMAL = 0,
  /** The peer broke this specification. */
  PROTOCOL_ERROR = 1,
  /** The peer sent more DATA than the window allowed. */
  FLOW_CONTROL_ERROR = 2,
  /** A frame was larger than the receiver's limit. */
  FRAME_TOO_LARGE = 3,
  /** Opening would exceed the receiver's concurrent-stream limit. */
  STREAM_LIMIT = 4,
  /** The receiving application refused the stream; the reason says why. */
  REFUSED = 5,
  /** The application cancelled (destroyed) the stream. */
  CANCEL = 6,
  /** The sender failed internally (for example a local write error). */
  INTERNAL_ERROR = 7,
  /** The receiver is shutting down and accepts no new streams. */
  GOING_AWAY = 8,
  /** The OPEN meta was larger than the receiver's limit. */
  META_TOO_LARGE = 9,
  /** The server rejected the client's hello. */
  AUTH_FAILED = 10,
  /** The peer did not answer keepalive pings in time. */
  KEEPALIVE_TIMEOUT = 11,
  /** The connection carried no streams and no traffic for the idle timeout. */
  IDLE_TIMEOUT = 12,
  /** The opener did not see the stream accepted in time, or the backlog overflowed. */
  OPEN_TIMEOUT = 13,
  /** The peer caused too much work that moves no data (resets, refused opens, pings). */
  ENHANCE_YOUR_CALM = 14,
  /** The receiver is out of memory or connection capacity; try again later. */
  OVERLOADED = 15,
}
