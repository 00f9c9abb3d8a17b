/**
 * The messages of a `sync` stream (PROTOCOL.md, Appendix B): `[kind u8][length u32][payload]`.
 * Pure encoding and an incremental reader; the sender and the receiver hold the logic.
 */
import type { Readable } from 'node:stream';

export const enum Kind {
  /** Sender → receiver: a JSON array of entries (see {@link Entry}). */
  ENTRIES = 1,
  /** Sender → receiver: no more entries. */
  ENTRIES_END = 2,
  /** Receiver → sender: a JSON array of decisions, one per entry, in order (see {@link Decision}). */
  PLAN = 3,
  /** Sender → receiver: a file's data starts: u32 entry index, f64 offset. */
  FILE = 4,
  /** Sender → receiver: bytes of the current file. */
  DATA = 5,
  /** Sender → receiver: the current file ends: u32 index, u8 flags (1 = cut short), 32-byte SHA-256 of the whole file. */
  FILE_END = 6,
  /** Receiver → sender: an entry is in place (or failed): u32 index, then the UTF-8 reason if it failed. */
  DONE = 7,
  /** Sender → receiver: nothing more will be sent (u8 flags: 1 = the sender was interrupted). */
  FINISH = 8,
}

/** What the sender has: a file, a directory or a symbolic link, under a relative POSIX name. */
export interface Entry {
  /** Relative POSIX path. */
  n: string;
  /** `f` file, `d` directory, `l` symbolic link, `x` something the sender cannot send (reason in `e`). */
  t: 'f' | 'd' | 'l' | 'x';
  /** File size in bytes (files). */
  s?: number;
  /** Modification time, milliseconds since the epoch. */
  m: number;
  /** Permission bits (`mode & 0o777`). */
  p: number;
  /** The link's target (links). */
  l?: string;
  /** SHA-256 (hex) of the file, only when the sender compares by checksum. */
  h?: string;
  /** Why the sender cannot send it (`x`). */
  e?: string;
}

/**
 * The receiver's answer for one entry: `s` skip (already there, unchanged), `w` want the
 * file's data from offset `o` (a prefix it keeps has SHA-256 `h`), `k` kept without data
 * (a directory or link made), `r` refused with reason `e`.
 */
export type Decision = { a: 's' } | { a: 'k' } | { a: 'w'; o: number; h?: string } | { a: 'r'; e: string };

/** Largest JSON message accepted: a batch of entries or decisions. */
export const MAX_CONTROL_BYTES = 8 * 1024 * 1024;

const HEADER = 5;

/** One message: header and payload in one buffer (small messages) or header alone (`DATA` sent from its own buffer). */
export function header(kind: Kind, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(HEADER);
  buffer.writeUInt8(kind, 0);
  buffer.writeUInt32BE(length, 1);
  return buffer;
}

/** A message whose payload is JSON. */
export function jsonMessage(kind: Kind, value: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(value));
  return Buffer.concat([header(kind, payload.length), payload]);
}

/** A message with a binary payload. */
export function binaryMessage(kind: Kind, payload: Buffer): Buffer {
  return Buffer.concat([header(kind, payload.length), payload]);
}

export function fileStart(index: number, offset: number): Buffer {
  const payload = Buffer.allocUnsafe(12);
  payload.writeUInt32BE(index, 0);
  payload.writeDoubleBE(offset, 4);
  return binaryMessage(Kind.FILE, payload);
}

export function fileEnd(index: number, sha256: Buffer, cut: boolean): Buffer {
  const payload = Buffer.allocUnsafe(37);
  payload.writeUInt32BE(index, 0);
  payload.writeUInt8(cut ? 1 : 0, 4);
  sha256.copy(payload, 5);
  return binaryMessage(Kind.FILE_END, payload);
}

export function done(index: number, error?: string): Buffer {
  const reason = Buffer.from(error ?? '');
  const payload = Buffer.allocUnsafe(4 + reason.length);
  payload.writeUInt32BE(index, 0);
  reason.copy(payload, 4);
  return binaryMessage(Kind.DONE, payload);
}

/** A malformed message from the peer. */
export class SyncProtocolError extends Error {
  override name = 'SyncProtocolError';
}

/**
 * A message as read: control messages whole; `DATA` as one or more `data` pieces (views of
 * what arrived, never copied) so a large message streams through.
 */
export type Message = { kind: Exclude<Kind, Kind.DATA>; payload: Buffer } | { kind: Kind.DATA; data: Buffer };

/** Reads messages from `source` until it ends. */
export async function* readMessages(source: Readable): AsyncGenerator<Message> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let dataLeft = 0; // bytes of the current DATA message not yet handed on
  const take = (n: number): Buffer => {
    const whole = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    const out = whole.subarray(0, n);
    const rest = whole.subarray(n);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return out;
  };
  // Not destroyed when the peer's side ends: this side may still be writing its last messages.
  for await (const chunk of source.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    for (;;) {
      if (dataLeft > 0) {
        if (pendingBytes === 0) break;
        const n = Math.min(dataLeft, pendingBytes);
        dataLeft -= n;
        yield { kind: Kind.DATA, data: take(n) };
        continue;
      }
      if (pendingBytes < HEADER) break;
      const head = take(HEADER);
      const kind = head.readUInt8(0) as Kind;
      const length = head.readUInt32BE(1);
      if (kind === Kind.DATA) {
        dataLeft = length;
        continue;
      }
      if (kind < Kind.ENTRIES || kind > Kind.FINISH) throw new SyncProtocolError(`unknown message kind ${kind}`);
      if (length > MAX_CONTROL_BYTES) throw new SyncProtocolError(`message of ${length} bytes is over ${MAX_CONTROL_BYTES}`);
      // Put the header back until the whole payload is here.
      if (pendingBytes < length) {
        pending.unshift(head);
        pendingBytes += HEADER;
        break;
      }
      yield { kind, payload: take(length) };
    }
  }
  if (dataLeft > 0 || pendingBytes > 0) throw new SyncProtocolError('the stream ended inside a message');
}

/** Parses a JSON payload, as a protocol error if it is not JSON. */
export function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8')) as unknown;
  } catch {
    throw new SyncProtocolError('a control message is not valid JSON');
  }
}
