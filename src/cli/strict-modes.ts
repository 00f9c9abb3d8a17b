/**
 * As sshd's StrictModes: a receiving directory that another local user can write to, or
 * rename, lets that user swap a checked directory for a symbolic link between the check and
 * the open, and so place received files anywhere. Node has no `openat`, so instead of making
 * every path operation airtight, `tsmux serve` refuses to start on such a directory: --dir,
 * every directory inside it, and every directory above it must belong to this user (or root)
 * and be writable by no one else (a directory above may be if it is sticky, as /tmp is).
 * The directories serve creates are never group- or world-writable.
 */
import { lstat, readdir } from 'node:fs/promises';
import * as path from 'node:path';

/** Why `root` (a realpath) is unsafe to receive into, or null. Walks the whole tree below it. */
export async function strictModesProblem(root: string): Promise<string | null> {
  const uid = process.getuid?.() ?? -1;
  if (uid === -1) return null; // Windows: no POSIX owners or modes to check
  const owned = (owner: number): boolean => owner === uid || owner === 0;
  for (let dir = path.dirname(root); ; dir = path.dirname(dir)) {
    const info = await lstat(dir);
    const sticky = (info.mode & 0o1000) !== 0;
    if (!owned(info.uid)) return `${dir} belongs to another user (uid ${info.uid})`;
    if ((info.mode & 0o022) !== 0 && !sticky) return `${dir} is writable by other users (mode ${(info.mode & 0o7777).toString(8)})`;
    if (dir === path.dirname(dir)) break;
  }
  const queue = [root];
  while (queue.length > 0) {
    const dir = queue.pop()!;
    const info = await lstat(dir);
    if (!owned(info.uid)) return `${dir} belongs to another user (uid ${info.uid})`;
    if ((info.mode & 0o022) !== 0) return `${dir} is writable by other users (mode ${(info.mode & 0o7777).toString(8)})`;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) queue.push(path.join(dir, entry.name));
    }
  }
  return null;
}
