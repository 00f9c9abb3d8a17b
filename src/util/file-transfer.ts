import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { MuxError } from '../errors';

// The file-transfer convention on one stream (PROTOCOL.md, "Appendix: file transfer"):
//   sender -> receiver: "TSMF" | u8 version | u64 size | size bytes of content | 32-byte SHA-256, then FIN
//   receiver -> sender: one JSON status line ({"ok":true,...} or {"ok":false,"error":...}), then FIN
const FILE_MAGIC = Buffer.from('TSMF', 'latin1');
const FILE_VERSION = 1;
const FILE_HEADER_LENGTH = FILE_MAGIC.length + 1 + 8;
const DIGEST_LENGTH = 32;
const MAX_STATUS_BYTES = 64 * 1024;
// 30 s: a receiver may need that long to fsync and rename a large file on a slow disk; a silent one is still noticed.
const DEFAULT_STATUS_TIMEOUT = 30_000;
/** The longest delay Node's timers hold (they fire at once beyond it). */
const MAX_TIMEOUT = 0x7fffffff;

/** What a finished transfer moved, as both sides report it. */
export interface FileTransferResult {
  /** Bytes of file content moved. */
  size: number;
  /** Hex SHA-256 of the content. */
  sha256: string;
}

/** Options of {@link sendFile} (and, but for `statusTimeout`, of {@link receiveFile}). */
export interface SendFileOptions {
  /** Aborts the transfer: the stream is reset and the promise rejects with `ERR_ABORTED`. */
  signal?: AbortSignal;
  /** Called as content is handed to the stream: bytes so far and the total. */
  onProgress?: (bytes: number, total: number) => void;
  /**
   * Milliseconds to wait for the receiver's status once the last byte and the end of the
   * stream have been handed to the connection (the stream's `finish`). Default 30 000
   * (30 s); 0 = no limit; at most 2^31-1. On expiry the stream is reset and the promise
   * rejects with `ERR_STATUS_TIMEOUT`: the receiver may or may not have stored the file.
   */
  statusTimeout?: number;
}

/** Options of {@link receiveFile}. */
export interface ReceiveFileOptions extends Omit<SendFileOptions, 'statusTimeout'> {
  /**
   * Replace an existing `filename` (default `true`). With `false` the verified file is
   * hard-linked into place, which fails if `filename` exists by then, so a file that appeared
   * during the transfer is never replaced; the transfer then fails and the sender is told why.
   */
  overwrite?: boolean;
  /**
   * The size the sender announced elsewhere (e.g. in the stream's meta): a transfer whose
   * header says otherwise fails with `ERR_FILE_MISMATCH` before any content is stored.
   */
  expectedSize?: number;
  /** Largest file accepted, in bytes: a larger announced size fails with `ERR_FILE_TRANSFER` at once. */
  maxSize?: number;
}

/** The optional node-style callback of {@link sendFile} and {@link receiveFile}. */
export type FileTransferCallback = (err: Error | null, result?: FileTransferResult) => void;
type Callback = FileTransferCallback;

/**
 * Sends the file `filename` over `stream` (the peer runs {@link receiveFile}). Resolves once
 * the receiver reports the file verified and stored; rejects if it reports a failure or the
 * stream breaks. A trailing callback `(err, result)` works too.
 */
export function sendFile(
  filename: string,
  stream: Duplex,
  options?: SendFileOptions | Callback,
  callback?: Callback,
): Promise<FileTransferResult> {
  if (typeof options === 'function') [callback, options] = [options, undefined];
  return withCallback(runSend(filename, stream, options ?? {}), callback);
}

/**
 * Receives a file sent with {@link sendFile} over `stream` into `filename`. The bytes go to
 * a temporary file beside it, renamed into place only when length and SHA-256 match; on any
 * failure the promise rejects and neither `filename` nor the temporary file is left behind.
 */
export function receiveFile(
  filename: string,
  stream: Duplex,
  options?: ReceiveFileOptions | Callback,
  callback?: Callback,
): Promise<FileTransferResult> {
  if (typeof options === 'function') [callback, options] = [options, undefined];
  return withCallback(runReceive(filename, stream, options ?? {}), callback);
}

function withCallback(promise: Promise<FileTransferResult>, callback: Callback | undefined): Promise<FileTransferResult> {
  if (callback) {
    promise.then(
      (result) => callback(null, result),
      (err: Error) => callback(err),
    );
  }
  return promise;
}

