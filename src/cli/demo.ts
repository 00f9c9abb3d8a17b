/**
 * `tsmux demo` (what `npm start` runs): a `serve` and a `send` in one process on an ephemeral
 * port, over a link throttled to --rate so the progress can be watched. Several generated
 * files and a chat-like message stream move at once over the one connection; every hash is
 * verified at the end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { parseArgs } from 'node:util';
import type { MuxConnection, MuxStream } from '../index';
import { parse, UsageError } from './args';
import { closeClient, connect } from './connect';
import { collectFiles } from './files';
import { Progress, type ProgressMode } from './progress';
import { sendFiles } from './file-streams';
import { startServe } from './serve';
import { formatBytes, formatSummary } from './summary/format';

export const DEMO_HELP = `Usage: tsmux demo [options]

Starts a server and a client in this process on an ephemeral port and sends several
generated files and a chat-like message stream at the same time over one connection, with
the same progress display as \`tsmux send\`; then verifies every SHA-256 and prints a summary.

Options:
  --rate MIB_PER_S  simulated link speed for the client's uploads (default 40; 0 = unthrottled)
  --progress MODE   bars | plain | none (default: bars on a terminal, plain otherwise)
  -h, --help        this help

Progress goes to stderr, the summary to stdout. Exit code 0 when everything verified, 1 if not.
`;

const MIB = 1024 * 1024;

/** name → size of the generated files. */
const FILES: [string, number][] = [
  ['empty.txt', 0],
  ['notes.txt', 20 * 1024],
  ['photos/beach.jpg', 3 * MIB],
  ['photos/city.jpg', 5 * MIB],
  ['logs/app.log', 1 * MIB],
  ['dataset.bin', 16 * MIB],
  ['video.bin', 24 * MIB],
];

const CHAT = [
  'hi, are you getting the photos?',
  'the video is on its way too',
  'tell me when dataset.bin lands',
  'small messages do not wait for big files',
  'one connection for all of it',
  'bye!',
];
const CHAT_INTERVAL_MS = 200;

