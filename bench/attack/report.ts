/**
 * What one attack sent and how the server answered: a {@link Tally} that the attack's
 * connections count into as they go, turned into an {@link AttackReport} at the end, and
 * the one-line summary of the server's reaction that the results table prints.
 */
import { WireErrorCode } from '../../src/protocol/constants';
import { percentiles } from './timing';

/**
 * Codes protocol version 2 adds (PROTOCOL.md, section 11), named here so the harness can
 * name them while it runs against a version-1 build, whose enum does not have them yet.
 */
const LATER_CODES: Record<number, string> = { 14: 'ENHANCE_YOUR_CALM', 15: 'OVERLOADED' };

/** The name of a wire error code, or `code N` for one nobody knows. */
export function codeName(code: number): string {
  return WireErrorCode[code] ?? LATER_CODES[code] ?? `code ${code}`;
}

/** A GO_AWAY code and reason the server sent, with how often and when first. */
export interface GoAwaySeen {
  code: number;
  name: string;
  reason: string;
  count: number;
  /** Milliseconds from the start of the attack to the first one. */
  firstAfterMs: number;
}

/** Everything one attack reports. Counts are totals over all its connections. */
export interface AttackReport {
  attack: string;
  /** How long the attack ran, milliseconds. */
  ranMs: number;
  sent: {
    /** Connections that completed the TCP connect. */
    connections: number;
    /** Connections opened again after the server closed one. */
    reconnects: number;
    /** Connects that failed (refused, reset, timed out) or never got the server's HELLO. */
    connectFailures: number;
    streams: number;
    frames: number;
    /** Bytes on the wire, headers included. */
    bytes: number;
    /** DATA payload bytes. */
    dataBytes: number;
  };
  received: {
    frames: number;
    /** Bytes on the wire from the server. */
    bytes: number;
    dataBytes: number;
    accepted: number;
    pingsAnswered: number;
  };
  server: {
    goAways: GoAwaySeen[];
    /** REFUSE frames by code name. */
    refused: Record<string, number>;
    /** RESET frames the server sent, by code name. */
    resets: Record<string, number>;
    /** Connections the server closed (we had not). */
    closedByServer: number;
    /** Of those, closed without a GO_AWAY first. */
    closedWithoutGoAway: number;
    /** Lifetimes of the connections the server closed, from TCP connect, milliseconds. */
    lifetimeMs: { median: number; p99: number; max: number } | null;
    /** Milliseconds from the start of the attack to the first close by the server. */
    firstCloseAfterMs: number | null;
    /** Connections still open when the attack stopped. */
    openAtEnd: number;
  };
  /** Attack-specific figures (rates, waves, phases). */
  extra: Record<string, number>;
  /** What went wrong in the harness itself, or anything a reader should know. */
  notes: string[];
}

/** The counters an attack's connections add to while it runs. */
export class Tally {
  readonly startedAt = performance.now();
  connections = 0;
  reconnects = 0;
  connectFailures = 0;
  streams = 0;
  framesSent = 0;
  bytesSent = 0;
  dataBytesSent = 0;
  framesReceived = 0;
  bytesReceived = 0;
  dataBytesReceived = 0;
  accepted = 0;
  pingsAnswered = 0;
  closedByServer = 0;
  closedWithoutGoAway = 0;
  /** Connections still open when the attack stopped (each attack counts its own before it cuts them). */
  openAtEnd = 0;
  firstCloseAt: number | null = null;
  readonly lifetimes: number[] = [];
  readonly goAways = new Map<string, GoAwaySeen>();
  readonly refused = new Map<string, number>();
  readonly resets = new Map<string, number>();
  readonly extra: Record<string, number> = {};
  readonly notes: string[] = [];

  constructor(readonly attack: string) {}

  /** Milliseconds since the attack started. */
  elapsed(): number {
    return performance.now() - this.startedAt;
  }

  goAway(code: number, reason: string): void {
    const key = `${code}\n${reason}`;
    const seen = this.goAways.get(key);
    if (seen) seen.count++;
    else this.goAways.set(key, { code, name: codeName(code), reason, count: 1, firstAfterMs: Math.round(this.elapsed()) });
  }

  refusal(code: number): void {
    bump(this.refused, codeName(code));
  }

  reset(code: number): void {
    bump(this.resets, codeName(code));
  }

  /** A connection the server closed, `lifetimeMs` after it connected. */
  closed(lifetimeMs: number, sawGoAway: boolean): void {
    this.closedByServer++;
    if (!sawGoAway) this.closedWithoutGoAway++;
    this.firstCloseAt ??= this.elapsed();
    // Bounded: half-hellos closes thousands; the distribution needs no more.
    if (this.lifetimes.length < 100_000) this.lifetimes.push(lifetimeMs);
  }

  /** Adds `value` to an attack-specific figure. */
  add(key: string, value: number): void {
    this.extra[key] = (this.extra[key] ?? 0) + value;
  }