async function runSend(filename: string, stream: Duplex, options: SendFileOptions): Promise<FileTransferResult> {
  const { signal, onProgress } = options;
  // Before anything touches the stream: a bad argument leaves it as the caller gave it.
  const statusTimeout = checkStatusTimeout(options.statusTimeout);
  const status = readStatus(stream);
  // If the receiver answers early (a failure), stop sending at once.
  let answered = false;
  status.then(
    () => (answered = true),
    () => (answered = true),
  );
  const onAbort = (): void => {
    stream.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // Inside the try: if the file cannot be read or the signal already fired, the stream is
    // reset so the receiver stops waiting.
    signal?.throwIfAborted();
    const { size } = await stat(filename);
    const header = Buffer.allocUnsafe(FILE_HEADER_LENGTH);
    FILE_MAGIC.copy(header, 0);
    header[FILE_MAGIC.length] = FILE_VERSION;
    header.writeBigUInt64BE(BigInt(size), FILE_MAGIC.length + 1);
    await writeOrWait(stream, header);
    const hash = createHash('sha256');
    let sent = 0;
    for await (const chunk of createReadStream(filename, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
      if (answered) break;
      sent += chunk.length;
      if (sent > size) throw new MuxError('ERR_FILE_TRANSFER', `${filename} grew while it was being sent`);
      hash.update(chunk);
      await writeOrWait(stream, chunk);
      onProgress?.(sent, size);
    }
    if (!answered) {
      if (sent !== size) throw new MuxError('ERR_FILE_TRANSFER', `${filename} shrank while it was being sent`);
      const digest = hash.digest();
      await writeOrWait(stream, digest);
      stream.end();
    }
    const reply = await statusWithin(status, stream, statusTimeout);
    if (!reply.ok) {
      stream.destroy();
      throw new MuxError('ERR_FILE_REJECTED', `receiver rejected the file: ${reply.error ?? 'unknown reason'}`);
    }
    return { size, sha256: typeof reply.sha256 === 'string' ? reply.sha256 : '' };
  } catch (err) {
    // Without an error argument: the caller learns why from the promise, and a stream with no
    // `error` listener must not throw. The peer sees the reset.
    if (!stream.destroyed) stream.destroy();
    if (signal?.aborted) throw abortError(signal);
    throw asTransferError(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * @internal `statusTimeout` checked (an integer from 0 to 2^31-1 milliseconds), or the default;
 * throws `ERR_INVALID_ARGUMENT`.
 */
export function checkStatusTimeout(value: number | undefined): number {
  if (value === undefined) return DEFAULT_STATUS_TIMEOUT;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMEOUT) {
    throw new MuxError(
      'ERR_INVALID_ARGUMENT',
      `statusTimeout must be an integer from 0 to ${MAX_TIMEOUT} milliseconds, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * `status`, unless it is still pending `ms` milliseconds after the stream's writable side
 * finished (every byte and the FIN handed to the connection): then an `ERR_STATUS_TIMEOUT`
 * rejection. The clock starts at `finish`, not at `end()`, so bytes still waiting for the
 * receiver's window do not count against it. 0 = no limit.
 */
function statusWithin(status: Promise<Status>, stream: Duplex, ms: number): Promise<Status> {
  if (ms === 0) return status;
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const start = (): void => {
      timer = setTimeout(() => {
        reject(
          new MuxError(
            'ERR_STATUS_TIMEOUT',
            `receiver sent no status within ${ms / 1000} s of the last byte; it may or may not have stored the file`,
          ),
        );
      }, ms);
    };
    if (stream.writableFinished) start();
    else stream.once('finish', start);
    void status.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      stream.off('finish', start);
    });
  });
}

/** @internal The error of a transfer stopped by `signal` (sendFile, receiveFile, sendFileOver). */
export function abortError(signal: AbortSignal | undefined): MuxError {
  return new MuxError('ERR_ABORTED', 'file transfer aborted', { cause: signal?.reason });
}

interface Status {
  ok: boolean;
  error?: string;
  sha256?: string;
  size?: number;
}

async function readStatus(stream: Duplex): Promise<Status> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_STATUS_BYTES) throw new MuxError('ERR_FILE_TRANSFER', 'receiver sent an oversized status');
    parts.push(chunk);
    const text = Buffer.concat(parts).toString('utf8');
    const newline = text.indexOf('\n');
    if (newline >= 0) return parseStatus(text.slice(0, newline));
  }
  if (length === 0) throw new MuxError('ERR_FILE_TRANSFER', 'receiver closed the stream without a status');
  return parseStatus(Buffer.concat(parts).toString('utf8'));
}

function parseStatus(line: string): Status {
  try {
    const value = JSON.parse(line) as unknown;
    if (typeof value === 'object' && value !== null && typeof (value as Status).ok === 'boolean') return value as Status;
  } catch {
    // reported below
  }
  throw new MuxError('ERR_FILE_TRANSFER', 'receiver sent an unreadable status');
}

async function runReceive(filename: string, stream: Duplex, options: ReceiveFileOptions): Promise<FileTransferResult> {
  const { signal, overwrite = true } = options;
  if (signal?.aborted) {
    stream.destroy();
    throw abortError(signal);
  }
  const target = path.resolve(filename);
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.part`);
  let file: FileHandle | null = null;
  const onAbort = (): void => {
    stream.destroy();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    file = await open(temporary, 'wx', 0o644);
    const result = await receiveInto(file, stream, options);
    await file.sync();
    await file.close();
    file = null;
    if (overwrite) await rename(temporary, target);
    else await linkIntoPlace(temporary, target);
    stream.end(`${JSON.stringify({ ok: true, size: result.size, sha256: result.sha256 })}\n`);
    return result;
  } catch (err) {
    if (file) await file.close().catch(() => {});
    await unlink(temporary).catch(() => {});
    const error = signal?.aborted ? abortError(signal) : asTransferError(err);
    if (!stream.destroyed && !stream.writableEnded) {
      // Tell the sender why, then discard whatever it still sends until it stops.
      stream.end(`${JSON.stringify({ ok: false, error: error.message, code: error.code })}\n`);
      stream.resume();
    }
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Moves `temporary` to `target` unless `target` exists (link fails with EEXIST, atomically). */
async function linkIntoPlace(temporary: string, target: string): Promise<void> {
  try {
    await link(temporary, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new MuxError('ERR_FILE_TRANSFER', `${path.basename(target)} already exists`, { cause: err });
    }
    throw err;
  }
  await unlink(temporary);
}

async function receiveInto(file: FileHandle, stream: Duplex, options: ReceiveFileOptions): Promise<FileTransferResult> {
  const { onProgress, expectedSize, maxSize } = options;
  const hash = createHash('sha256');
  let header: Buffer | null = null;
  let pending = Buffer.alloc(0);
  let size = 0;
  let received = 0;
  const trailer: Buffer[] = [];
  let trailerLength = 0;
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    let data = chunk;
    if (header === null) {
      pending = Buffer.concat([pending, data]);
      if (pending.length < FILE_HEADER_LENGTH) continue;
      header = pending.subarray(0, FILE_HEADER_LENGTH);
      data = pending.subarray(FILE_HEADER_LENGTH);
      size = parseHeader(header);
      if (expectedSize !== undefined && size !== expectedSize) {
        throw new MuxError('ERR_FILE_MISMATCH', `sender announced ${expectedSize} bytes but its transfer carries ${size}`);
      }
      if (maxSize !== undefined && size > maxSize) {
        throw new MuxError('ERR_FILE_TRANSFER', `file of ${size} bytes is over the limit of ${maxSize}`);
      }
    }
    const content = data.subarray(0, Math.max(0, Math.min(data.length, size - received)));
    if (content.length > 0) {
      hash.update(content);
      await writeAll(file, content);
      received += content.length;
      onProgress?.(received, size);
    }
    const rest = data.subarray(content.length);
    if (rest.length > 0) {
      trailerLength += rest.length;
      if (trailerLength > DIGEST_LENGTH) throw new MuxError('ERR_FILE_MISMATCH', 'sender sent more bytes than it announced');
      trailer.push(rest);
    }
  }
  if (header === null) throw new MuxError('ERR_FILE_TRANSFER', 'stream ended before the file header');
  if (received !== size) throw new MuxError('ERR_FILE_MISMATCH', `stream ended after ${received} of ${size} bytes`);
  if (trailerLength !== DIGEST_LENGTH) throw new MuxError('ERR_FILE_MISMATCH', 'stream ended before the SHA-256 trailer');
  const digest = hash.digest();
  if (!digest.equals(Buffer.concat(trailer))) throw new MuxError('ERR_FILE_MISMATCH', 'SHA-256 of the received file does not match');
  return { size, sha256: digest.toString('hex') };
}

function parseHeader(header: Buffer): number {
  if (!header.subarray(0, FILE_MAGIC.length).equals(FILE_MAGIC)) {
    throw new MuxError('ERR_FILE_TRANSFER', 'stream does not carry a file (bad file-transfer magic)');
  }
  if (header[FILE_MAGIC.length] !== FILE_VERSION) {
    throw new MuxError('ERR_FILE_TRANSFER', `unsupported file-transfer version ${String(header[FILE_MAGIC.length])}`);
  }
  const size = header.readBigUInt64BE(FILE_MAGIC.length + 1);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new MuxError('ERR_FILE_TRANSFER', 'announced file size is too large');
  return Number(size);
}

async function writeAll(file: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

/** Writes `chunk`; if the stream pushes back, waits for `drain`, or fails if it closes. */
function writeOrWait(stream: Duplex, chunk: Buffer): Promise<void> {
  if (stream.destroyed || stream.writableEnded) {
    return Promise.reject(stream.errored ?? new MuxError('ERR_FILE_TRANSFER', 'stream closed during the transfer'));
  }
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      stream.off('error', onError);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(stream.errored ?? new MuxError('ERR_FILE_TRANSFER', 'stream closed during the transfer'));
    };
    stream.on('drain', onDrain);
    stream.on('close', onClose);
    stream.on('error', onError);
  });
}

function asTransferError(err: unknown): MuxError {
  if (err instanceof MuxError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MuxError('ERR_FILE_TRANSFER', `file transfer failed: ${message}`, { cause: err });
}
