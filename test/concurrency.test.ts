/**
 * 1,000 streams opened concurrently from each side at once, every one carrying random data
 * both ways, every byte checked by SHA-256; ids never collide.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import type { MuxConnection, MuxStream } from '../src/index';
import { transports } from './helpers/mux';
import { sha256, waitFor, withTimeout } from './helpers/async';
import { collect } from './helpers/streams';

const STREAMS_PER_SIDE = 1000;

interface Request {
  side: string;
  n: number;
  sha256: string;
  length: number;
}

/**
 * Answers every stream the peer opens: reads the request, checks its length and hash against
 * the meta, and writes back fresh random bytes whose hash it records for the opener.
 */
function serve(con: MuxConnection, replies: Map<string, string>, verified: { count: number; ids: number[]; failures: string[] }): void {
  con.on('stream', (stream: MuxStream) => {
    const meta = stream.meta as unknown as Request;
    const reply = randomBytes(randomInt(1024, 6 * 1024));
    replies.set(`${meta.side}:${meta.n}`, sha256(reply));
    verified.ids.push(stream.id);
    // Write back while the request is still arriving: both directions at once.
    stream.end(reply);
    collect(stream, 20_000).then(
      (request) => {
        if (request.length === meta.length && sha256(request) === meta.sha256) verified.count++;
        else verified.failures.push(`${meta.side}:${meta.n} arrived with ${request.length} bytes, hash ${sha256(request)}`);
      },
      (err: Error) => verified.failures.push(`${meta.side}:${meta.n} failed: ${err.message}`),
    );
  });
}

/** Opens one stream with a random request and returns its id once the reply checked out. */
async function exchange(con: MuxConnection, side: string, n: number, replies: Map<string, string>): Promise<number> {
  const request = randomBytes(randomInt(1024, 6 * 1024));
  const meta = { side, n, sha256: sha256(request), length: request.length };
  const stream = con.StreamPool.createStream(meta, () => {});
  stream.end(request);
  const reply = await collect(stream, 20_000);
  assert.equal(sha256(reply), replies.get(`${side}:${n}`), `reply on ${side} stream ${n} (id ${stream.id}) is intact`);
  return stream.id;
}

for (const transport of transports) {
  describe(`many concurrent streams over ${transport.name}`, () => {
    test(
      `${STREAMS_PER_SIDE} streams from each side at once carry random data both ways, every byte verified by SHA-256, with no id collision`,
      { timeout: 30_000 },
      async (t) => {
        const pair = await transport.connect();
        t.after(() => pair.cleanup());
        const { client, server } = pair;
        const replies = new Map<string, string>();
        const atServer = { count: 0, ids: [] as number[], failures: [] as string[] };
        const atClient = { count: 0, ids: [] as number[], failures: [] as string[] };
        serve(server, replies, atServer);
        serve(client, replies, atClient);

        const all: Promise<number>[] = [];
        for (let n = 0; n < STREAMS_PER_SIDE; n++) {
          all.push(exchange(client, 'client', n, replies));
          all.push(exchange(server, 'server', n, replies));
        }
        // Every stream is open at once before any finishes.
        assert.equal(client.stats().streamsOpenLocal, STREAMS_PER_SIDE);
        assert.equal(server.stats().streamsOpenLocal, STREAMS_PER_SIDE);

        const ids = await withTimeout(Promise.all(all), 25_000, 'all exchanges');
        const clientOpened = ids.filter((_, i) => i % 2 === 0);
        const serverOpened = ids.filter((_, i) => i % 2 === 1);
        assert.equal(new Set(clientOpened).size, STREAMS_PER_SIDE, 'client-opened ids are distinct');
        assert.equal(new Set(serverOpened).size, STREAMS_PER_SIDE, 'server-opened ids are distinct');
        assert.ok(
          clientOpened.every((id) => id % 2 === 1),
          'client-opened ids are odd',
        );
        assert.ok(
          serverOpened.every((id) => id % 2 === 0),
          'server-opened ids are even',
        );
        // The acceptors saw exactly the ids the openers got.
        assert.deepEqual(
          [...atServer.ids].sort((a, b) => a - b),
          [...clientOpened].sort((a, b) => a - b),
        );
        assert.deepEqual(
          [...atClient.ids].sort((a, b) => a - b),
          [...serverOpened].sort((a, b) => a - b),
        );

        await waitFor(
          () => atServer.count + atClient.count + atServer.failures.length + atClient.failures.length >= 2 * STREAMS_PER_SIDE,
          10_000,
          'the acceptors to verify every request',
        );
        assert.deepEqual([...atServer.failures, ...atClient.failures], []);
        assert.equal(atServer.count, STREAMS_PER_SIDE);
        assert.equal(atClient.count, STREAMS_PER_SIDE);
        // Every stream finished cleanly: nothing is left open on either side.
        await waitFor(() => client.StreamPool.size + server.StreamPool.size === 0, 5000, 'every stream to close');
      },
    );
  });
}
