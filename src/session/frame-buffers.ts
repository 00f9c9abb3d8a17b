/**
 * Reusable buffers for DATA payloads that the scheduler coalesces from many small writes.
 *
 * A writer of small messages makes the scheduler copy them into one payload per frame. A
 * fresh 64 KiB buffer for each frame costs more than the copy: the allocator hands freed
 * memory back to the kernel between garbage collections, and every new buffer then faults
 * its pages in again. Recycling a few buffers once the socket has written them removes that
 * cost. Only plain TCP sockets get them for coalesced payloads, and TLS sockets for whole
 * frames: the write callback of the first means the kernel has copied the bytes, and a TLS
 * socket has encrypted them (or copied what it could not encrypt yet) before it calls back.
 * Another Duplex (an in-memory pair, a WebSocket stream) may still hold the very buffer it
 * was given when it calls back.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';

/** Size of a pooled buffer: the default largest frame. Larger frames get a buffer of their own. */
export const FRAME_BUFFER_SIZE = 64 * 1024;
// 16 buffers (1 MiB) cover the frames a socket has in flight; a burst beyond that is left to the GC.
const MAX_FREE_BUFFERS = 16;

const free: Buffer[] = [];
let allocated = 0;

/** A buffer of FRAME_BUFFER_SIZE bytes, from the pool when one is free. */
export function acquireFrameBuffer(): Buffer {
  const buffer = free.pop();
  if (buffer !== undefined) return buffer;
  allocated++;
  return Buffer.allocUnsafeSlow(FRAME_BUFFER_SIZE);
}

/** Gives `buffer` (from {@link acquireFrameBuffer}) back; nothing may use it afterwards. */
export function releaseFrameBuffer(buffer: Buffer): void {
  if (free.length < MAX_FREE_BUFFERS) free.push(buffer);
}

/** Whether buffers written to `transport` may be reused once its write callback has run. */
export function recyclesWrittenBuffers(transport: Duplex): boolean {
  return transport instanceof net.Socket && !(transport instanceof tls.TLSSocket);
}

/**
 * Whether `transport` turns each write into TLS records. A TLS socket encrypts every write on
 * its own, in records of at most 16 KiB plaintext, and joins the buffers of one writev into
 * one copy first. A DATA frame of 64 KiB plus its 12-byte header is then four full records
 * and a fifth of 12 bytes, which the receiver decrypts and hands up as a chunk of its own. A
 * frame of exactly 64 KiB, written as one buffer that the scheduler copies together instead
 * of the TLS socket, is four records.
 */
export function writesRecords(transport: Duplex): boolean {
  return transport instanceof tls.TLSSocket;
}

/** @internal For tests: buffers allocated so far, and how many are free now. */
export function frameBufferCounts(): { allocated: number; free: number } {
  return { allocated, free: free.length };
}
