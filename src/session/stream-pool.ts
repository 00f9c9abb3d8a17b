import type { JsonValue, MetaArgument } from '../meta';
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
   * Opens a stream carrying `meta` (a JSON value) to the peer, which sees it in its `stream`
   * event.
   *
   * With `ack`: returns the stream at once (writes may start before the peer accepts) and
   * calls `ack(stream)` once the peer has accepted it. If the open fails, the returned
   * stream is destroyed with the `MuxError`.
   *
   * `M` is the meta's type, inferred or named (`createStream<UpdateMeta>(meta)`, where
   * `UpdateMeta` may be an interface); the stream's `meta` has that type. A meta that JSON
   * cannot carry (a function, a `bigint`, a `Date`) does not compile.
   */
  createStream<M>(meta: MetaArgument<M>, ack: (stream: MuxStream<M>) => void): MuxStream<M>;
  /**
   * Opens a stream carrying `meta` and resolves once the peer has accepted it; rejects with
   * a `MuxError` (`ERR_STREAM_REFUSED`, `ERR_STREAM_LIMIT`, `ERR_META_TOO_LARGE`,
   * `ERR_GOING_AWAY`, `ERR_CONNECTION_CLOSED`, …) if it cannot be opened.
   */
  createStream<M>(meta: MetaArgument<M>): Promise<MuxStream<M>>;
  /** Opens a stream whose meta is `null`, and resolves once the peer has accepted it. */
  createStream(): Promise<MuxStream<null>>;
  createStream(meta?: JsonValue, ack?: (stream: MuxStream) => void): MuxStream<unknown> | Promise<MuxStream<unknown>> {
    // The overloads above check `meta` at compile time; the connection checks it at run time (I-JSON).
    return this.opener.openStream(meta, ack);
  }

  /** Streams open on this connection right now, in both directions. */
  get size(): number {
    return this.opener.openStreamCount;
  }
}
