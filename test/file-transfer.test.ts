/**
 * util.sendFile / util.receiveFile: round trips of any size, sendFile resolving only once the
 * file is stored, the callback form, and failures that must leave nothing behind.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULTS, MuxError, util, type MuxConnection, type MuxStream } from '../src/index';
import { memoryTransport, transports, type ConnectedPair } from './helpers/mux';
import { sha256, waitFor, withTimeout } from './helpers/async';
import { collect, fileHeader } from './helpers/streams';
import { requirePackage } from './helpers/package';

type Result = Awaited<ReturnType<typeof util.sendFile>>;

async function tempDir(t: TestContext, label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tsm-${label}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function connectPair(t: TestContext, transport = transports[0]): Promise<ConnectedPair> {
  const pair = await transport.connect();
  t.after(() => pair.cleanup());
  return pair;
}

/** Writes `size` random bytes to a new file in `dir`. */
async function randomFile(dir: string, name: string, size: number): Promise<{ file: string; content: Buffer }> {
  const content = randomBytes(size);
  const file = path.join(dir, name);
  await writeFile(file, content);
  return { file, content };
}

/** The receiving side: every stream the peer opens is stored as `dir/<meta.name>`. */
function receiveInto(con: MuxConnection, dir: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    con.once('stream', (stream: MuxStream) => {
      const { name } = stream.meta as { name: string };
      util.receiveFile(path.join(dir, name), stream).then(resolve, reject);
    });
  });
}

