/**
 * Pooled payload buffers: small writes coalesced into frames reuse a few buffers once a TCP
 * socket has written them, and never when the transport is another Duplex that may still
 * hold the buffer after its write callback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import * as tls from 'node:tls';
import { wrap, type MuxConnection, type MuxStream } from '../src/index';
import { FRAME_BUFFER_SIZE, frameBufferCounts, recyclesWrittenBuffers } from '../src/session/frame-buffers';
import { sha256, withTimeout } from './helpers/async';
import { connectOver, HOST, tcpTransport, type ConnectedPair } from './helpers/mux';
import { openPair } from './helpers/streams';

const MESSAGE = 64;

/** Message `i`: 64 bytes that differ from every other message's. */
function message(i: number): Buffer {
  const bytes = Buffer.alloc(MESSAGE, i % 251);
  bytes.writeUInt32BE(i, 0);
  return bytes;
}

/** Writes `count` distinct messages, honouring backpressure, then ends. */
function writeMessages(stream: MuxStream, count: number): Promise<string> {
  const all: Buffer[] = [];
  return new Promise((resolve, reject) => {
    let i = 0;
    const more = (): void => {
      while (i < count) {
        const bytes = message(i++);
        all.push(bytes);
        if (!stream.write(bytes)) {
          stream.once('drain', more);
          return;
        }
      }
      stream.end();
      resolve(sha256(Buffer.concat(all)));
    };
    stream.once('error', reject);
    more();
  });
}

/** Reads everything, keeping the very Buffers it was given (no copies), until the end. */
function keepEverything(stream: MuxStream): Promise<Buffer[]> {
  const kept: Buffer[] = [];
  return withTimeout(
    new Promise((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => kept.push(chunk));
      stream.once('end', () => resolve(kept));
      stream.once('error', reject);
    }),
    20_000,
    'every message',
  );
}

async function transfer(pair: ConnectedPair, count: number): Promise<{ sent: string; received: Buffer[] }> {
  const { local, remote } = await openPair(pair.client, pair.server, 'messages');
  const received = keepEverything(remote);
  const sent = await writeMessages(local, count);
  return { sent, received: await received };
}

test(
  'over TCP, 200,000 small messages arrive intact while a handful of pooled buffers carry every frame',
  { timeout: 30_000 },
  async (t) => {
    const pair = await tcpTransport.connect();
    t.after(() => pair.cleanup());
    const before = frameBufferCounts();
    const count = 200_000;
    const { sent, received } = await transfer(pair, count);
    assert.equal(sha256(Buffer.concat(received)), sent, 'every byte arrived, in order');

    const frames = (count * MESSAGE) / FRAME_BUFFER_SIZE;
    const after = frameBufferCounts();
    assert.ok(
      after.allocated - before.allocated <= 32,
      `${after.allocated - before.allocated} buffers allocated for about ${frames} coalesced frames`,
    );
    assert.ok(after.free >= 1, 'written buffers went back to the pool');
  },
);

/**
 * Two ends joined by PassThroughs, which hand the very Buffer that was written to the reader:
 * a transport where recycling a buffer after its write callback would corrupt data.
 */
async function passThroughPair(): Promise<ConnectedPair> {
  const clientToServer = new PassThrough();
  const serverToClient = new PassThrough();
  const clientEnd = Duplex.from({ writable: clientToServer, readable: serverToClient });
  const serverEnd = Duplex.from({ writable: serverToClient, readable: clientToServer });
  return connectOver(clientEnd, serverEnd, [clientEnd, serverEnd]);
}

test(
  'over a Duplex that passes buffers on, they are not pooled: a reader that keeps every chunk sees its bytes intact',
  { timeout: 30_000 },
  async (t) => {
    const pair = await passThroughPair();
    t.after(() => pair.cleanup());
    const before = frameBufferCounts();
    const count = 50_000;
    const { sent, received } = await transfer(pair, count);
    // Checked only now, long after the first chunks arrived: a reused buffer would have been overwritten.
    assert.equal(sha256(Buffer.concat(received)), sent);
    assert.ok(received.length > 1, 'the data came in several chunks');
    assert.equal(frameBufferCounts().allocated, before.allocated, 'no pooled buffer was used');
  },
);

test('only plain TCP sockets recycle written buffers', () => {
  assert.equal(recyclesWrittenBuffers(new net.Socket()), true);
  assert.equal(recyclesWrittenBuffers(new tls.TLSSocket(new net.Socket())), false, 'TLS: the TLS layer owns the write');
  assert.equal(recyclesWrittenBuffers(new PassThrough()), false);
});

/** A muxer pair over one real TCP connection, with the server's raw socket for stalling it. */
async function wrappedTcpPair(): Promise<{ client: MuxConnection; server: MuxConnection; serverSocket: net.Socket; close(): void }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, HOST, () => resolve()));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const clientSocket = net.connect((listener.address() as net.AddressInfo).port, HOST);
  const serverSocket = await accepted;
  // Windows far larger than the socket buffers, so that a stalled reader leaves writes pending.
  const options = { initialWindow: 32 * 1024 * 1024, maxWindow: 32 * 1024 * 1024, maxBufferedBytes: 256 * 1024 * 1024 };
  const client = wrap(clientSocket, { role: 'client', ...options });
  const server = wrap(serverSocket, { role: 'server', ...options });
  return {
    client,
    server,
    serverSocket,
    close() {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

test(
  'a pooled buffer is not reused while its write is still pending: the receiver stalls while another connection recycles buffers',
  { timeout: 60_000 },
  async (t) => {
    const stalled = await wrappedTcpPair();
    const busy = await wrappedTcpPair();
    t.after(() => {
      stalled.close();
      busy.close();
    });
    const [stalledPair, busyPair] = await Promise.all([
      openPair(stalled.client, stalled.server, 'stalled'),
      openPair(busy.client, busy.server, 'busy'),
    ]);
    const received = keepEverything(stalledPair.remote);
    busyPair.remote.resume();
    // The stalled side's socket stops reading, so the writer's socket writes go asynchronous,
    // while the other connection keeps taking and releasing pooled buffers.
    stalled.serverSocket.pause();
    setTimeout(() => stalled.serverSocket.resume(), 1500);
    const [sent] = await Promise.all([writeMessages(stalledPair.local, 300_000), writeMessages(busyPair.local, 300_000)]);
    assert.equal(sha256(Buffer.concat(await received)), sent, 'every byte arrived as written');
  },
);