  note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text);
  }

  report(): AttackReport {
    return {
      attack: this.attack,
      ranMs: Math.round(this.elapsed()),
      sent: {
        connections: this.connections,
        reconnects: this.reconnects,
        connectFailures: this.connectFailures,
        streams: this.streams,
        frames: this.framesSent,
        bytes: this.bytesSent,
        dataBytes: this.dataBytesSent,
      },
      received: {
        frames: this.framesReceived,
        bytes: this.bytesReceived,
        dataBytes: this.dataBytesReceived,
        accepted: this.accepted,
        pingsAnswered: this.pingsAnswered,
      },
      server: {
        goAways: [...this.goAways.values()],
        refused: Object.fromEntries(this.refused),
        resets: Object.fromEntries(this.resets),
        closedByServer: this.closedByServer,
        closedWithoutGoAway: this.closedWithoutGoAway,
        lifetimeMs: roundAll(percentiles(this.lifetimes)),
        firstCloseAfterMs: this.firstCloseAt === null ? null : Math.round(this.firstCloseAt),
        openAtEnd: this.openAtEnd,
      },
      extra: Object.fromEntries(Object.entries(this.extra).map(([key, value]) => [key, Math.round(value)])),
      notes: this.notes,
    };
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function roundAll<T extends Record<string, number>>(values: T | null): T | null {
  if (values === null) return null;
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, Math.round(value)])) as T;
}

const count = (n: number): string => n.toLocaleString('en-US');
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * The server's reaction in a few words, for the table: GO_AWAYs, refusals, resets and
 * closes, most telling first; "nothing" when it let the attack run its course. When the
 * server died (`died`), the connections it dropped by dying are not a reaction.
 */
export function describeServer(report: AttackReport, died = false): string {
  const parts: string[] = [];
  for (const seen of [...report.server.goAways].sort((a, b) => b.count - a.count).slice(0, 2)) {
    parts.push(`GO_AWAY ${seen.name}${seen.count > 1 ? ` ×${count(seen.count)}` : ''} after ${seconds(seen.firstAfterMs)}`);
  }
  for (const [name, n] of Object.entries(report.server.refused)) parts.push(`refused ${count(n)} opens (${name})`);
  for (const [name, n] of Object.entries(report.server.resets)) parts.push(`reset ${count(n)} streams (${name})`);
  if (report.sent.connectFailures > 0) parts.push(`${count(report.sent.connectFailures)} connects failed or went unanswered`);
  const { closedWithoutGoAway, lifetimeMs } = report.server;
  if (closedWithoutGoAway > 0 && lifetimeMs && !died) {
    parts.push(`closed ${conns(closedWithoutGoAway)} without GO_AWAY (median ${seconds(lifetimeMs.median)} after connect)`);
  }
  const summary = parts.length > 0 ? parts.join('; ') : 'nothing';
  const open = report.server.openAtEnd;
  return open > 0 ? `${summary} (${conns(open)} still open at the end)` : summary;
}

function conns(n: number): string {
  return `${count(n)} conn${n === 1 ? '' : 's'}`;
}

/** Several attacks' reports as one (the mixed run), for the table's summary. */
export function mergeReports(attack: string, reports: AttackReport[]): AttackReport {
  const merged = new Tally(attack).report();
  merged.ranMs = Math.max(0, ...reports.map((r) => r.ranMs));
  const goAways = new Map<string, GoAwaySeen>();
  let lifetimes: { median: number; p99: number; max: number } | null = null;
  let mostCloses = 0;
  for (const r of reports) {
    for (const key of Object.keys(merged.sent) as (keyof AttackReport['sent'])[]) merged.sent[key] += r.sent[key];
    for (const key of Object.keys(merged.received) as (keyof AttackReport['received'])[]) merged.received[key] += r.received[key];
    for (const [name, n] of Object.entries(r.server.refused)) merged.server.refused[name] = (merged.server.refused[name] ?? 0) + n;
    for (const [name, n] of Object.entries(r.server.resets)) merged.server.resets[name] = (merged.server.resets[name] ?? 0) + n;
    for (const seen of r.server.goAways) {
      const key = `${seen.code}\n${seen.reason}`;
      const known = goAways.get(key);
      if (!known) goAways.set(key, { ...seen });
      else {
        known.count += seen.count;
        known.firstAfterMs = Math.min(known.firstAfterMs, seen.firstAfterMs);
      }
    }
    merged.server.closedByServer += r.server.closedByServer;
    merged.server.closedWithoutGoAway += r.server.closedWithoutGoAway;
    merged.server.openAtEnd += r.server.openAtEnd;
    if (r.server.firstCloseAfterMs !== null) {
      merged.server.firstCloseAfterMs = Math.min(merged.server.firstCloseAfterMs ?? Infinity, r.server.firstCloseAfterMs);
    }
    // The attack with the most closes speaks for the distribution (medians do not add up).
    if (r.server.lifetimeMs && r.server.closedByServer > mostCloses) {
      lifetimes = r.server.lifetimeMs;
      mostCloses = r.server.closedByServer;
    }
    merged.notes.push(...r.notes.map((note) => `${r.attack}: ${note}`));
  }
  merged.server.goAways = [...goAways.values()];
  merged.server.lifetimeMs = lifetimes;
  return merged;
}
