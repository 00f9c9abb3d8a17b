import type { JsonValue } from '../config';
import type { MuxStream } from './stream';

/** The part of a connection that opens streams; what `con.StreamPool` exposes. */
export interface StreamOpener {
  openStream(meta: JsonValue | undefined, ack: ((stream: MuxStream) => void) | undefined): MuxStream | Promise<MuxStream>;
  readonly openStreamCount: number;
}

/**
 * A connection's streams, as the seed library named it: `con.StreamPool.createStream(meta, ack)`.
 */
export class StreamPool {
  /** @internal */
  constructor(private readonly opener: StreamOpener) {}

  /**
   * Opens a stream carrying `meta` (any JSON value; default `null`) to the peer, which sees
   * it in its `stream` event.
   *
   * With `ack`: returns the stream at once (writes may start before the peer accepts) and
   * calls `ack(stream)` once the peer has accepted it. If the open fails, the returned
   * stream is destroyed with the `MuxError`.
   */
  createStream(meta: JsonValue | undefined, ack: (stream: MuxStream) => void): MuxStream;
  /**
   * Opens a stream carrying `meta` and resolves once the peer has accepted it; rejects with
   * a `MuxError` (`ERR_STREAM_REFUSED`, `ERR_STREAM_LIMIT`, `ERR_META_TOO_LARGE`,
   * `ERR_GOING_AWAY`, `ERR_CONNECTION_CLOSED`, …) if it cannot be opened.
   */
  createStream(meta?: JsonValue): Promise<MuxStream>;
  createStream(meta?: JsonValue, ack?: (stream: MuxStream) => void): MuxStream | Promise<MuxStream> {
    return this.opener.openStream(meta, ack);
  }

  /** Streams open on this connection right now, in both directions. */
  get size(): number {
    return this.opener.openStreamCount;
  }
}
