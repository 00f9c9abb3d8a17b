/**
 * Per-stream flow control: a reader that never reads holds the writer to its window, memory
 * stays bounded on both sides, and other streams on the same connection keep flowing.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { DEFAULTS, type MuxStream } from '../src/index';
import { transports, type ConnectedPair, type PairOptions, type Transport } from './helpers/mux';
import { delay, sha256, withTimeout } from './helpers/async';
import { collect, openPair } from './helpers/streams';

const CHUNK = 16 * 1024;

async function connect(t: { after(fn: () => Promise<void>): void }, transport: Transport, options?: PairOptions): Promise<ConnectedPair> {
  const pair = await transport.connect(options);
  t.after(() => pair.cleanup());
  return pair;
}

/**
 * Writes random chunks to `stream` whenever it accepts them (again on every `drain`) until
 * stopped, keeping a hash of everything written.
 */
function greedyWriter(stream: MuxStream) {
  const hash = createHash('sha256');
  const state = { written: 0, sawFalse: false, drains: 0, stopped: false };
  const pump = (): void => {
    while (!state.stopped && state.written < 64 * 1024 * 1024) {
      const chunk = randomBytes(CHUNK);
      hash.update(chunk);
      state.written += chunk.length;
      if (!stream.write(chunk)) {
        state.sawFalse = true;
        return;
      }
    }
  };
  stream.on('drain', () => {
    state.drains++;
    pump();
  });
  pump();
  return {
    state,
    /** Stops writing, ends the stream, and returns the hash of what was written. */
    finish(): string {
      state.stopped = true;
      stream.end();
      return hash.digest('hex');
    },
  };
}

/** Sends `size` random bytes each way on a fresh stream and checks both hashes. */
async function transferBothWays(pair: ConnectedPair, size: number): Promise<void> {
  const { local, remote } = await openPair(pair.client, pair.server, 'flowing');
  const up = randomBytes(size);
  const down = randomBytes(size);
  const [atServer, atClient] = [collect(remote, 15_000), collect(local, 15_000)];
  local.end(up);
  remote.end(down);
  assert.equal(sha256(await atServer), sha256(up), 'upload intact');
  assert.equal(sha256(await atClient), sha256(down), 'download intact');
}

for (const transport of transports) {
  describe(`flow control over ${transport.name}`, () => {
    test(
      'a reader that never reads makes write() return false, memory stays within the window, and another stream keeps flowing',
      { timeout: 20_000 },
      async (t) => {
        const pair = await connect(t, transport);
        const window = DEFAULTS.initialWindow;
        const { local: stuck, remote: neverRead } = await openPair(pair.client, pair.server, 'never read');
        const writer = greedyWriter(stuck);

        await delay(300);
        assert.equal(writer.state.sawFalse, true, 'write() returned false');
        const checkBounds = (when: string): void => {
          const received = pair.server.stats().bufferedIn + neverRead.readableLength;
          assert.ok(received <= window, `${when}: the receiver holds ${received} bytes, more than the ${window}-byte window`);
          assert.ok(pair.server.stats().bufferedIn <= window, `${when}: bufferedIn ${pair.server.stats().bufferedIn}`);
          assert.ok(stuck.queuedBytes <= window + CHUNK, `${when}: the writer queued ${stuck.queuedBytes} bytes`);
          assert.ok(stuck.writableLength <= window + CHUNK, `${when}: the writer buffers ${stuck.writableLength} bytes`);
          // Sent to the peer (at most one window) + queued + buffered: a fixed bound, however long we wait.
          assert.ok(writer.state.written <= 3 * window + 2 * CHUNK, `${when}: ${writer.state.written} bytes accepted from the writer`);
        };
        checkBounds('after 300 ms');
        assert.ok(pair.server.stats().bufferedIn > 0, 'the receiver did get data (the window was used)');
        const writtenBefore = writer.state.written;

        // Meanwhile another stream on the same connection moves a few MB both ways.
        await transferBothWays(pair, 3 * 1024 * 1024);
        checkBounds('after the other stream moved 6 MB');
        assert.equal(writer.state.written, writtenBefore, 'the stuck writer was not let through meanwhile');

        // Once the reader reads, everything written arrives intact.
        const received = collect(neverRead, 15_000);
        await delay(50);
        const expected = writer.finish();
        const bytes = await received;
        assert.equal(bytes.length, writer.state.written);
        assert.equal(sha256(bytes), expected);
      },
    );

    test('a smaller configured window bounds the receiver to that window', { timeout: 10_000 }, async (t) => {
      const window = 32 * 1024;
      const pair = await connect(t, transport, { server: { initialWindow: window }, client: { initialWindow: window } });
      const { local, remote } = await openPair(pair.client, pair.server, 'small window');
      const writer = greedyWriter(local);
      await delay(200);
      assert.equal(writer.state.sawFalse, true);
      const held = pair.server.stats().bufferedIn + remote.readableLength;
      assert.ok(held > 0 && held <= window, `the receiver holds ${held} bytes with a ${window}-byte window`);
      const received = collect(remote);
      const expected = writer.finish();
      assert.equal(sha256(await received), expected);
    });

    test('one large write is split into DATA frames no larger than the frame limit', { timeout: 10_000 }, async (t) => {
      const pair = await connect(t, transport);
      const { local, remote } = await openPair(pair.client, pair.server, 'big write');
      const payload = randomBytes(2 * 1024 * 1024);
      const framesBefore = pair.server.stats().framesIn;
      let largest = 0;
      remote.on('data', (chunk: Buffer) => (largest = Math.max(largest, chunk.length)));
      const received = collect(remote);
      local.end(payload);
      assert.equal(sha256(await received), sha256(payload));
      assert.ok(largest <= DEFAULTS.maxFrameSize, `largest piece delivered was ${largest} bytes`);
      const frames = pair.server.stats().framesIn - framesBefore;
      assert.ok(frames >= payload.length / DEFAULTS.maxFrameSize, `${frames} frames carried ${payload.length} bytes`);
    });

    test('a stream writing many megabytes at once does not hold up a small exchange on another stream', { timeout: 15_000 }, async (t) => {
      const pair = await connect(t, transport);
      const bulk = await openPair(pair.client, pair.server, 'bulk');
      const chat = await openPair(pair.client, pair.server, 'chat');
      chat.remote.pipe(chat.remote); // echo
      const payload = randomBytes(24 * 1024 * 1024);
      let bulkDone = false;
      const bulkReceived = collect(bulk.remote, 15_000).then((bytes) => {
        bulkDone = true;
        return bytes;
      });
      bulk.local.end(payload);

      let roundTrips = 0;
      for (let i = 0; i < 5; i++) {
        const reply = new Promise<Buffer>((resolve) => chat.local.once('data', resolve));
        chat.local.write(`ping ${i}`);
        assert.equal((await withTimeout(reply, 5000, 'echo')).toString(), `ping ${i}`);
        roundTrips++;
      }
      const finishedFirst = !bulkDone;
      assert.equal(sha256(await bulkReceived), sha256(payload));
      assert.equal(roundTrips, 5);
      assert.ok(finishedFirst, 'the small exchange finished before the bulk transfer did');
    });
  });
}
