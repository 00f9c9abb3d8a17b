/**
 * What `tsmux send FILE|DIR...` sends: files as their base name, directories recursively
 * under their own name (as `scp -r`: sending `photos` gives `photos/a.jpg`, ...), names as
 * relative POSIX paths.
 */
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { Failure } from './summary/format';

export interface SourceFile {
  /** Where the file is here. */
  path: string;
  /** The name the receiver stores it under (relative, `/`-separated). */
  name: string;
  size: number;
}

export interface Collected {
  files: SourceFile[];
  /** Arguments or entries that cannot be read: they count as failed files. */
  problems: Failure[];
  /** Entries inside a directory that are deliberately not sent (links to directories, sockets, ...). */
  skipped: Failure[];
}

export async function collectFiles(args: string[]): Promise<Collected> {
  const collected: Collected = { files: [], problems: [], skipped: [] };
  for (const arg of args) {
    const full = path.resolve(arg);
    let info;
    try {
      info = await stat(full);
    } catch (err) {
      collected.problems.push({ name: arg, reason: (err as Error).message });
      continue;
    }
    const base = path.basename(full); // '' only for the file-system root
    if (info.isFile()) collected.files.push({ path: full, name: base, size: info.size });
    else if (info.isDirectory()) await walk(full, base, collected);
    else collected.problems.push({ name: arg, reason: 'not a regular file or directory' });
  }
  return collected;
}

async function walk(dir: string, prefix: string, collected: Collected): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    collected.problems.push({ name: prefix || dir, reason: (err as Error).message });
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    const name = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      await walk(full, name, collected);
      continue;
    }
    // Links to files are sent as the file they point to; links to directories are skipped
    // (they could loop), as are sockets, FIFOs and devices.
    let info;
    try {
      info = await stat(full);
    } catch (err) {
      collected.problems.push({ name, reason: (err as Error).message });
      continue;
    }
    if (info.isFile()) collected.files.push({ path: full, name, size: info.size });
    else if (info.isDirectory()) collected.skipped.push({ name, reason: 'symbolic link to a directory' });
    else collected.skipped.push({ name, reason: 'not a regular file' });
  }
}
