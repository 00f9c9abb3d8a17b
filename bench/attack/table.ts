/**
 * One row of results per attack (and one for the mixed run), as run.ts prints them: the
 * server's memory, whether it survived, what the good client saw, and what the server did.
 */
import type { GoodClientReport } from './good-client';
import type { AttackReport } from './report';
import type { Sample, TargetGone } from './target-process';

/** Everything measured in one attack run; the JSON output is a list of these. */
export interface Row {
  attack: string;
  target: string;
  durationMs: number;
  rssMiB: { start: number | null; peak: number | null; end: number | null };
  /** Largest heapUsed of the server during the run (echo target only). */
  heapPeakMiB: number | null;
  /** heapUsed after the cool-down and a full collection: what the attack left behind. */
  heapEndMiB: number | null;
  fdsPeak: number | null;
  /** Server CPU time over the attack, in percent of one core. */
  cpuPercent: number | null;
  /**
   * The attacking process's event-loop delay during the attack, milliseconds: when it is
   * high, slow handshakes and late answers may be the attacker's doing, not the server's.
   */
  attackerLoopDelayMs: { p50: number; p99: number; max: number } | null;
  /** The server's fate, in words ("yes", "killed at 17.5 s: RSS cap exceeded (...)", "died at 55.6 s: exit 134 (SIGABRT)"). */
  alive: string;
  gone: (TargetGone & { afterMs: number }) | null;
  goodClientReady: boolean;
  goodClient: GoodClientReport | null;
  /** What the server did, in words. */
  reaction: string;
  /** Harness trouble worth showing in the table (a hard timeout). */
  harness: string[];
  reports: AttackReport[];
  samples: Sample[];
}

const COLUMNS: [title: string, width: number][] = [
  ['attack', 19],
  ['RSS MiB start/peak/end', 23],
  ['heap pk', 8],
  ['fds pk', 7],
  ['CPU%', 5],
  ['server alive?', 50],
  ['ping ms med/p99/max', 22],
  ['corrupt B', 10],
  ['fails/reconn', 13],
  ['what the server did', 0],
];

/** The header line and a rule under it. */
export function header(): string {
  const line = COLUMNS.map(([title, width]) => title.padEnd(width)).join(' | ');
  return `${line}\n${'-'.repeat(line.length + 40)}`;
}

/** The row as one line under {@link header}. */
export function formatRow(row: Row): string {
  const { rssMiB, goodClient: good } = row;
  const ping = good?.pings.rttMs;
  const cells = [
    row.attack,
    `${num(rssMiB.start)} / ${num(rssMiB.peak)} / ${num(rssMiB.end)}`,
    num(row.heapPeakMiB),
    num(row.fdsPeak),
    num(row.cpuPercent),
    row.alive,
    ping
      ? `${fixed(ping.median)} / ${fixed(ping.p99)} / ${fixed(ping.max)}`
      : good
        ? 'no answer'
        : row.goodClientReady
          ? '-'
          : 'never connected',
    good ? num(good.echo.corruptedBytes) : '-',
    good ? `${num(good.echo.failed)} / ${num(good.reconnects)}` : '-',
    [row.reaction, ...row.harness.map((text) => `[harness: ${text}]`)].join(' '),
  ];
  return cells.map((cell, i) => cell.padEnd(COLUMNS[i][1])).join(' | ');
}

/** What each column means, printed under the table. */
export const LEGEND = [
  'RSS: the server process, at the start of the attack, its peak (VmHWM included), and 5 s after the attack stopped.',
  'heap pk: heapUsed peak (echo target only). fds pk: open file descriptors. CPU%: server CPU over the attack, of one core.',
  'ping: the good client, one ping at a time every 20 ms; an unanswered one counts with its age at the end.',
  'corrupt B: echoed bytes that came back wrong. fails/reconn: echo streams that failed / reconnects of the good client.',
];

function num(value: number | null | undefined): string {
  return value === null || value === undefined ? '-' : Math.round(value).toLocaleString('en-US');
}

function fixed(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
}
