/**
 * Partial files: a transfer that stops half way keeps what arrived in `.NAME.tsmux-SIZE-MTIME.part`
 * beside the target, named by the source file's size and modification time. The next run of
 * the same file finds it, the sender checks the prefix's SHA-256 against its own file, and the
 * data continues from the partial's end. A different size or time means a different file: its
 * old partials are removed.
 */
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Smaller files start again rather than resume. */
export const RESUME_MIN_BYTES = 1024 * 1024;

const PARTIAL = /^\.(.+)\.tsmux-(\d+)-(\d+)\.part$/;

export function partialName(base: string, size: number, mtimeMs: number): string {
  return `.${base}.tsmux-${size}-${Math.round(mtimeMs)}.part`;
}

/** The base name a partial belongs to, or null if `name` is not a partial. */
export function partialOf(name: string): string | null {
  return PARTIAL.exec(name)?.[1] ?? null;
}

/** SHA-256 state after the first `length` bytes of `file` (to go on hashing what follows). */
export async function hashPrefix(file: string, length: number): Promise<Hash> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    let position = 0;
    while (position < length) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - position), position);
      if (bytesRead === 0) throw new Error('the partial file is shorter than it was');
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return hash;
}
