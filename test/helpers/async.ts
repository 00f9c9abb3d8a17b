import type { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';

/** Rejects with a clear message if `promise` has not settled within `ms` milliseconds. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves with the arguments of the next `event` on `emitter`, within `ms`. Unlike
 * `events.once`, an `error` event does not reject it: tests check errors themselves.
 */
export function nextEvent(emitter: EventEmitter, event: string, ms = 5000): Promise<unknown[]> {
  let listener: ((...args: unknown[]) => void) | undefined;
  const promise = new Promise<unknown[]>((resolve) => {
    listener = (...args: unknown[]) => resolve(args);
    emitter.once(event, listener);
  });
  return withTimeout(promise, ms, `'${event}'`).finally(() => emitter.removeListener(event, listener!));
}

/** Polls `predicate` every few milliseconds until it holds; rejects after `ms`. */
export async function waitFor(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A log of which events an emitter fired, in order, with the first argument of each. */
export interface EventLog {
  readonly names: string[];
  readonly args: Map<string, unknown>;
}

/** Starts recording `events` on `emitter` (`error` listeners added here count as listeners). */
export function recordEvents(emitter: EventEmitter, events: string[]): EventLog {
  const log: EventLog = { names: [], args: new Map() };
  for (const event of events) {
    emitter.on(event, (arg: unknown) => {
      log.names.push(event);
      if (!log.args.has(event)) log.args.set(event, arg);
    });
  }
  return log;
}
