/**
 * CPU time, to show whether a row was bound by the machine's cores: the whole machine's busy
 * time (os.cpus(), every platform) and one process's (Linux /proc, null elsewhere).
 */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

/** Busy and total milliseconds summed over every core since boot. */
export interface MachineCpu {
  busyMs: number;
  totalMs: number;
  cores: number;
}

/** Linux's USER_HZ: /proc counts CPU time in these ticks on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

export function machineCpu(): MachineCpu {
  let busyMs = 0;
  let totalMs = 0;
  const cpus = os.cpus();
  for (const { times } of cpus) {
    const busy = times.user + times.nice + times.sys + times.irq;
    busyMs += busy;
    totalMs += busy + times.idle;
  }
  return { busyMs, totalMs, cores: cpus.length };
}

/** Cores kept busy on average between two readings, 0..cores. */
export function busyCores(before: MachineCpu, after: MachineCpu): number {
  const total = after.totalMs - before.totalMs;
  return total > 0 ? ((after.busyMs - before.busyMs) / total) * after.cores : 0;
}

/** CPU seconds (user + system) a process has used, or null where /proc is not there. */
export function processCpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may hold spaces; the fields after it are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
