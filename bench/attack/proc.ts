/**
 * What the kernel says about a process (Linux /proc): resident memory, its high-water mark,
 * CPU time and open file descriptors. Read from outside the process, so the figures keep
 * coming while a server is stuck in garbage collection and cannot answer over IPC, and they
 * work for a server that is not our code (`tsmux serve`).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** One reading of a process; a field is null when /proc could not tell (process gone, not Linux). */
export interface ProcReading {
  /** Resident set size (VmRSS), bytes. */
  rss: number | null;
  /** Peak resident set size since the process started (VmHWM), bytes. */
  rssPeak: number | null;
  /** User plus system CPU time so far, milliseconds. */
  cpuMs: number | null;
  /** Open file descriptors (sockets included). */
  fds: number | null;
}

/** Reads `pid`'s figures; every field is null once the process is gone. */
export function readProc(pid: number): ProcReading {
  return { ...readStatus(pid), cpuMs: readCpuMs(pid), fds: countFds(pid) };
}

function readStatus(pid: number): { rss: number | null; rssPeak: number | null } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: kib(status, 'VmRSS'), rssPeak: kib(status, 'VmHWM') };
  } catch {
    return { rss: null, rssPeak: null };
  }
}

function kib(status: string, field: string): number | null {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

/** Fields 14 (utime) and 15 (stime) of /proc/<pid>/stat, in clock ticks of 10 ms (USER_HZ on Linux). */
function readCpuMs(pid: number): number | null {
  try {
    // The command name (field 2) may contain spaces; everything after its ") " is plain.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

function countFds(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}
