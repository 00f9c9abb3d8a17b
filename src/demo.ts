/**
 * `npm start`: the seed README's scenario end to end, on the public API only. A server and
 * a client in one process on an ephemeral port open streams both ways, then the client
 * sends a generated file that the server stores and verifies.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MuxClient, MuxServer, util, type MuxConnection, type MuxStream } from './index';

const FILE_SIZE = 8 * 1024 * 1024;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function readAll(stream: MuxStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tcp-stream-muxer-demo-'));
  const source = path.join(dir, 'outgoing.bin');
  const target = path.join(dir, 'received.bin');
  const content = randomBytes(FILE_SIZE);
  await writeFile(source, content);

  const server = new MuxServer(0, { host: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  console.log(`server listening on 127.0.0.1:${port}`);

  const fileStored = new Promise<void>((resolve, reject) => {
    server.on('connection', (con: MuxConnection) => {
      console.log(`server: client connected from ${con.remoteAddress ?? '?'}`);
      // Server -> client, as in the seed README.
      con.StreamPool.createStream({ type: 'update', file: 'xy.js' }, (stream) => {
        stream.end(Buffer.from("console.log('Hello');"));
      });
      con.on('stream', (stream: MuxStream) => {
        const meta = stream.meta as { type?: string; name?: string } | null;
        if (meta?.type === 'file') {
          util.receiveFile(target, stream).then((result) => {
            console.log(`server: stored ${meta.name ?? '?'} (${result.size} bytes, sha256 ${result.sha256.slice(0, 16)}…)`);
            resolve();
          }, reject);
          return;
        }
        // Echo streams: read everything, answer in upper case (the stream is two-way).
        void readAll(stream).then((text) => stream.end(text.toUpperCase()));
      });
    });
  });

  const client = new MuxClient(port, '127.0.0.1');
  const update = new Promise<string>((resolve) => {
    client.on('stream', (stream: MuxStream) => {
      console.log(`client: server opened stream ${stream.id} with meta ${JSON.stringify(stream.meta)}`);
      void readAll(stream).then((text) => {
        stream.end(); // our half of the stream: nothing to send back
        resolve(text);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  console.log('client: connected');

  const echo = await client.StreamPool.createStream({ type: 'echo' });
  echo.end('hello over a multiplexed stream');
  const fileStream = await client.StreamPool.createStream({ type: 'file', name: 'outgoing.bin', size: FILE_SIZE });
  const started = process.hrtime.bigint();
  const [echoed, updateText] = await Promise.all([readAll(echo), update, util.sendFile(source, fileStream), fileStored]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  console.log(`client: received update ${JSON.stringify(updateText)}`);
  console.log(`client: echo stream answered ${JSON.stringify(echoed)}`);
  const stored = await readFile(target);
  const verified = sha256(stored) === sha256(content);
  console.log(
    `file: ${FILE_SIZE} bytes in ${seconds.toFixed(3)} s (${(FILE_SIZE / 1048576 / seconds).toFixed(1)} MiB/s), hashes ${verified ? 'match' : 'DIFFER'}`,
  );
  console.log(`round trip: ${(await client.ping()).toFixed(3)} ms`);

  await new Promise<void>((resolve) => client.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
  if (!verified || echoed !== 'HELLO OVER A MULTIPLEXED STREAM' || updateText !== "console.log('Hello');") {
    throw new Error('demo verification failed');
  }
  console.log('demo finished: every stream and the file verified');
}

main().catch((err: unknown) => {
  console.error('demo failed:', err);
  process.exitCode = 1;
});
