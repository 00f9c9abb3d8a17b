/**
 * CPU time, to show whether a row was bound by the machine's cores: the whole machine's busy
 * time (/proc/stat on Linux, os.cpus() elsewhere) and one process's (Linux /proc, null elsewhere).
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
  return procStat() ?? fromCpus();
}

/**
 * /proc/stat's first line. os.cpus() leaves out softirq time, where Linux does most of the
 * loopback's TCP work, so it would miss a large part of what a forwarded request costs.
 * Steal (time the hypervisor gave to others) is neither busy nor idle here: it is left out.
 */
function procStat(): MachineCpu | null {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return null;
  }
  const fields = text.slice(0, text.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq] = fields;
  if (fields.length < 7 || fields.some((n) => !Number.isFinite(n))) return null;
  const busy = user + nice + system + irq + softirq;
  const ms = 1000 / TICKS_PER_SECOND;
  return { busyMs: busy * ms, totalMs: (busy + idle + iowait) * ms, cores: os.cpus().length };
}

function fromCpus(): MachineCpu {
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

/** A process's CPU time (user + system) and minor page faults so far. */
export interface ProcessUsage {
  cpuMs: number;
  minorFaults: number;
}

/**
 * From /proc/<pid>/stat: fields 10 (minflt), 14 (utime) and 15 (stime); null where /proc is
 * not there. Page faults explain much of the noise between repetitions: a fresh process whose
 * allocator keeps handing memory back to the kernel pays a fault for every page it reuses.
 */
export function processUsage(pid: number | undefined): ProcessUsage | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may hold spaces; the fields after it are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND, minorFaults: Number(fields[7]) };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used, or null where /proc is not there. */
export function processCpuSeconds(pid: number | undefined): number | null {
  const usage = processUsage(pid);
  return usage === null ? null : usage.cpuMs / 1000;
}
