/**
 * The receiving side of a sync stream (`tsmux serve` for `send`, `tsmux get` for `get`): it
 * judges every entry the sender lists (skip what is there unchanged, resume a partial, refuse
 * unsafe names), makes directories and links, writes the files it asked for into partial files
 * beside their targets, checks each against the sender's SHA-256, then gives it its mode and
 * time and moves it into place.
 *
 * Names are untrusted. Every name passes `checkName` (relative, no `..`, no control
 * characters), and every directory on the way to a target must be a real directory under
 * `root`: a symbolic link there is refused, never followed. (`tsmux serve` also refuses a
 * receiving directory that other users can write to; see strict-modes.ts.)
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fchmodSync, futimesSync, openSync, renameSync, writevSync, type Stats } from 'node:fs';
import {
  chmod,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  statfs,
  symlink,
  unlink,
  utimes,
  type FileHandle,
} from 'node:fs/promises';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { escapeName } from '../escape';
import { checkName } from '../safe-path';
import type { FileProgress, Progress } from '../progress';
import { emptyOutcome, type SyncOutcome } from './outcome';
import { hashPrefix, partialName, partialOf, RESUME_MIN_BYTES } from './partial';
import { done, jsonMessage, Kind, parseJson, readMessages, SyncProtocolError, type Decision, type Entry } from './wire';
import { writeAll } from './write';

export interface ReceiverOptions {
  /** The receiving directory: a realpath. */
  root: string;
  /** Replace files that exist and differ (otherwise they are refused). */
  overwrite: boolean;
  /** Largest file accepted, in bytes (undefined: no limit). */
  maxSize?: number | undefined;
  /** Refuse a file that would leave less than this many bytes free on the disk. */
  minFree?: number | undefined;
  /** Where finished and refused entries are reported (names already escaped). */
  log?: (line: string) => void;
  /** Made once the plan is known, with the bytes and files to come. */
  progress?: (totalBytes: number, totalFiles: number) => Progress;
}

/** A file the receiver asked for, until it is in place. */
interface Wanted {
  entry: Entry;
  /** Absolute paths. */
  target: string;
  partial: string;
  /** Offset asked for, and the SHA-256 state of the kept prefix (resume). */
  offset: number;
  prefix: Hash | null;
}

/** Written from data in flight: flushed to the partial file in batches. */
interface Current {
  index: number;
  wanted: Wanted;
  /** Null for a small file: it is kept in memory and written at its end, in one go. */
  handle: FileHandle | null;
  hash: Hash;
  position: number;
  received: number;
  /** Bytes this file may still bring: its size less the offset it starts at. */
  expected: number;
  pieces: Buffer[];
  pieceBytes: number;
  /** Writes issued and not yet done (each at its own position), and the first that failed. */
  writes: Promise<void>[];
  writeError: Error | null;
  view: FileProgress | undefined;
}

const FLUSH_BYTES = 1024 * 1024;
/** Writes of one file in flight at once: the disk works while more data is read from the stream. */
const WRITES_IN_FLIGHT = 4;
/**
 * Files up to this size are written with synchronous calls once they are complete: a few
 * system calls of microseconds each, where the thread pool would add a round trip to each and
 * queue them behind other files' work. Thousands of small files go several times faster; the
 * event loop is held for well under a millisecond per file.
 */
const SMALL_FILE_BYTES = 256 * 1024;
/** Entries one run may list: bounds what a sender makes the receiver remember. */
const MAX_ENTRIES = 1_000_000;
/** Files being given their mode and time and moved into place at once. */
const FINISHING = 32;

