import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { JsonValue, MuxConnection, MuxStream } from '../../src/index';
import { nextEvent, withTimeout } from './async';

/** Reads `stream` to its end (bounded in time) and returns every byte. */
export function collect(stream: Readable, ms = 10_000): Promise<Buffer> {
  const done = new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
    stream.once('close', () => {
      if (!stream.readableEnded) reject(stream.errored ?? new Error('stream closed before its end'));
    });
  });
  return withTimeout(done, ms, 'a stream to end');
}

/** The next stream `con`'s peer opens. */
export async function nextStream(con: MuxConnection, ms = 5000): Promise<MuxStream> {
  const [stream] = await nextEvent(con, 'stream', ms);
  return stream as MuxStream;
}

/** Opens a stream from `opener` and returns both of its ends once `acceptor` has it. */
export async function openPair(
  opener: MuxConnection,
  acceptor: MuxConnection,
  meta?: JsonValue,
): Promise<{ local: MuxStream; remote: MuxStream }> {
  const remote = nextStream(acceptor);
  const opening = meta === undefined ? opener.StreamPool.createStream() : opener.StreamPool.createStream(meta);
  const local: MuxStream = await withTimeout(opening, 5000, 'createStream');
  return { local, remote: await remote };
}

/**
 * The file-transfer header written by hand: "TSMF", version 1, u64 size (PROTOCOL.md,
 * file-transfer appendix), for tests that play a sender the library would never be.
 */
export function fileHeader(size: number): Buffer {
  const header = Buffer.alloc(13);
  header.write('TSMF', 0, 'latin1');
  header[4] = 1;
  header.writeBigUInt64BE(BigInt(size), 5);
  return header;
}

/**
 * Echoes `stream` back to its peer, honouring backpressure, and ends it once the peer has;
 * `onEnd` gets the hex SHA-256 of everything read, so a test can compare it with what the
 * opener said it sent.
 */
export function echoHashing(stream: MuxStream, onEnd: (sha256: string) => void): void {
  const hash = createHash('sha256');
  stream.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    if (!stream.write(chunk)) {
      stream.pause();
      stream.once('drain', () => stream.resume());
    }
  });
  stream.on('end', () => {
    onEnd(hash.digest('hex'));
    stream.end();
  });
}