function expectCode(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MuxError, `a MuxError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

describe('sendFile and receiveFile round trips', () => {
  for (const [label, size] of [
    ['an empty file', 0],
    ['a 1-byte file', 1],
    ['a 5 MB file', 5 * 1024 * 1024 + 123],
  ] as const) {
    test(`${label} arrives with the same SHA-256, and sendFile resolves only once it is stored`, { timeout: 15_000 }, async (t) => {
      const [from, to] = [await tempDir(t, 'from'), await tempDir(t, 'to')];
      const { client, server } = await connectPair(t);
      const { file, content } = await randomFile(from, 'source.bin', size);
      const target = path.join(to, 'copy.bin');
      const received = receiveInto(server, to);
      const stream = await client.StreamPool.createStream({ name: 'copy.bin' });

      const sent = await withTimeout(
        util.sendFile(file, stream).then((result) => {
          // Checked synchronously the moment sendFile resolves.
          assert.ok(existsSync(target), 'the file is in place when sendFile resolves');
          assert.equal(sha256(readFileSync(target)), sha256(content));
          return result;
        }),
        10_000,
        'sendFile',
      );
      const stored = await withTimeout(received, 5000, 'receiveFile');
      assert.deepEqual(sent, { size, sha256: sha256(content) });
      assert.deepEqual(stored, { size, sha256: sha256(content) });
      assert.deepEqual(await readdir(to), ['copy.bin'], 'no temporary file is left');
    });
  }

  test('the trailing-callback form works on both sides', { timeout: 10_000 }, async (t) => {
    const [from, to] = [await tempDir(t, 'from'), await tempDir(t, 'to')];
    const { client, server } = await connectPair(t);
    const { file, content } = await randomFile(from, 'a.txt', 70_000);
    const target = path.join(to, 'b.txt');
    const receivedViaCallback = new Promise<[Error | null, Result | undefined]>((resolve) => {
      server.once('stream', (stream: MuxStream) => {
        const returned = util.receiveFile(target, stream, (err, result) => resolve([err, result]));
        returned.catch(() => {}); // the callback has the outcome
        assert.ok(returned instanceof Promise, 'a Promise is returned too');
      });
    });
    const stream = await client.StreamPool.createStream({ name: 'b.txt' });
    const sentViaCallback = new Promise<[Error | null, Result | undefined]>((resolve) => {
      util.sendFile(file, stream, (err, result) => resolve([err, result])).catch(() => {}); // the callback has the outcome
    });
    const [[sendErr, sent], [receiveErr, received]] = await withTimeout(
      Promise.all([sentViaCallback, receivedViaCallback]),
      8000,
      'both callbacks',
    );
    assert.equal(sendErr, null);
    assert.equal(receiveErr, null);
    assert.deepEqual(sent, { size: content.length, sha256: sha256(content) });
    assert.deepEqual(received, sent);
    assert.equal(sha256(readFileSync(target)), sha256(content));
  });

  test('a failing transfer reports the error to the callback', { timeout: 10_000 }, async (t) => {
    const to = await tempDir(t, 'to');
    const { client, server } = await connectPair(t);
    const failed = new Promise<[Error | null, Result | undefined]>((resolve) => {
      server.once('stream', (stream: MuxStream) => {
        util.receiveFile(path.join(to, 'x'), stream, (err, result) => resolve([err, result])).catch(() => {});
      });
    });
    const stream = await client.StreamPool.createStream({ name: 'x' });
    stream.end(Buffer.from('not a file transfer at all'));
    const [err, result] = await withTimeout(failed, 5000, 'the callback');
    assert.ok(err instanceof MuxError);
    assert.equal(err.code, 'ERR_FILE_TRANSFER');
    assert.equal(result, undefined);
    assert.deepEqual(await readdir(to), []);
  });

  test('the server can send a file to the client, as the seed changelog describes, through the package', { timeout: 10_000 }, async (t) => {
    const Muxer = requirePackage();
    const [from, to] = [await tempDir(t, 'from'), await tempDir(t, 'to')];
    const { file, content } = await randomFile(from, 'update.js', 200_000);
    const server = new Muxer.MuxServer(0, { host: '127.0.0.1' });
    t.after(() => new Promise<void>((resolve) => (server.close(() => resolve()), server.destroy())));
    const sent = new Promise<Result>((resolve, reject) => {
      server.on('connection', (con: MuxConnection) => {
        con.StreamPool.createStream({ type: 'update', file: 'update.js' }, (stream) => {
          Muxer.util.sendFile(file, stream).then(resolve, reject);
        });
      });
    });
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    const stored = new Promise<Result>((resolve, reject) => {
      const client = new Muxer.MuxClient(port, '127.0.0.1', () => {
        client.on('stream', (stream: MuxStream) => {
          Muxer.util.receiveFile(path.join(to, (stream.meta as { file: string }).file), stream).then(resolve, reject);
        });
      });
      t.after(() => client.destroy());
    });
    const [sentResult, storedResult] = await withTimeout(Promise.all([sent, stored]), 8000, 'the transfer');
    assert.equal(sentResult.sha256, sha256(content));
    assert.equal(storedResult.sha256, sha256(content));
    assert.equal(sha256(readFileSync(path.join(to, 'update.js'))), sha256(content));
  });
});

for (const transport of transports) {
  describe(`a file transfer that breaks over ${transport.name}`, () => {
    test(
      'receiveFile over a connection cut midway rejects and leaves neither the file nor a temporary file',
      { timeout: 15_000 },
      async (t) => {
        const [from, to] = [await tempDir(t, 'from'), await tempDir(t, 'to')];
        const pair = await connectPair(t, transport);
        const { file } = await randomFile(from, 'big.bin', 8 * 1024 * 1024);
        let cutAt = -1;
        const received = new Promise<Result>((resolve, reject) => {
          pair.server.once('stream', (stream: MuxStream) => {
            util
              .receiveFile(path.join(to, 'big.bin'), stream, {
                onProgress: (bytes) => {
                  if (cutAt < 0 && bytes >= 1024 * 1024) {
                    cutAt = bytes;
                    pair.cut();
                  }
                },
              })
              .then(resolve, reject);
          });
        });
        const stream = await pair.client.StreamPool.createStream({ name: 'big.bin' });
        const sent = util.sendFile(file, stream);
        const [receiveOutcome, sendOutcome] = await withTimeout(Promise.allSettled([received, sent]), 10_000, 'both sides to settle');
        assert.equal(receiveOutcome.status, 'rejected', 'receiveFile must fail');
        assert.equal(sendOutcome.status, 'rejected', 'sendFile must fail');
        expectCode('ERR_CONNECTION_CLOSED')(receiveOutcome.reason);
        expectCode('ERR_CONNECTION_CLOSED')(sendOutcome.reason);
        assert.ok(cutAt > 0 && cutAt < 8 * 1024 * 1024, 'the cut happened midway');
        assert.deepEqual(await readdir(to), [], 'nothing is left in the target directory');
      },
    );

    test('a sender that resets the stream midway makes receiveFile reject with nothing left behind', { timeout: 10_000 }, async (t) => {
      const to = await tempDir(t, 'to');
      const pair = await connectPair(t, transport);
      const received = receiveInto(pair.server, to);
      const stream = await pair.client.StreamPool.createStream({ name: 'half.bin' });
      stream.on('error', () => {});
      stream.write(fileHeader(1_000_000));
      stream.write(randomBytes(400_000));
      await new Promise((resolve) => setTimeout(resolve, 50));
      stream.destroy(new Error('changed my mind'));
      await assert.rejects(withTimeout(received, 5000, 'receiveFile'), expectCode('ERR_STREAM_RESET'));
      assert.deepEqual(await readdir(to), []);
    });
  });
}

describe('corrupted or refused transfers', () => {
  /** Sends `bytes` by hand as a file transfer; returns the receiver's status line and its outcome. */
  async function handSender(
    t: TestContext,
    bytes: Buffer[],
  ): Promise<{ status: Record<string, unknown>; outcome: Promise<Result>; dir: string }> {
    const dir = await tempDir(t, 'to');
    const { client, server } = await connectPair(t);
    const outcome = receiveInto(server, dir);
    outcome.catch(() => {});
    const stream = await client.StreamPool.createStream({ name: 'victim.bin' });
    const reply = collect(stream);
    for (const chunk of bytes) stream.write(chunk);
    stream.end();
    const line = (await reply).toString();
    assert.ok(line.endsWith('\n'), `one status line, got ${JSON.stringify(line)}`);
    return { status: JSON.parse(line) as Record<string, unknown>, outcome, dir };
  }

  test('a wrong SHA-256 trailer is rejected on both sides and nothing is stored', { timeout: 10_000 }, async (t) => {
    const content = randomBytes(300_000);
    const wrong = createHash('sha256').update(content).update('x').digest();
    const { status, outcome, dir } = await handSender(t, [fileHeader(content.length), content, wrong]);
    assert.equal(status.ok, false, 'the sender is told it failed');
    assert.equal(status.code, 'ERR_FILE_MISMATCH');
    await assert.rejects(outcome, expectCode('ERR_FILE_MISMATCH'));
    assert.deepEqual(await readdir(dir), []);
  });

  test('content shorter than announced is rejected and nothing is stored', { timeout: 10_000 }, async (t) => {
    const content = randomBytes(1000);
    const { status, outcome, dir } = await handSender(t, [fileHeader(2000), content, createHash('sha256').update(content).digest()]);
    assert.equal(status.ok, false);
    await assert.rejects(outcome, expectCode('ERR_FILE_MISMATCH'));
    assert.deepEqual(await readdir(dir), []);
  });

  test('bytes beyond the announced size and trailer are rejected and nothing is stored', { timeout: 10_000 }, async (t) => {
    const content = randomBytes(1000);
    const digest = createHash('sha256').update(content).digest();
    const { status, outcome, dir } = await handSender(t, [fileHeader(1000), content, digest, Buffer.from('extra')]);
    assert.equal(status.ok, false);
    await assert.rejects(outcome, expectCode('ERR_FILE_MISMATCH'));
    assert.deepEqual(await readdir(dir), []);
  });

  test('a stream that ends before the header is rejected and nothing is stored', { timeout: 10_000 }, async (t) => {
    const { status, outcome, dir } = await handSender(t, [Buffer.from('TSM')]);
    assert.equal(status.ok, false);
    await assert.rejects(outcome, expectCode('ERR_FILE_TRANSFER'));
    assert.deepEqual(await readdir(dir), []);
  });

  test('sendFile rejects with ERR_FILE_REJECTED when the receiver reports a failure', { timeout: 10_000 }, async (t) => {
    const from = await tempDir(t, 'from');
    const { client, server } = await connectPair(t);
    const { file } = await randomFile(from, 'f.bin', 100_000);
    server.once('stream', (stream: MuxStream) => {
      stream.resume();
      stream.end(`${JSON.stringify({ ok: false, error: 'disk full' })}\n`);
    });
    const stream = await client.StreamPool.createStream({ name: 'f.bin' });
    await assert.rejects(withTimeout(util.sendFile(file, stream), 5000, 'sendFile'), (err: unknown) => {
      expectCode('ERR_FILE_REJECTED')(err);
      assert.match((err as Error).message, /disk full/);
      return true;
    });
  });

  for (const [option, value, code, message] of [
    ['expectedSize', 99_999, 'ERR_FILE_MISMATCH', /announced 99999 bytes but its transfer carries 100000/],
    ['maxSize', 50_000, 'ERR_FILE_TRANSFER', /100000 bytes is over the limit of 50000/],
  ] as const) {
    test(`receiveFile with ${option} rejects a file that does not fit before storing any of it`, { timeout: 10_000 }, async (t) => {
      const [from, to] = [await tempDir(t, 'from'), await tempDir(t, 'to')];
      const { client, server } = await connectPair(t);
      const { file } = await randomFile(from, 'f.bin', 100_000);
      const received = new Promise<unknown>((resolve) => {
        server.once('stream', (stream: MuxStream) => {
          util.receiveFile(path.join(to, 'f.bin'), stream, { [option]: value }).then(resolve, resolve);
        });
      });
      const stream = await client.StreamPool.createStream({ name: 'f.bin' });
      const sent = util.sendFile(file, stream);
      const outcome = await withTimeout(received, 5000, 'receiveFile to settle');
      expectCode(code)(outcome);
      assert.match((outcome as Error).message, message);
      await assert.rejects(withTimeout(sent, 5000, 'sendFile'), expectCode('ERR_FILE_REJECTED'));
      assert.deepEqual(await readdir(to), [], 'nothing stored, no temporary file');
    });
  }

  test('a receiver that cannot write its target makes both sides reject', { timeout: 10_000 }, async (t) => {
    const from = await tempDir(t, 'from');
    const to = await tempDir(t, 'to');
    const { client, server } = await connectPair(t);
    const { file } = await randomFile(from, 'f.bin', 2 * 1024 * 1024);
    const missingDir = path.join(to, 'does', 'not', 'exist');
    const received = receiveInto(server, missingDir);
    const stream = await client.StreamPool.createStream({ name: 'f.bin' });
    await assert.rejects(withTimeout(received, 5000, 'receiveFile'), expectCode('ERR_FILE_TRANSFER'));
    await assert.rejects(withTimeout(util.sendFile(file, stream), 5000, 'sendFile'), expectCode('ERR_FILE_REJECTED'));
    assert.deepEqual(await readdir(to), []);
  });

  test('sendFile of a file that does not exist rejects, and the receiver rejects too with nothing left', { timeout: 10_000 }, async (t) => {
    const to = await tempDir(t, 'to');
    const { client, server } = await connectPair(t);
    const received = receiveInto(server, to);
    received.catch(() => {});
    const stream = await client.StreamPool.createStream({ name: 'ghost.bin' });
    await assert.rejects(withTimeout(util.sendFile(path.join(to, 'no-such-file'), stream), 5000, 'sendFile'), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /ENOENT|no such file/);
      return true;
    });
    await assert.rejects(withTimeout(received, 5000, 'receiveFile'), MuxError);
    assert.deepEqual(await readdir(to), []);
  });
});

describe('a receiver that never sends its status', () => {
  /**
   * The receiving side of a hostile or stuck receiver: reads every byte of each stream and
   * never answers. `streams` collects them with the byte count and whether the end arrived.
   */
  function silentReceiver(con: MuxConnection): { stream: MuxStream; bytes: number; ended: boolean }[] {
    const seen: { stream: MuxStream; bytes: number; ended: boolean }[] = [];
    con.on('stream', (stream: MuxStream) => {
      const entry = { stream, bytes: 0, ended: false };
      seen.push(entry);
      stream.on('error', () => {});
      stream.on('data', (chunk: Buffer) => (entry.bytes += chunk.length));
      stream.on('end', () => (entry.ended = true));
    });
    return seen;
  }

  for (const transport of transports) {
    test(
      `sendFile gives up after statusTimeout with ERR_STATUS_TIMEOUT and resets the stream (${transport.name})`,
      { timeout: 10_000 },
      async (t) => {
        const from = await tempDir(t, 'from');
        const { client, server } = await connectPair(t, transport);
        const { file } = await randomFile(from, 'f.bin', 100_000);
        const seen = silentReceiver(server);
        const stream = await client.StreamPool.createStream({ name: 'f.bin' });
        await assert.rejects(withTimeout(util.sendFile(file, stream, { statusTimeout: 200 }), 5000, 'sendFile'), (err: unknown) => {
          expectCode('ERR_STATUS_TIMEOUT')(err);
          assert.match((err as Error).message, /no status within 0\.2 s of the last byte/);
          return true;
        });
        assert.ok(stream.destroyed, 'the sender reset the stream');
        const [received] = seen;
        assert.equal(received.bytes, 13 + 100_000 + 32, 'the receiver had the whole file and its digest');
        assert.equal(received.ended, true, 'and the end of the stream');
        await waitFor(() => received.stream.destroyed, 5000, "the receiver's stream to be reset");
        assert.equal((received.stream.errored as MuxError | null)?.code, 'ERR_STREAM_RESET');
      },
    );
  }

  test('sendFileOver passes statusTimeout on to sendFile', { timeout: 10_000 }, async (t) => {
    const from = await tempDir(t, 'from');
    const { client, server } = await connectPair(t, memoryTransport);
    const { file } = await randomFile(from, 'f.bin', 1000);
    silentReceiver(server);
    await assert.rejects(
      withTimeout(util.sendFileOver(client, file, { statusTimeout: 100 }), 5000, 'sendFileOver'),
      expectCode('ERR_STATUS_TIMEOUT'),
    );
  });

  test("statusTimeout counts from the stream's finish, not while the receiver holds its window shut", { timeout: 10_000 }, async (t) => {
    const from = await tempDir(t, 'from');
    const { client, server } = await connectPair(t, memoryTransport);
    // More than one window: end() is called with bytes still queued for the paused receiver.
    const size = DEFAULTS.initialWindow + DEFAULTS.streamHighWaterMark / 2;
    const { file, content } = await randomFile(from, 'f.bin', size);
    let ended = false;
    server.once('stream', (stream: MuxStream) => {
      // Reads nothing for longer than the timeout, then everything, then answers at once.
      setTimeout(() => {
        stream.resume();
        stream.on('end', () => {
          ended = true;
          stream.end(`${JSON.stringify({ ok: true, size, sha256: sha256(content) })}\n`);
        });
      }, 1500);
    });
    const stream = await client.StreamPool.createStream({ name: 'f.bin' });
    const result = await withTimeout(util.sendFile(file, stream, { statusTimeout: 1000 }), 5000, 'sendFile');
    assert.equal(ended, true);
    assert.deepEqual(result, { size, sha256: sha256(content) });
  });

  test('a bad statusTimeout rejects with ERR_INVALID_ARGUMENT before a stream is touched or opened', { timeout: 10_000 }, async (t) => {
    const from = await tempDir(t, 'from');
    const { client, server } = await connectPair(t, memoryTransport);
    const { file } = await randomFile(from, 'f.bin', 10);
    const seen = silentReceiver(server);
    const stream = await client.StreamPool.createStream({ name: 'f.bin' });
    for (const statusTimeout of [-1, 1.5, Number.NaN, 2 ** 31, Infinity]) {
      await assert.rejects(util.sendFile(file, stream, { statusTimeout }), (err: unknown) => {
        expectCode('ERR_INVALID_ARGUMENT')(err);
        assert.match((err as Error).message, /statusTimeout must be an integer from 0 to 2147483647/);
        return true;
      });
      await assert.rejects(util.sendFileOver(client, file, { statusTimeout }), expectCode('ERR_INVALID_ARGUMENT'));
    }
    assert.equal(stream.destroyed, false, 'the stream is left as it was');
    assert.equal(stream.stats().bytesSent, 0);
    assert.equal(seen.length, 1, 'sendFileOver opened no stream');
  });
});