export async function runReceiver(stream: Duplex, options: ReceiverOptions): Promise<SyncOutcome> {
  const { root, log = () => {} } = options;
  const outcome = emptyOutcome();
  /** Entries listed so far: their indexes, and what MAX_ENTRIES bounds (the entries are not kept). */
  let listed = 0;
  const wanted = new Map<number, Wanted>();
  const verifiedDirs = new Set<string>(['']);
  const refused = new Set<string>();
  const listings = new Map<string, Promise<Set<string>>>();
  const dirTimes: { target: string; entry: Entry }[] = [];
  const finishing = new Set<Promise<void>>();
  let committedBytes = 0;
  let diskFree: Promise<number> | undefined;
  let current: Current | null = null;
  let progress: Progress | undefined;
  let finished = false;

  const send = (buffer: Buffer): Promise<void> => writeAll(stream, buffer);
  const fail = (entry: Entry, reason: string): void => {
    outcome.failures.push({ name: escapeName(entry.n), reason });
    log(`refused ${escapeName(entry.n)}: ${reason}`);
  };

  /** Checks (and makes, if missing) every directory of `dir` (relative), refusing links. */
  async function ensureDir(dir: string): Promise<string | null> {
    if (verifiedDirs.has(dir)) return null;
    const parentProblem = await ensureDir(path.posix.dirname(dir) === '.' ? '' : path.posix.dirname(dir));
    if (parentProblem !== null) return parentProblem;
    const absolute = path.join(root, dir);
    const info = await lstatOrNull(absolute);
    if (info === null) {
      await mkdir(absolute, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      const made = await lstat(absolute);
      if (!made.isDirectory()) return `${dir} is not a directory on the receiver`;
    } else if (info.isSymbolicLink()) return `${dir} is a symbolic link on the receiver`;
    else if (!info.isDirectory()) return `${dir} is not a directory on the receiver`;
    verifiedDirs.add(dir);
    return null;
  }

  function listing(dir: string): Promise<Set<string>> {
    let names = listings.get(dir);
    if (!names) {
      names = readdir(path.join(root, dir)).then(
        (list) => new Set(list),
        () => new Set<string>(),
      );
      listings.set(dir, names);
    }
    return names;
  }

  async function planDirectory(entry: Entry): Promise<Decision> {
    const problem = await ensureDir(entry.n);
    if (problem !== null) return { a: 'r', e: problem };
    dirTimes.push({ target: path.join(root, entry.n), entry });
    outcome.dirs++;
    return { a: 'k' };
  }

  async function planLink(entry: Entry, dir: string, target: string, existing: Stats | null): Promise<Decision> {
    const to = entry.l;
    if (typeof to !== 'string' || to === '' || to.includes('\0')) return { a: 'r', e: 'missing link target' };
    const resolved = path.posix.normalize(path.posix.join(dir, to));
    if (to.startsWith('/') || resolved === '..' || resolved.startsWith('../')) {
      return { a: 'r', e: `the link's target ${to} leaves the receiving directory` };
    }
    if (existing !== null) {
      if (existing.isSymbolicLink() && (await readlink(target)) === to) {
        outcome.links++;
        return { a: 's' };
      }
      if (existing.isDirectory()) return { a: 'r', e: `${entry.n} is a directory on the receiver` };
      if (!options.overwrite) return { a: 'r', e: `${entry.n} already exists on the receiver (--overwrite replaces it)` };
    }
    const temporary = path.join(path.dirname(target), `.${path.basename(target)}.tsmux-link`);
    await unlink(temporary).catch(() => {});
    await symlink(to, temporary);
    await lutimes(temporary, entry.m / 1000, entry.m / 1000).catch(() => {});
    await rename(temporary, target);
    outcome.links++;
    return { a: 'k' };
  }

  async function planFile(index: number, entry: Entry, dir: string, target: string, existing: Stats | null): Promise<Decision> {
    const size = entry.s;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return { a: 'r', e: 'file size missing or invalid' };
    if (existing !== null) {
      if (existing.isSymbolicLink()) return { a: 'r', e: `${entry.n} is a symbolic link on the receiver` };
      if (!existing.isFile()) return { a: 'r', e: `${entry.n} is not a regular file on the receiver` };
      if (existing.size === size && (await sameContent(target, existing, entry))) {
        if ((existing.mode & 0o777) !== entry.p) await chmod(target, entry.p);
        outcome.unchanged++;
        return { a: 's' };
      }
      if (!options.overwrite) return { a: 'r', e: `${entry.n} already exists on the receiver and differs (--overwrite replaces it)` };
    }
    if (options.maxSize !== undefined && size > options.maxSize) {
      return { a: 'r', e: `file of ${size} bytes is over the receiver's limit of ${options.maxSize}` };
    }
    if (options.minFree !== undefined && size > 0) {
      const free = (await freeBytes()) - committedBytes;
      if (free - size < options.minFree) return { a: 'r', e: `not enough free space on the receiver for ${size} bytes` };
    }
    const base = path.basename(target);
    const partial = path.join(path.dirname(target), partialName(base, size, entry.m));
    let offset = 0;
    let prefix: Hash | null = null;
    const names = await listing(dir);
    // Partials of another version of this file (another size or time) can never resume: gone.
    for (const name of names) {
      if (name !== path.basename(partial) && partialOf(name) === base) await unlink(path.join(path.dirname(target), name)).catch(() => {});
    }
    if (names.has(path.basename(partial))) {
      const kept = await lstatOrNull(partial);
      if (kept?.isFile() && kept.size >= RESUME_MIN_BYTES && kept.size < size) {
        prefix = await hashPrefix(partial, kept.size);
        offset = kept.size;
      }
    }
    committedBytes += size - offset;
    wanted.set(index, { entry, target, partial, offset, prefix });
    return prefix ? { a: 'w', o: offset, h: prefix.copy().digest('hex') } : { a: 'w', o: 0 };
  }

  /** Free space on the receiving disk, asked once per list of entries. */
  function freeBytes(): Promise<number> {
    diskFree ??= statfs(root).then((disk) => disk.bavail * disk.bsize);
    return diskFree;
  }

  async function sameContent(target: string, existing: Stats, entry: Entry): Promise<boolean> {
    if (entry.h === undefined) return Math.abs(existing.mtimeMs - entry.m) < 1;
    const hash = await hashPrefix(target, existing.size);
    return hash.digest('hex') === entry.h;
  }

  async function plan(index: number, entry: Entry): Promise<Decision> {
    if (entry?.t === 'x') return { a: 'r', e: `the sender cannot send it: ${String(entry.e)}` };
    const invalid = checkEntry(entry);
    if (invalid !== null) return { a: 'r', e: invalid };
    // Below a refused directory or link, nothing is made: not even a directory of the same name.
    for (let dir = path.posix.dirname(entry.n); dir !== '.'; dir = path.posix.dirname(dir)) {
      if (refused.has(dir)) return { a: 'r', e: `${dir} was refused` };
    }
    if (entry.t === 'd') return planDirectory(entry);
    const dir = path.posix.dirname(entry.n) === '.' ? '' : path.posix.dirname(entry.n);
    const problem = await ensureDir(dir);
    if (problem !== null) return { a: 'r', e: problem };
    const target = path.join(root, entry.n);
    // One listing per directory tells which names exist: a fresh copy needs no stat per file.
    const existing = (await listing(dir)).has(path.posix.basename(entry.n)) ? await lstatOrNull(target) : null;
    return entry.t === 'l' ? planLink(entry, dir, target, existing) : planFile(index, entry, dir, target, existing);
  }

  async function onEntries(batch: unknown): Promise<void> {
    if (!Array.isArray(batch)) throw new SyncProtocolError('entries must be an array');
    if (listed + batch.length > MAX_ENTRIES) throw new SyncProtocolError(`more than ${MAX_ENTRIES} entries`);
    diskFree = undefined;
    const first = listed;
    listed += batch.length;
    const decisions: Decision[] = new Array<Decision>(batch.length);
    // Directories and links first and in order (what is below them depends on their verdict);
    // then the files, many at once.
    const decide = async (k: number): Promise<void> => {
      const entry = batch[k] as Entry;
      try {
        decisions[k] = await plan(first + k, entry);
      } catch (err) {
        decisions[k] = { a: 'r', e: `cannot store it: ${(err as Error).message}` };
      }
      const decision = decisions[k];
      if (decision.a === 'r') {
        fail(safeEntry(entry), decision.e);
        if (typeof entry?.n === 'string' && entry.t !== 'f') refused.add(entry.n);
      }
    };
    const isFile = (k: number): boolean => (batch[k] as Entry | null)?.t === 'f';
    for (let k = 0; k < batch.length; k++) if (!isFile(k)) await decide(k);
    const rest = [...batch.keys()].filter(isFile);
    for (let start = 0; start < rest.length; start += 64) await Promise.all(rest.slice(start, start + 64).map(decide));
    await send(jsonMessage(Kind.PLAN, decisions));
  }

  async function onFileStart(payload: Buffer): Promise<void> {
    if (payload.length !== 12 || current !== null) throw new SyncProtocolError('unexpected file start');
    const index = payload.readUInt32BE(0);
    const offset = payload.readDoubleBE(4);
    const want = wanted.get(index);
    if (!want || (offset !== 0 && offset !== want.offset)) throw new SyncProtocolError(`file ${index} was not asked for from ${offset}`);
    progress ??= startProgress();
    const resume = offset > 0 && want.prefix !== null;
    const small = !resume && (want.entry.s ?? 0) <= SMALL_FILE_BYTES;
    const handle = small ? null : await open(want.partial, resume ? 'r+' : 'w', 0o600);
    current = {
      index,
      wanted: want,
      handle,
      hash: resume ? want.prefix! : createHash('sha256'),
      position: resume ? offset : 0,
      received: 0,
      expected: (want.entry.s ?? 0) - offset,
      pieces: [],
      pieceBytes: 0,
      writes: [],
      writeError: null,
      view: progress?.begin(escapeName(want.entry.n), (want.entry.s ?? 0) - offset),
    };
  }

  /** Issues a write of what is buffered; waits only while too many are in flight. */
  async function flush(file: Current): Promise<void> {
    if (file.pieceBytes === 0 || file.handle === null) return;
    const write = file.handle.writev(file.pieces, file.position).then(
      () => {},
      (err: Error) => {
        file.writeError ??= err;
      },
    );
    file.position += file.pieceBytes;
    file.pieces = [];
    file.pieceBytes = 0;
    file.writes.push(write);
    if (file.writes.length > WRITES_IN_FLIGHT) await file.writes.shift();
  }

  /** Everything buffered written, or the first write error thrown. */
  async function flushAll(file: Current): Promise<void> {
    await flush(file);
    await Promise.all(file.writes.splice(0));
    if (file.writeError) throw file.writeError;
  }

  async function onData(data: Buffer): Promise<void> {
    const file = current;
    if (file === null) throw new SyncProtocolError('data outside a file');
    // Never more than asked for: a small file is held in memory until its end.
    if (file.received + data.length > file.expected) throw new SyncProtocolError('more data than the file announced');
    file.hash.update(data);
    file.pieces.push(data);
    file.pieceBytes += data.length;
    file.received += data.length;
    outcome.wireBytes += data.length;
    file.view?.update(file.received);
    if (file.pieceBytes >= FLUSH_BYTES && file.handle !== null) await flush(file);
  }

  async function onFileEnd(payload: Buffer): Promise<void> {
    const file = current;
    if (file === null || payload.length !== 37 || payload.readUInt32BE(0) !== file.index)
      throw new SyncProtocolError('unexpected file end');
    current = null;
    const cut = (payload.readUInt8(4) & 1) !== 0;
    const { wanted: want } = file;
    const size = want.entry.s ?? 0;
    if (file.handle === null) {
      if (cut) return finishFailed(file, 'interrupted', false);
      if (file.pieceBytes !== size)
        return finishFailed(file, `size changed while it was sent (${file.pieceBytes} of ${size} bytes)`, false);
      if (!file.hash.digest().equals(payload.subarray(5))) return finishFailed(file, 'SHA-256 mismatch', false);
      return placeSmall(file);
    }
    const handle = file.handle;
    try {
      await flushAll(file);
    } catch (err) {
      await handle.close().catch(() => {});
      return finishFailed(file, `cannot write it: ${(err as Error).message}`, false);
    }
    if (cut) {
      await handle.close().catch(() => {});
      // What arrived stays as a partial for the next run, if it is worth resuming.
      return finishFailed(file, 'interrupted', file.position >= RESUME_MIN_BYTES);
    }
    if (file.position !== size) {
      await handle.close().catch(() => {});
      return finishFailed(file, `size changed while it was sent (${file.position} of ${size} bytes)`, false);
    }
    if (!file.hash.digest().equals(payload.subarray(5))) {
      await handle.close().catch(() => {});
      return finishFailed(file, 'SHA-256 mismatch', false);
    }
    const job = place(file).finally(() => finishing.delete(job));
    finishing.add(job);
    if (finishing.size >= FINISHING) await Promise.race(finishing);
  }

  /** A small file, complete and verified: written, given its mode and time, and placed, in one go. */
  async function placeSmall(file: Current): Promise<void> {
    const { wanted: want } = file;
    let fd = -1;
    try {
      fd = openSync(want.partial, 'w', 0o600);
      writevSync(fd, file.pieces);
      fchmodSync(fd, want.entry.p);
      futimesSync(fd, want.entry.m / 1000, want.entry.m / 1000);
      closeSync(fd);
      fd = -1;
      renameSync(want.partial, want.target);
    } catch (err) {
      if (fd !== -1) closeSync(fd);
      return placeFailed(file, err as Error);
    }
    return placed(file);
  }

  async function placed(file: Current): Promise<void> {
    outcome.files++;
    outcome.bytes += file.wanted.entry.s ?? 0;
    file.view?.done();
    await send(done(file.index));
  }

  async function placeFailed(file: Current, err: Error): Promise<void> {
    await unlink(file.wanted.partial).catch(() => {});
    outcome.failures.push({ name: escapeName(file.wanted.entry.n), reason: `cannot store it: ${err.message}` });
    file.view?.fail(err.message);
    await send(done(file.index, `cannot store it: ${err.message}`));
  }

  /** Mode and time first, so the file is never visible with looser permissions, then into place. */
  async function place(file: Current): Promise<void> {
    const { wanted: want } = file;
    const handle = file.handle!;
    try {
      await handle.chmod(want.entry.p);
      await handle.utimes(want.entry.m / 1000, want.entry.m / 1000);
      await handle.close();
      // The plan checked the target; only this user could have put a file there since
      // (serve refuses directories others can write to), and rename is one call, not two.
      await rename(want.partial, want.target);
    } catch (err) {
      await handle.close().catch(() => {});
      return placeFailed(file, err as Error);
    }
    return placed(file);
  }

  async function finishFailed(file: Current, reason: string, keepPartial: boolean): Promise<void> {
    if (!keepPartial) await unlink(file.wanted.partial).catch(() => {});
    file.view?.fail(reason);
    if (reason !== 'interrupted') outcome.failures.push({ name: escapeName(file.wanted.entry.n), reason });
    await send(done(file.index, reason));
  }

  function startProgress(): Progress | undefined {
    if (!options.progress) return undefined;
    let bytes = 0;
    for (const want of wanted.values()) bytes += (want.entry.s ?? 0) - want.offset;
    return options.progress(bytes, wanted.size);
  }

  async function onFinish(payload: Buffer): Promise<void> {
    if ((payload.readUInt8(0) & 1) !== 0) outcome.interrupted = 'the sender was interrupted';
    await Promise.all(finishing);
    // Directories last, deepest first: placing their files changed their times.
    for (const { target, entry } of dirTimes.reverse()) {
      await chmod(target, entry.p & ~0o022).catch(() => {});
      await utimes(target, entry.m / 1000, entry.m / 1000).catch(() => {});
    }
    finished = true;
  }

  try {
    for await (const message of readMessages(stream)) {
      if (finished) throw new SyncProtocolError('a message after FINISH');
      switch (message.kind) {
        case Kind.ENTRIES:
          await onEntries(parseJson(message.payload));
          break;
        case Kind.ENTRIES_END:
          break;
        case Kind.FILE:
          await onFileStart(message.payload);
          break;
        case Kind.DATA:
          await onData(message.data);
          break;
        case Kind.FILE_END:
          await onFileEnd(message.payload);
          break;
        case Kind.FINISH:
          await onFinish(message.payload);
          stream.end();
          break;
        default:
          throw new SyncProtocolError(`unexpected message kind ${message.kind}`);
      }
    }
    if (!finished) outcome.interrupted ??= 'the sender stopped before the end';
  } catch (err) {
    outcome.interrupted ??= err instanceof SyncProtocolError ? `protocol error: ${err.message}` : (err as Error).message;
    stream.destroy();
  } finally {
    const file = current as Current | null;
    if (file !== null) {
      // Cut off in the middle of a file: keep what arrived, for the next run.
      await flushAll(file).catch(() => {});
      await file.handle?.close().catch(() => {});
      if (file.position < RESUME_MIN_BYTES) await unlink(file.wanted.partial).catch(() => {});
      file.view?.fail('interrupted');
    }
    await Promise.allSettled(finishing);
    progress?.stop();
  }
  return outcome;
}

/** Why an entry from the sender is malformed or unsafe, or null. */
function checkEntry(entry: unknown): string | null {
  if (typeof entry !== 'object' || entry === null) return 'malformed entry';
  const { n, t, m, p } = entry as Partial<Entry>;
  const nameProblem = checkName(n);
  if (nameProblem !== null) return nameProblem;
  if (t !== 'f' && t !== 'd' && t !== 'l') return 'unknown entry type';
  if (typeof m !== 'number' || !Number.isFinite(m)) return 'modification time missing';
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 0o777) return 'mode missing or invalid';
  if (partialOf(path.posix.basename(n!)) !== null) return 'the name of a partial file';
  return null;
}

/** The entry with a name fit for a log line (the caller escapes it further). */
function safeEntry(entry: Entry): Entry {
  return typeof entry?.n === 'string' ? entry : { ...entry, n: String((entry as { n?: unknown })?.n) };
}

async function lstatOrNull(file: string): Promise<Stats | null> {
  try {
    return await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
