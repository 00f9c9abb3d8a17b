/**
 * `npm run soak -- --minutes N [--clients 8] [--in-flight 16]`
 *
 * Many clients churn streams of random sizes against an echo server in a child process for
 * N minutes. Every stream's bytes are hashed on the way out and on the way back. Prints the
 * streams and bytes moved, the errors (must be zero), and heap samples on both sides so a
 * growth trend shows. Exits non-zero on any error or mismatch.
 */
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MuxClient, type MuxStream } from '../dist/cjs/index'; // the build users run (`npm run bench` builds first)
import { startServer } from './transports';

const MAX_STREAM_BYTES = 1024 * 1024;

function heapNow(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Sends `size` random bytes on an echo stream and checks the echo hashes the same. */
async function echoOnce(client: MuxClient, size: number): Promise<number> {
  const stream: MuxStream = await client.StreamPool.createStream({ mode: 'echo' });
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let receivedBytes = 0;
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      received.update(chunk);
      receivedBytes += chunk.length;
    });
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  let remaining = size;
  while (remaining > 0) {
    const chunk = randomBytes(Math.min(remaining, 1 + Math.floor(Math.random() * 64 * 1024)));
    remaining -= chunk.length;
    sent.update(chunk);
    if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
  }
  stream.end();
  await done;
  if (receivedBytes !== size || !sent.digest().equals(received.digest())) {
    throw new Error(`stream ${stream.id}: echo of ${size} bytes came back as ${receivedBytes} bytes with another hash`);
  }
  return size * 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '1' },
      clients: { type: 'string', default: '8' },
      'in-flight': { type: 'string', default: '16' },
    },
  });
  const deadline = Date.now() + Number(values.minutes) * 60_000;
  const server = await startServer('mux');
  const clients: MuxClient[] = [];
  for (let i = 0; i < Number(values.clients); i++) {
    const client = new MuxClient(server.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    clients.push(client);
  }
  let streams = 0;
  let bytes = 0;
  const errors: string[] = [];
  const samples: { minute: number; client: number; server: number }[] = [];
  const started = Date.now();
  const sample = async (): Promise<void> => {
    samples.push({ minute: (Date.now() - started) / 60_000, client: heapNow(), server: await server.heap() });
  };
  await sample();
  const sampler = setInterval(() => void sample(), 30_000);

  const worker = async (client: MuxClient): Promise<void> => {
    while (Date.now() < deadline && errors.length < 10) {
      // Mostly small streams, some large: sizes spread evenly on a log scale up to 1 MiB.
      const size = Math.floor(Math.exp(Math.random() * Math.log(MAX_STREAM_BYTES)));
      try {
        const moved = await echoOnce(client, size); // not `bytes += await …`: workers run concurrently
        bytes += moved;
        streams++;
      } catch (err) {
        errors.push(err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err));
      }
    }
  };
  await Promise.all(clients.flatMap((client) => Array.from({ length: Number(values['in-flight']) }, () => worker(client))));
  clearInterval(sampler);
  for (const client of clients) client.close();
  await new Promise((resolve) => setTimeout(resolve, 500));
  await sample();
  await server.stop();

  const seconds = (Date.now() - started) / 1000;
  console.log(`soak: ${clients.length} clients x ${values['in-flight']} streams in flight for ${seconds.toFixed(0)} s`);
  console.log(
    `streams: ${streams} (${(streams / seconds).toFixed(0)}/s), bytes moved: ${mib(bytes)} (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`,
  );
  console.log(`errors: ${errors.length}`);
  for (const error of errors) console.log(`  ${error}`);
  console.log('heap (heapUsed + external):');
  for (const s of samples)
    console.log(`  ${s.minute.toFixed(1).padStart(5)} min  client ${mib(s.client).padStart(10)}  server ${mib(s.server).padStart(10)}`);
  const first = samples[0];
  const last = samples[samples.length - 1];
  console.log(`heap change: client ${mib(last.client - first.client)}, server ${mib(last.server - first.server)}`);
  if (errors.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
