/** Writing to a stream with its backpressure respected, failing if the stream dies first. */
import type { Writable } from 'node:stream';

export function writeAll(stream: Writable, chunk: Buffer): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.reject(new Error('the stream is closed'));
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('the stream closed'));
    };
    stream.on('drain', onDrain);
    stream.on('close', onClose);
  });
}