export async function runDemo(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: { rate: { type: 'string' }, progress: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }),
  );
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const rate = Number(values.rate ?? '40');
  if (!Number.isFinite(rate) || rate < 0) throw new UsageError('--rate: expected MiB per second (0 = unthrottled)');
  const mode = values.progress;
  if (mode !== undefined && mode !== 'bars' && mode !== 'plain' && mode !== 'none')
    throw new UsageError('--progress: expected bars, plain or none');

  const work = await mkdtemp(path.join(tmpdir(), 'tsmux-demo-'));
  try {
    return await demo(work, rate * MIB, mode);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function demo(work: string, bytesPerSecond: number, mode: ProgressMode | undefined): Promise<number> {
  const outgoing = path.join(work, 'outgoing', 'demo');
  for (const [name, size] of FILES) {
    await mkdir(path.dirname(path.join(outgoing, name)), { recursive: true });
    await writeFile(path.join(outgoing, name), randomBytes(size));
  }
  const problems: string[] = [];
  const serverLog = (line: string): void => {
    if (line.startsWith('failed') || line.startsWith('refused')) problems.push(`server: ${line}`);
  };
  const handle = await startServe({
    port: 0,
    host: '127.0.0.1',
    dir: path.join(work, 'inbox'),
    log: serverLog,
    extra: { type: 'chat', handle: chatServer },
  });
  const link = await slowLink(handle.address.port, bytesPerSecond);
  process.stdout.write(
    `demo: server on 127.0.0.1:${handle.address.port}, client through a ${bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : 'full-speed'} link on port ${link.port}\n`,
  );

  const client = await connect({ host: '127.0.0.1', port: link.port }, {});
  client.on('error', () => {});
  const { files } = await collectFiles([outgoing]);
  const totalBytes = files.reduce((sum, file) => sum + file.size, 0);
  const progress = new Progress({ verb: 'sent', totalBytes, totalFiles: files.length, ...(mode ? { mode } : {}) });
  const started = Date.now();
  const controller = new AbortController();
  const [outcome, chat] = await Promise.all([
    sendFiles(client, files, { concurrency: 4, progress, signal: controller.signal }),
    chatClient(client, (line) => progress.log(line)),
  ]);
  progress.stop();
  const seconds = (Date.now() - started) / 1000;
  await closeClient(client);
  await handle.shutdown();
  link.close();

  // Every file, byte for byte: the hash of what was generated against what was stored.
  let verified = 0;
  for (const file of files) {
    const stored = path.join(handle.root, ...file.name.split('/'));
    const [expected, actual] = await Promise.all([hashFile(file.path), hashFile(stored).catch(() => 'missing')]);
    if (expected === actual) verified++;
    else problems.push(`${file.name}: stored file ${actual === 'missing' ? 'missing' : 'differs'}`);
  }
  if (chat.replies !== CHAT.length) problems.push(`chat: ${chat.replies} of ${CHAT.length} replies`);
  process.stdout.write(formatSummary({ verb: 'sent', files: outcome.sent, bytes: outcome.bytes, seconds, failures: outcome.failures }));
  process.stdout.write(
    `verified: ${verified} of ${files.length} files, SHA-256 identical; chat: ${chat.replies} of ${CHAT.length} messages answered during the transfer\n`,
  );
  for (const problem of problems) process.stdout.write(`problem: ${problem}\n`);
  return problems.length === 0 && outcome.failures.length === 0 && verified === files.length ? 0 : 1;
}

/** The server's side of the chat: answers every line. */
function chatServer(stream: MuxStream): void {
  let buffered = '';
  let count = 0;
  stream.setEncoding('utf8');
  stream.on('data', (text: Buffer | string) => {
    buffered += String(text);
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      stream.write(`server: got "${line}" (#${++count})\n`);
    }
  });
  stream.on('end', () => stream.end());
  stream.on('error', () => {});
}

/** The client's side: a message every CHAT_INTERVAL_MS while the files move. */
async function chatClient(client: MuxConnection, log: (line: string) => void): Promise<{ replies: number }> {
  const stream = await client.StreamPool.createStream({ type: 'chat', user: 'alice' });
  stream.setEncoding('utf8');
  let replies = 0;
  let buffered = '';
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (text: Buffer | string) => {
      buffered += String(text);
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        log(`chat < ${buffered.slice(0, newline)}`);
        buffered = buffered.slice(newline + 1);
        replies++;
      }
    });
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  // An error while the loop below still waits would otherwise be an unhandled rejection.
  let failed: unknown = null;
  done.catch((err: unknown) => (failed = err));
  for (const line of CHAT) {
    if (failed !== null) break;
    log(`chat > alice: ${line}`);
    stream.write(`${line}\n`);
    await new Promise((resolve) => setTimeout(resolve, CHAT_INTERVAL_MS));
  }
  stream.end();
  await done;
  return { replies };
}

/** A local TCP relay to `port` whose client-to-server direction is paced to `bytesPerSecond`. */
async function slowLink(port: number, bytesPerSecond: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((socket) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => {
        socket.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    socket
      .pipe(bytesPerSecond > 0 ? new Pace(bytesPerSecond) : new Transform({ transform: (chunk, _, cb) => cb(null, chunk) }))
      .pipe(upstream);
    upstream.pipe(socket);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    close() {
      relay.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Passes bytes on no faster than `bytesPerSecond` (on average since the first byte). */
class Pace extends Transform {
  private started = 0;
  private bytes = 0;

  constructor(private readonly bytesPerSecond: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.started === 0) this.started = Date.now();
    this.bytes += chunk.length;
    this.push(chunk);
    const wait = this.started + (this.bytes / this.bytesPerSecond) * 1000 - Date.now();
    if (wait > 1) setTimeout(callback, wait);
    else callback();
  }
}

function hashFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
