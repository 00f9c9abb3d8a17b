/**
 * The data the tools copy, made fresh in the temporary directory: a tree of many small files
 * and one large file. Names, sizes and layout come from a seeded generator, so every run copies
 * the same shape; the content is random, so no tool gains from compression or deduplication.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A few subdirectories, some nested, as a real project or photo folder has. */
const SUBDIRS = ['', 'docs', 'src', 'src/lib', 'src/lib/util', 'assets', 'assets/img', 'assets/img/thumbs'];

export interface Tree {
  /** The tree's root; the tools copy it under its own name (basename). */
  root: string;
  files: number;
  bytes: number;
}

/** `count` files of 1-64 KiB (uniform) under `root`, spread over {@link SUBDIRS}. */
export function makeTree(root: string, count: number, seed = 13): Tree {
  const next = mulberry32(seed);
  for (const dir of SUBDIRS) mkdirSync(path.join(root, dir), { recursive: true });
  const sizes = Array.from({ length: count }, () => KiB + Math.floor(next() * (63 * KiB + 1)));
  const bytes = sizes.reduce((sum, size) => sum + size, 0);
  // One random buffer for the whole tree: a randomBytes call per file costs more than the writes.
  const content = randomBytes(bytes);
  let offset = 0;
  sizes.forEach((size, i) => {
    const dir = SUBDIRS[Math.floor(next() * SUBDIRS.length)];
    const fd = openSync(path.join(root, dir, `f${String(i).padStart(5, '0')}.bin`), 'w');
    writeSync(fd, content, offset, size);
    closeSync(fd);
    offset += size;
  });
  return { root, files: count, bytes };
}

/**
 * A `size`-byte file made of one 64 MiB random block written again and again, with the first 8
 * bytes of every 4 KiB page overwritten by a running counter: fast to make (one randomBytes
 * call), yet no two pages are equal, so nothing compresses or deduplicates it.
 */
export function makeBigFile(file: string, size: number): void {
  const block = randomBytes(Math.min(64 * MiB, size));
  const page = 4 * KiB;
  const fd = openSync(file, 'w');
  try {
    let counter = 0n;
    for (let written = 0; written < size;) {
      const length = Math.min(block.length, size - written);
      for (let at = 0; at + 8 <= length; at += page) block.writeBigUInt64LE(counter++, at);
      // writeSync returns only once the kernel has the bytes, so the next stamping is safe.
      writeSync(fd, block, 0, length);
      written += length;
    }
  } finally {
    closeSync(fd);
  }
}

/** Number of regular files and their total size under `dir` (0, 0 when it does not exist). */
export function measureTree(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return { files, bytes };
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = measureTree(full);
      files += inner.files;
      bytes += inner.bytes;
    } else if (entry.isFile()) {
      files++;
      bytes += statSync(full).size;
    }
  }
  return { files, bytes };
}

/** A file (1, its size) or a directory (as {@link measureTree}); 0, 0 when it does not exist. */
export function measurePath(file: string): { files: number; bytes: number } {
  try {
    const stat = statSync(file);
    if (stat.isFile()) return { files: 1, bytes: stat.size };
    return stat.isDirectory() ? measureTree(file) : { files: 0, bytes: 0 };
  } catch {
    return { files: 0, bytes: 0 };
  }
}

/** Removes everything inside `dir` but keeps `dir` itself (a running server holds its path). */
export function emptyDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir)) rmSync(path.join(dir, name), { recursive: true, force: true });
}

/** SHA-256 of a file, hex. */
export async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A small, fast, seeded PRNG (mulberry32, public domain): floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
