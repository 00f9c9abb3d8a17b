/**
 * What a sender lists: files, directories (empty ones too) and symbolic links under
 * relative POSIX names. A directory argument is sent under its own name, as `scp -r` and
 * `rsync -a dir` do; below the arguments nothing is followed: links travel as links.
 */
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import * as path from 'node:path';
import type { Failure } from '../summary/format';
import type { Entry } from './wire';

/** An entry with where it is here. */
export interface SourceEntry extends Entry {
  path: string;
}

export interface Listed {
  entries: SourceEntry[];
  /** Arguments or entries that cannot be read: they count as failures. */
  problems: Failure[];
  /** Entries deliberately not sent (sockets, devices, FIFOs). */
  skipped: Failure[];
}

/** Stats taken at once within one directory: the thread pool has several threads. */
const PARALLEL_STATS = 32;

/**
 * Lists `sources`: each `{ path, name }` is a file or directory here and the name it gets
 * (a directory's contents get `name/...`; an empty name lists a directory's contents at the top).
 */
export async function listEntries(sources: { path: string; name: string }[]): Promise<Listed> {
  const listed: Listed = { entries: [], problems: [], skipped: [] };
  for (const source of sources) {
    let info: Stats;
    try {
      info = await stat(source.path); // an argument that is a link is followed, as scp does
    } catch (err) {
      listed.problems.push({ name: source.name || source.path, reason: (err as Error).message });
      continue;
    }
    if (info.isFile()) listed.entries.push(fileEntry(source.path, source.name, info));
    else if (info.isDirectory()) {
      if (source.name !== '') listed.entries.push(dirEntry(source.path, source.name, info));
      await walk(source.path, source.name, listed);
    } else listed.problems.push({ name: source.name || source.path, reason: 'not a regular file or directory' });
  }
  return listed;
}

async function walk(dir: string, prefix: string, listed: Listed): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    listed.problems.push({ name: prefix || dir, reason: (err as Error).message });
    return;
  }
  const stats: (Stats | Error)[] = [];
  for (let start = 0; start < names.length; start += PARALLEL_STATS) {
    const batch = names.slice(start, start + PARALLEL_STATS);
    stats.push(...(await Promise.all(batch.map((name) => lstat(path.join(dir, name)).catch((err: Error) => err)))));
  }
  const subdirs: [string, string][] = [];
  for (let i = 0; i < names.length; i++) {
    const full = path.join(dir, names[i]);
    const name = prefix ? `${prefix}/${names[i]}` : names[i];
    const info = stats[i];
    if (info instanceof Error) listed.problems.push({ name, reason: info.message });
    else if (info.isFile()) listed.entries.push(fileEntry(full, name, info));
    else if (info.isDirectory()) {
      listed.entries.push(dirEntry(full, name, info));
      subdirs.push([full, name]);
    } else if (info.isSymbolicLink()) {
      try {
        listed.entries.push({ path: full, n: name, t: 'l', l: await readlink(full), m: info.mtimeMs, p: info.mode & 0o777 });
      } catch (err) {
        listed.problems.push({ name, reason: (err as Error).message });
      }
    } else listed.skipped.push({ name, reason: 'not a regular file, directory or link' });
  }
  for (const [full, name] of subdirs) await walk(full, name, listed);
}

function fileEntry(full: string, name: string, info: Stats): SourceEntry {
  return { path: full, n: name, t: 'f', s: info.size, m: info.mtimeMs, p: info.mode & 0o777 };
}

function dirEntry(full: string, name: string, info: Stats): SourceEntry {
  return { path: full, n: name, t: 'd', m: info.mtimeMs, p: info.mode & 0o777 };
}
