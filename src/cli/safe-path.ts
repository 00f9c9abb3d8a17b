/**
 * File names from the peer are untrusted. `checkName` decides, without touching the disk,
 * whether a name is an acceptable relative POSIX path; `resolveTarget` then walks it inside
 * the receiving directory, creating missing directories one at a time and checking after
 * each step (with realpath) that no symbolic link led outside. `checkTarget` walks the same
 * way without creating anything, to judge a stream before it is accepted.
 */
import { lstat, mkdir, realpath } from 'node:fs/promises';
import * as path from 'node:path';

/** Longest accepted name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;
/**
 * Longest accepted path segment, in UTF-8 bytes: below the usual 255-byte file-name limit
 * with room for the temporary file's `.<name>.<12 hex>.part`.
 */
export const MAX_SEGMENT_BYTES = 200;

/** A name the receiver refuses; the message is the reason the sender sees. */
export class UnsafePathError extends Error {
  override name = 'UnsafePathError';
}

/** Why `name` cannot be a received file's name, or `null` if it can. Pure. */
export function checkName(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'missing file name';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `file name longer than ${MAX_NAME_BYTES} bytes`;
  if (name.includes('\0')) return 'file name contains a NUL byte';
  if (name.includes('\\')) return 'file name contains a backslash';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) return 'file name contains control characters';
  if (name.startsWith('/') || path.win32.isAbsolute(name)) return 'absolute file names are not allowed';
  for (const segment of name.split('/')) {
    if (segment === '') return 'file name has an empty path segment';
    if (segment === '.' || segment === '..') return `file name has a "${segment}" segment`;
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return `a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  return null;
}

/** True if `candidate` is `root` or below it (both absolute and already resolved). */
export function isInside(root: string, candidate: string): boolean {
  if (candidate === root) return true;
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  return candidate.startsWith(prefix);
}

export interface ResolveOptions {
  /** Accept a name whose file exists already (it will be replaced). */
  overwrite: boolean;
}

/**
 * The absolute path where the file `name` is to be stored under `root` (which must be a
 * realpath). Creates missing parent directories. Throws {@link UnsafePathError} with the
 * reason if the name is not acceptable, leads outside `root`, or names an existing file
 * without `overwrite`.
 */
export function resolveTarget(root: string, name: unknown, options: ResolveOptions): Promise<string> {
  return walk(root, name, options, true);
}

/**
 * The same verdict as {@link resolveTarget}, without writing anything: the directories that
 * exist are checked as `resolveTarget` checks them, and a missing one ends the walk (everything
 * below it would be new, so no link or existing file can be there). For deciding whether to
 * accept a stream; call `resolveTarget` once the transfer starts.
 */
export function checkTarget(root: string, name: unknown, options: ResolveOptions): Promise<string> {
  return walk(root, name, options, false);
}

async function walk(root: string, name: unknown, options: ResolveOptions, create: boolean): Promise<string> {
  const reason = checkName(name);
  if (reason !== null) throw new UnsafePathError(reason);
  const segments = (name as string).split('/');
  const last = segments.pop()!;
  let current = root;
  for (let i = 0; i < segments.length; i++) {
    const next = path.join(current, segments[i]);
    if ((await lstatOrNull(next)) === null) {
      if (!create) return path.join(next, ...segments.slice(i + 1), last);
      try {
        await mkdir(next, { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    // A link is followed only if it stays inside root; realpath tells where it goes.
    const real = await realpath(next);
    if (!isInside(root, real)) throw new UnsafePathError(`${name as string} leads outside the receiving directory`);
    if (!(await lstat(real)).isDirectory())
      throw new UnsafePathError(`${segments.slice(0, i + 1).join('/')} is not a directory on the receiver`);
    current = real;
  }
  const target = path.join(current, last);
  if (!isInside(root, target) || target === root) throw new UnsafePathError(`${name as string} leads outside the receiving directory`);
  const existing = await lstatOrNull(target);
  if (existing !== null) {
    if (existing.isDirectory()) throw new UnsafePathError(`${name as string} is a directory on the receiver`);
    if (!options.overwrite) throw new UnsafePathError(`${name as string} already exists on the receiver`);
    if (existing.isSymbolicLink()) throw new UnsafePathError(`${name as string} is a symbolic link on the receiver`);
  }
  return target;
}

async function lstatOrNull(file: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
