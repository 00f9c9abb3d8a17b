/**
 * The sending side of a sync stream (`tsmux send`, and `tsmux serve` for `get`): it lists
 * its entries, waits for the receiver's plan, then sends the data of the files asked for,
 * one after another on the one stream, each followed by its SHA-256. Small files are read
 * ahead, so the disk and the network overlap. A resumed file's kept prefix is hashed here
 * too: if it differs, the whole file is sent instead.
 */
import { createHash, type Hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { escapeName } from '../escape';
import type { Progress } from '../progress';
import type { SourceEntry } from './entries';
import { emptyOutcome, type SyncOutcome } from './outcome';
import { fileEnd, fileStart, header, jsonMessage, Kind, parseJson, readMessages, SyncProtocolError, type Decision } from './wire';
import { writeAll } from './write';

export interface SenderOptions {
  /** Stops sending: the file in flight is cut short (the receiver keeps it to resume). */
  signal: AbortSignal;
  /** Compare by SHA-256 rather than size and modification time. */
  checksum?: boolean;
  /** Made once the plan is known, with the bytes and files to send. */
  progress?: (totalBytes: number, totalFiles: number) => Progress;
  /**
   * Milliseconds the receiver may take to answer the list of entries, and to confirm the
   * files after the last byte; past that the stream is cut and the unconfirmed files count
   * as failed. 0 or absent: no limit.
   */
  statusTimeout?: number;
}

const ENTRIES_PER_MESSAGE = 1000;
const CHUNK_BYTES = 1024 * 1024;
/**
 * Files up to this size are read whole with one synchronous call: four system calls of a few
 * microseconds, where the promise API costs a thread-pool round trip and an object per call.
 * The sending process has nothing else to do meanwhile.
 */
const SMALL_FILE_BYTES = 256 * 1024;

interface Planned {
  index: number;
  entry: SourceEntry;
  offset: number;
  prefixHash: string | undefined;
}

export async function runSender(stream: Duplex, entries: SourceEntry[], options: SenderOptions): Promise<SyncOutcome> {
  const { signal } = options;
  const outcome = emptyOutcome();
  const decisions: Decision[] = [];
  const pendingDone = new Map<number, SourceEntry>();
  let planned: () => void = () => {};
  const planReady = new Promise<void>((resolve) => (planned = resolve));
  let receiverEnded = false;
  let silent = false;
  let progress: Progress | undefined;
  const views = new Map<number, ReturnType<Progress['begin']>>();

  const readLoop = (async (): Promise<void> => {
    for await (const message of readMessages(stream)) {
      if (message.kind === Kind.PLAN) {
        const batch = parseJson(message.payload);
        if (!Array.isArray(batch)) throw new SyncProtocolError('a plan must be an array');
        decisions.push(...(batch as Decision[]));
        if (decisions.length > entries.length) throw new SyncProtocolError('more decisions than entries');
        if (decisions.length === entries.length) planned();
      } else if (message.kind === Kind.DONE) {
        if (message.payload.length < 4) throw new SyncProtocolError('malformed DONE');
        const index = message.payload.readUInt32BE(0);
        const reason = message.payload.subarray(4).toString('utf8');
        const entry = pendingDone.get(index);
        if (!entry) throw new SyncProtocolError(`DONE for ${index}, which was not sent`);
        pendingDone.delete(index);
        const view = views.get(index);
        views.delete(index);
        if (reason === '') {
          outcome.files++;
          outcome.bytes += entry.s ?? 0;
          view?.done();
        } else if (reason !== 'interrupted') {
          outcome.failures.push({ name: escapeName(entry.n), reason });
          view?.fail(reason);
        } else view?.fail(reason);
      } else throw new SyncProtocolError(`unexpected message kind ${message.kind}`);
    }
    receiverEnded = true;
  })();
  // A read failure ends the plan's wait too.
  const readFailed = readLoop.then(
    () => {
      throw new Error('the receiver ended the stream early');
    },
    (err: unknown) => {
      throw err;
    },
  );
  readFailed.catch(() => {});

  try {
    for (let start = 0; start < entries.length; start += ENTRIES_PER_MESSAGE) {
      const batch = entries.slice(start, start + ENTRIES_PER_MESSAGE).map(({ path: _path, ...entry }) => entry);
      if (options.checksum) await addChecksums(entries, batch, start);
      await writeAll(stream, jsonMessage(Kind.ENTRIES, batch));
    }
    await writeAll(stream, header(Kind.ENTRIES_END, 0));
    const timedOut = (): void => {
      silent = true;
    };
    if (entries.length > 0)
      await within(Promise.race([planReady, readFailed]), options.statusTimeout, 'answer the list of files', timedOut);

    const work: Planned[] = [];
    decisions.forEach((decision, index) => {
      const entry = entries[index];
      if (decision.a === 's') {
        if (entry.t === 'f') outcome.unchanged++;
        else if (entry.t === 'l') outcome.links++;
      } else if (decision.a === 'k') {
        if (entry.t === 'd') outcome.dirs++;
        else outcome.links++;
      } else if (decision.a === 'r') {
        outcome.failures.push({ name: escapeName(String(entry.n)), reason: String(decision.e) });
      } else if (decision.a === 'w' && entry.t === 'f') {
        work.push({ index, entry, offset: decision.o > 0 ? decision.o : 0, prefixHash: decision.h });
      } else throw new SyncProtocolError(`a decision the sender does not know for ${entry.n}`);
    });
    if (options.progress && work.length > 0) {
      progress = options.progress(
        work.reduce((sum, item) => sum + (item.entry.s ?? 0) - item.offset, 0),
        work.length,
      );
    }

    let interrupted = false;
    for (let k = 0; k < work.length; k++) {
      if (signal.aborted) {
        interrupted = true;
        break;
      }
      const item = work[k];
      pendingDone.set(item.index, item.entry);
      const view = progress?.begin(escapeName(item.entry.n), (item.entry.s ?? 0) - item.offset);
      if (view) views.set(item.index, view);
      const content = item.offset === 0 && (item.entry.s ?? 0) <= SMALL_FILE_BYTES ? readSmall(item.entry.path) : null;
      if (content !== null) await sendWhole(stream, item, content, outcome);
      else if (!(await sendStreamed(stream, item, signal, outcome, (bytes) => view?.update(bytes)))) {
        interrupted = true;
        break;
      }
    }
    if (interrupted || signal.aborted)
      outcome.interrupted = `interrupted${typeof signal.reason === 'string' ? ` by ${signal.reason}` : ''}`;
    const finish = Buffer.alloc(1);
    finish.writeUInt8(outcome.interrupted ? 1 : 0, 0);
    await writeAll(stream, Buffer.concat([header(Kind.FINISH, 1), finish]));
    stream.end();
    // Every DONE, then the receiver's end.
    await within(readLoop, options.statusTimeout, 'confirm the files after the last byte', timedOut);
  } catch (err) {
    if (signal.aborted) outcome.interrupted ??= `interrupted${typeof signal.reason === 'string' ? ` by ${signal.reason}` : ''}`;
    outcome.interrupted ??= err instanceof SyncProtocolError ? `protocol error: ${err.message}` : (err as Error).message;
    stream.destroy();
  } finally {
    progress?.stop();
  }
  for (const [index, entry] of pendingDone) {
    views.get(index)?.fail('not confirmed');
    if (!outcome.interrupted || receiverEnded || silent) {
      outcome.failures.push({ name: escapeName(entry.n), reason: 'not confirmed by the receiver; it may or may not have stored the file' });
    }
  }
  return outcome;
}

/**
 * Resolves with `promise`, or rejects once `ms` pass first (never when `ms` is 0 or absent),
 * naming what the receiver did not do.
 */
async function within<T>(promise: Promise<T>, ms: number | undefined, what: string, onTimeout: () => void): Promise<T> {
  if (!ms) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`the receiver did not ${what} within ${ms / 1000} s`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A small file's content, or null if it cannot be read now (the streamed path reports why). */
function readSmall(file: string): Buffer | null {
  try {
    return readFileSync(file);
  } catch {
    return null;
  }
}

/** A small file read whole: its messages go out corked, into one write, without copying the content. */
async function sendWhole(stream: Duplex, item: Planned, content: Buffer, outcome: SyncOutcome): Promise<void> {
  // The receiver takes no byte beyond the listed size: a file that grew is not sent.
  if (content.length > (item.entry.s ?? 0)) return sendGrown(stream, item, outcome);
  const digest = createHash('sha256').update(content).digest();
  outcome.wireBytes += content.length;
  stream.cork();
  stream.write(Buffer.concat([fileStart(item.index, 0), header(Kind.DATA, content.length)]));
  stream.write(content);
  const last = writeAll(stream, fileEnd(item.index, digest, false));
  stream.uncork();
  await last;
}

/** A small file that grew since it was listed: announced and cut at once, counted as failed. */
async function sendGrown(stream: Duplex, item: Planned, outcome: SyncOutcome): Promise<void> {
  await writeAll(stream, Buffer.concat([fileStart(item.index, 0), fileEnd(item.index, Buffer.alloc(32), true)]));
  outcome.failures.push({ name: escapeName(item.entry.n), reason: 'it grew while it was sent' });
}

/**
 * A file read in chunks (large, or resumed). Returns false if `signal` cut it short (its end
 * is sent marked as cut, so the receiver keeps what it has).
 */
async function sendStreamed(
  stream: Duplex,
  item: Planned,
  signal: AbortSignal,
  outcome: SyncOutcome,
  onProgress: (bytes: number) => void,
): Promise<boolean> {
  let handle: FileHandle | null = null;
  try {
    handle = await open(item.entry.path, 'r');
    const hash = createHash('sha256');
    let offset = item.offset;
    if (offset > 0 && !(await prefixMatches(handle, offset, item.prefixHash, hash))) {
      offset = 0;
      hash.destroy?.();
      return sendStreamedFrom(stream, handle, item, 0, createHash('sha256'), signal, outcome, onProgress);
    }
    return await sendStreamedFrom(stream, handle, item, offset, hash, signal, outcome, onProgress);
  } catch (err) {
    if (handle === null) {
      // Cannot read it: tell the receiver the file ends here, cut, and count it as failed.
      await writeAll(stream, Buffer.concat([fileStart(item.index, item.offset), fileEnd(item.index, Buffer.alloc(32), true)]));
      outcome.failures.push({ name: escapeName(item.entry.n), reason: (err as Error).message });
      return true;
    }
    throw err;
  } finally {
    await handle?.close().catch(() => {});
  }
}

async function sendStreamedFrom(
  stream: Duplex,
  handle: FileHandle,
  item: Planned,
  offset: number,
  hash: Hash,
  signal: AbortSignal,
  outcome: SyncOutcome,
  onProgress: (bytes: number) => void,
): Promise<boolean> {
  await writeAll(stream, fileStart(item.index, offset));
  let position = offset;
  let sent = 0;
  // The next chunk is read while this one goes out: the disk and the network overlap.
  // Up to the listed size and no further (the receiver refuses more); one byte past it tells
  // whether the file grew meanwhile.
  const size = item.entry.s ?? 0;
  const readAt = (at: number): Promise<Buffer> => {
    const length = Math.max(1, Math.min(CHUNK_BYTES, size - at));
    return handle.read(Buffer.allocUnsafe(length), 0, length, at).then(({ bytesRead, buffer }) => buffer.subarray(0, bytesRead));
  };
  let next = readAt(position);
  for (;;) {
    if (signal.aborted) {
      await next.catch(() => {});
      await writeAll(stream, fileEnd(item.index, hash.digest(), true));
      return false;
    }
    const chunk = await next;
    if (chunk.length === 0) break;
    if (position >= size) {
      await writeAll(stream, fileEnd(item.index, hash.digest(), true));
      outcome.failures.push({ name: escapeName(item.entry.n), reason: 'it grew while it was sent' });
      return true;
    }
    position += chunk.length;
    next = readAt(position);
    hash.update(chunk);
    sent += chunk.length;
    outcome.wireBytes += chunk.length;
    await writeAll(stream, header(Kind.DATA, chunk.length));
    await writeAll(stream, chunk);
    onProgress(sent);
  }
  await writeAll(stream, fileEnd(item.index, hash.digest(), false));
  return true;
}

/** Hashes the first `length` bytes into `hash` and compares with the receiver's prefix hash. */
async function prefixMatches(handle: FileHandle, length: number, expected: string | undefined, hash: Hash): Promise<boolean> {
  if (expected === undefined) return false;
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let position = 0;
  while (position < length) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK_BYTES, length - position), position);
    if (bytesRead === 0) return false;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.copy().digest('hex') === expected;
}

/** `--checksum`: the SHA-256 of every file in the batch, so the receiver can compare contents. */
async function addChecksums(entries: SourceEntry[], batch: { h?: string; t: string }[], start: number): Promise<void> {
  for (let k = 0; k < batch.length; k++) {
    if (batch[k].t !== 'f') continue;
    const hash = createHash('sha256');
    const handle = await open(entries[start + k].path, 'r');
    try {
      for await (const chunk of handle.createReadStream({ highWaterMark: CHUNK_BYTES })) hash.update(chunk as Buffer);
    } finally {
      await handle.close().catch(() => {});
    }
    batch[k].h = hash.digest('hex');
  }
}
