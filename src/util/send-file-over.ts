import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { JsonValue } from '../meta';
import type { MuxStream } from '../session/stream';
import { abortError, checkStatusTimeout, sendFile, type FileTransferResult, type SendFileOptions } from './file-transfer';

/** The meta of a file stream (PROTOCOL.md, Appendix A), with any fields the sender adds. */
export interface FileMeta {
  /** Always `'file'`. */
  type: 'file';
  /** The name the receiver stores the file under: a relative POSIX path. */
  name: string;
  /** The file's size in bytes. */
  size: number;
  [field: string]: JsonValue;
}

/**
 * Anything that opens streams: a `StreamPool`. On a connection typed by its metas, those
 * must include {@link FileMeta}.
 */
export interface StreamCreator {
  /** Opens a stream carrying `meta`; resolves once the peer accepts it. */
  createStream(meta: FileMeta): Promise<MuxStream<unknown>>;
}

/** Where {@link sendFileOver} opens its stream: a `StreamPool`, or a connection or client that has one. */
export type StreamOpenerLike = StreamCreator | StreamPoolHolder;

/** A connection or client: it has a `StreamPool`. */
export interface StreamPoolHolder {
  /** The connection's stream opener. */
  StreamPool: StreamCreator;
}

export interface SendFileOverOptions extends SendFileOptions {
  /** The name the receiver sees in `meta.name` (a relative POSIX path). Default: the file's base name. */
  name?: string;
  /** More meta fields sent along (`type`, `name` and `size` are set by this function). */
  meta?: { [key: string]: JsonValue };
}

/**
 * Opens a stream with meta `{ type: 'file', name, size }` on `pool` and sends `filename` over it
 * with {@link sendFile}. Resolves as `sendFile` does; rejects with the open's `MuxError`
 * (`ERR_STREAM_REFUSED` carries the receiver's reason) if the stream cannot be opened, or with
 * `ERR_ABORTED` if `signal` fires, even while the open is still waiting for the receiver.
 */
export async function sendFileOver(
  pool: StreamOpenerLike,
  filename: string,
  options: SendFileOverOptions = {},
): Promise<FileTransferResult> {
  const { name = path.basename(filename), meta = {}, signal, ...sendOptions } = options;
  const opener = 'StreamPool' in pool ? pool.StreamPool : pool;
  checkStatusTimeout(sendOptions.statusTimeout); // before a stream is opened for nothing
  if (signal?.aborted) throw abortError(signal);
  const { size } = await stat(filename);
  if (signal?.aborted) throw abortError(signal);
  const opening = opener.createStream({ ...meta, type: 'file', name, size });
  let stream: MuxStream<unknown>;
  if (signal) {
    let onAbort: (() => void) | undefined;
    const abort = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      stream = await Promise.race([opening, abort]);
    } catch (err) {
      // A stream accepted after the abort is reset at once, so the receiver stops waiting.
      opening.then(
        (late) => late.destroy(),
        () => {},
      );
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  } else {
    stream = await opening;
  }
  return sendFile(filename, stream, signal ? { ...sendOptions, signal } : sendOptions);
}
