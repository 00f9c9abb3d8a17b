/**
 * Transfers through a fault-injecting proxy (test/helpers/fault-proxy.ts): bytes re-chunked
 * to single-byte writes, delayed, stalled, cut mid-frame, or one byte flipped. Every transfer
 * either completes with its hash verified or fails with a MuxError; nothing hangs (short
 * keepalive and handshake timeouts turn a dead link into a typed error); and receiveFile
 * leaves either nothing or the complete, verified file behind.
 */
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { MuxClient, MuxError, util, type MuxConnection, type MuxServer, type MuxStream } from '../src/index';
import { HOST, startServer, stopServer } from './helpers/mux';
import { sha256, waitFor, withTimeout } from './helpers/async';
import { FaultProxy, type ConnectionReport, type FaultSpec } from './helpers/fault-proxy';
import { echoHashing } from './helpers/streams';

/** Short timeouts: a link that stops carrying bytes becomes a typed error within about a second. */
const TIMEOUTS = {
  handshakeTimeout: 2000,
  keepAliveInterval: 250,
  keepAliveTimeout: 1000,
  openTimeout: 5000,
  closeTimeout: 2000,
};

const STREAMS = 4;
const STREAM_BYTES = 96 * 1024;
const FILE_BYTES = 384 * 1024;
/** Bound for one scenario; a hang shows as this message rather than as the test timeout. */
const SCENARIO_MS = 15_000;

type Expect = 'complete' | 'fail' | 'either';

/** Everything that went wrong on either side, to be checked for types afterwards. */
class ErrorLog {
  readonly entries: { where: string; err: unknown }[] = [];
  add(where: string, err: unknown): void {
    this.entries.push({ where, err });
  }
  summary(): string {
    if (this.entries.length === 0) return 'no errors';
    return this.entries
      .map(
        ({ where, err }) =>
          `${where}: ${err instanceof MuxError ? err.code : 'untyped'} ${err instanceof Error ? err.message : String(err)}`,
      )
      .join('; ');
  }
  /** Every error is a MuxError with a code: never a plain untyped failure. */
  assertTyped(label: string): void {
    for (const { where, err } of this.entries) {
      assert.ok(
        err instanceof MuxError,
        `${label}: ${where} failed with a MuxError, got ${err instanceof Error ? err.stack : String(err)}`,
      );
      assert.match(err.code, /^ERR_[A-Z_]+$/, `${label}: ${where} has a code`);
    }
  }
}

type Timeouts = typeof TIMEOUTS;

interface Rig {
  timeouts: Timeouts;
  server: MuxServer;
  proxy: FaultProxy;
  errors: ErrorLog;
  serverConnections: MuxConnection[];
}

/** A server with short timeouts behind a proxy with `specs`; `onStream` serves each stream. */
async function rig(
  t: TestContext,
  specs: FaultSpec[],
  timeouts: Timeouts,
  onStream: (stream: MuxStream, errors: ErrorLog) => void,
): Promise<Rig> {
  const errors = new ErrorLog();
  const { server, port } = await startServer(timeouts);
  t.after(() => stopServer(server));
  const serverConnections: MuxConnection[] = [];
  server.on('error', (err) => errors.add('the server (error event: never expected)', err ?? new Error('server error')));
  server.on('clientError', (err) => errors.add('the server handshake (clientError)', err));
  server.on('connection', (con: MuxConnection) => {
    serverConnections.push(con);
    con.on('error', (err) => errors.add("the server's connection", err));
    con.on('stream', (stream: MuxStream) => onStream(stream, errors));
  });
  const proxy = await FaultProxy.start(port, specs);
  t.after(() => proxy.close());
  return { timeouts, server, proxy, errors, serverConnections };
}

/** A client through the proxy; resolves once it is connected, or null if it never connects. */
async function connectThrough(t: TestContext, r: Rig): Promise<MuxClient | null> {
  const client = new MuxClient(r.proxy.port, HOST, r.timeouts);
  t.after(() => client.destroy());
  client.on('error', (err) => r.errors.add('the client connection', err));
  const outcome = await withTimeout(
    new Promise<boolean>((resolve) => {
      client.once('connect', () => resolve(true));
      client.once('close', () => resolve(false));
    }),
    SCENARIO_MS,
    'the client to connect or give up',
  );
  return outcome ? client : null;
}

/** After the client is done, every server-side connection closes too: nothing is left open. */
async function settle(client: MuxClient | null, r: Rig, graceful: boolean): Promise<void> {
  if (client) {
    if (graceful) client.close();
    else if (!client.closing) client.destroy();
    await waitFor(() => !client.ready, SCENARIO_MS, 'the client to close');
  }
  await waitFor(() => r.server.connectionCount === 0, SCENARIO_MS, 'the server to drop the proxied connection');
}

// ---- several streams, echoed -------------------------------------------------------------

/** Echoes a stream back and checks what it read against the SHA-256 the opener put in its meta. */
function echo(stream: MuxStream, errors: ErrorLog, mismatches: string[]): void {
  const { sha256: expected, i } = stream.meta as { sha256: string; i: number };
  stream.on('error', (err) => errors.add(`server stream ${i}`, err));
  echoHashing(stream, (got) => {
    if (got !== expected) mismatches.push(`server stream ${i} read ${got}, expected ${expected}`);
  });
}

/** Writes `payload` in 16 KiB pieces, waiting on backpressure; rejects if the stream dies. */
async function writeAll(stream: MuxStream, payload: Buffer): Promise<void> {
  for (let offset = 0; offset < payload.length; offset += 16 * 1024) {
    if (stream.destroyed) throw stream.errored ?? new Error('stream destroyed without an error while writing');
    if (!stream.write(payload.subarray(offset, offset + 16 * 1024))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          stream.off('drain', done);
          stream.off('close', done);
          resolve();
        };
        stream.on('drain', done);
        stream.on('close', done);
      });
    }
  }
  if (stream.destroyed) throw stream.errored ?? new Error('stream destroyed without an error while writing');
  stream.end();
}

/** Everything the peer sends, or the stream's error (a plain Error if it closed without one). */
function readAll(stream: MuxStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
    stream.once('close', () => {
      if (!stream.readableEnded) reject(stream.errored ?? new Error('stream closed before its end, without an error'));
    });
  });
}

type Transfer = { ok: true } | { ok: false; err: unknown };

async function echoTransfer(client: MuxClient, i: number, errors: ErrorLog, mismatches: string[]): Promise<Transfer> {
  const payload = randomBytes(STREAM_BYTES);
  const digest = sha256(payload);
  try {
    const stream = await client.StreamPool.createStream({ i, sha256: digest });
    const echoed = readAll(stream);
    echoed.catch(() => {}); // looked at below, after the writes
    await writeAll(stream, payload);
    const data = await echoed;
    if (sha256(data) !== digest) mismatches.push(`client stream ${i} got back ${data.length} bytes that do not match`);
    return { ok: true };
  } catch (err) {
    errors.add(`client stream ${i}`, err);
    return { ok: false, err };
  }
}

interface Outcome {
  transfers: Transfer[];
  report: ConnectionReport | undefined;
  errors: ErrorLog;
}

async function streamsScenario(t: TestContext, c: Case): Promise<Outcome> {
  const { name: label, specs, streams: expect } = c;
  const mismatches: string[] = [];
  const r = await rig(t, specs, { ...TIMEOUTS, ...c.timeouts }, (stream, errors) => echo(stream, errors, mismatches));
  const client = await connectThrough(t, r);
  const transfers = client
    ? await withTimeout(
        Promise.all(Array.from({ length: STREAMS }, (_, i) => echoTransfer(client, i, r.errors, mismatches))),
        SCENARIO_MS,
        `${label}: every stream transfer to complete or fail`,
      )
    : Array.from({ length: STREAMS }, (): Transfer => ({ ok: false, err: r.errors.entries[0]?.err }));
  const allOk = transfers.every((x) => x.ok);
  await settle(client, r, allOk);

  assert.deepEqual(mismatches, [], `${label}: no transfer ever delivers altered bytes as if they were good`);
  r.errors.assertTyped(label);
  if (!client) assert.ok(r.errors.entries.length > 0, `${label}: a client that never connects reports why`);
  checkExpectation(
    label,
    expect,
    allOk,
    transfers.some((x) => !x.ok),
    r.errors,
  );
  return { transfers, report: r.proxy.connections[0], errors: r.errors };
}

function checkExpectation(label: string, expect: Expect, complete: boolean, failed: boolean, errors: ErrorLog): void {
  if (expect === 'complete') assert.ok(complete, `${label}: the transfer completes (${errors.summary()})`);
  if (expect === 'fail') assert.ok(failed, `${label}: the transfer fails`);
}

// ---- a file with sendFile / receiveFile ------------------------------------------------------

async function tempDir(t: TestContext, label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tsm-fault-${label}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function fileScenario(t: TestContext, c: Case): Promise<ConnectionReport | undefined> {
  const { name: label, specs, file: expect } = c;
  const [from, to] = [await tempDir(t, 'from'), await tempDir(t, 'to')];
  const content = randomBytes(FILE_BYTES);
  const source = path.join(from, 'source.bin');
  await writeFile(source, content);
  const target = path.join(to, 'copy.bin');
  const received: Promise<unknown>[] = [];
  const r = await rig(t, specs, { ...TIMEOUTS, ...c.timeouts }, (stream, errors) => {
    const done = util.receiveFile(target, stream);
    received.push(done.catch((err: unknown) => errors.add('receiveFile', err)));
    stream.on('error', () => {}); // its failures reach receiveFile's promise, recorded above
  });
  const client = await connectThrough(t, r);
  let sent = false;
  if (client) {
    try {
      const stream = await client.StreamPool.createStream({ name: 'copy.bin' });
      const result = await withTimeout(util.sendFile(source, stream), SCENARIO_MS, `${label}: sendFile to settle`);
      assert.equal(result.sha256, sha256(content), `${label}: the receiver reports the SHA-256 of what was sent`);
      sent = true;
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      r.errors.add('sendFile', err);
    }
  }
  await settle(client, r, sent);
  await withTimeout(Promise.all(received), SCENARIO_MS, `${label}: receiveFile to settle`);
  r.errors.assertTyped(`${label} (file)`);

  // Never a partial or temporary file: nothing, or exactly the complete verified file.
  const left = await readdir(to);
  if (left.length > 0) {
    assert.deepEqual(left, ['copy.bin'], `${label}: only the finished file is ever left, got ${left.join(', ')}`);
    assert.equal(sha256(readFileSync(target)), sha256(content), `${label}: a file left behind is complete and verified`);
  }
  if (sent) assert.deepEqual(left, ['copy.bin'], `${label}: a transfer that succeeded left the file`);
  checkExpectation(`${label} (file)`, expect, sent, !sent, r.errors);
  return r.proxy.connections[0];
}

// ---- the cases ------------------------------------------------------------------------------

interface Case {
  name: string;
  specs: FaultSpec[];
  streams: Expect;
  file: Expect;
  /** Overrides of {@link TIMEOUTS}. */
  timeouts?: Partial<Timeouts>;
  /** The fault must have fired on the streams' connection (a fault that never fired proves nothing). */
  fires?: 'up' | 'down';
}

const CASES: Case[] = [
  {
    name: 'every byte re-chunked into its own 1-byte write, both ways',
    specs: [{ fault: { kind: 'rechunk' } }],
    // A link this slow (a few hundred KB/s) behind deep socket buffers delays a ping answer by
    // seconds, as bufferbloat does: a keepalive timeout must allow for that. Its speed is the
    // proxy's CPU time, so on a loaded machine an OPEN (and its ACCEPT) can wait past 5 s too.
    timeouts: { keepAliveTimeout: 10_000, openTimeout: 10_000 },
    streams: 'complete',
    file: 'complete',
  },
  { name: 'every chunk delayed by 2 ms, both ways', specs: [{ fault: { kind: 'delay', ms: 2 } }], streams: 'complete', file: 'complete' },
  {
    name: 'a 300 ms stall both ways after 100 KB, shorter than keepalive can notice',
    specs: [{ fault: { kind: 'stall', afterBytes: 100_000, ms: 300 } }],
    streams: 'complete',
    file: 'complete',
    fires: 'up',
  },
  {
    name: 'a 4 s stall both ways after 100 KB, which keepalive turns into a closed connection',
    specs: [{ fault: { kind: 'stall', afterBytes: 100_000, ms: 4000 } }],
    streams: 'fail',
    file: 'fail',
    fires: 'up',
  },
  {
    name: 'the connection cut inside a DATA payload, client to server',
    specs: [{ fault: { kind: 'cut', at: 150_001 }, directions: ['up'] }],
    streams: 'fail',
    file: 'fail',
    fires: 'up',
  },
  {
    name: 'the connection cut inside a frame header, server to client',
    specs: [{ fault: { kind: 'cut', at: { frame: 8, byte: 5 } }, directions: ['down'] }],
    streams: 'fail',
    file: 'either',
    fires: 'down',
  },
  {
    name: 'the connection cut inside the HELLO',
    specs: [{ fault: { kind: 'cut', at: 10 }, directions: ['up'] }],
    streams: 'fail',
    file: 'fail',
    fires: 'up',
  },
  {
    name: 'a flipped magic byte from the client',
    specs: [{ fault: { kind: 'flip', at: 0 }, directions: ['up'] }],
    streams: 'fail',
    file: 'fail',
    fires: 'up',
  },
  {
    name: "a flipped type byte in the server's HELLO",
    specs: [{ fault: { kind: 'flip', at: { frame: 0, byte: 1 } }, directions: ['down'] }],
    streams: 'fail',
    file: 'fail',
    fires: 'down',
  },
  {
    name: 'a flipped byte inside the JSON of the client HELLO',
    specs: [{ fault: { kind: 'flip', at: { frame: 0, byte: 14 } }, directions: ['up'] }],
    streams: 'fail',
    file: 'fail',
    fires: 'up',
  },
  ...[0, 1, 7, 11].map((byte): Case => ({
    name: `a flipped header byte ${byte} of a frame mid-transfer, client to server`,
    // Frame 6 comes after the HELLO and the OPEN, within the first window of DATA, so it
    // exists however the transfer is framed (a 384 KiB file can take as few as 11 frames).
    specs: [{ fault: { kind: 'flip', at: { frame: 6, byte } }, directions: ['up'] }],
    streams: 'fail',
    file: 'fail',
    fires: 'up',
  })),
  {
    name: 'a flipped header byte of a frame mid-transfer, server to client',
    specs: [{ fault: { kind: 'flip', at: { frame: 12, byte: 0 } }, directions: ['down'] }],
    streams: 'fail',
    file: 'either',
    fires: 'down',
  },
  {
    name: 'a flipped byte deep in the data, client to server',
    // For the echoed streams this lands in a header or a payload; a payload flip is invisible to
    // the muxer (it has no checksum: TCP's job), so the streams only run the header case above.
    // The file carries its own SHA-256: whatever it hits, the transfer fails typed.
    specs: [{ fault: { kind: 'flip', at: 200_003 }, directions: ['up'] }],
    streams: 'either',
    file: 'fail',
    fires: 'up',
  },
];

describe('transfers through a fault-injecting proxy', () => {
  for (const c of CASES) {
    test(`${c.name}: every transfer completes verified or fails with a MuxError, and nothing hangs`, { timeout: 40_000 }, async (t) => {
      const runStreams = !(c.streams === 'either' && c.specs.some((s) => s.fault.kind === 'flip'));
      const [outcome, fileReport] = await Promise.all([runStreams ? streamsScenario(t, c) : Promise.resolve(null), fileScenario(t, c)]);
      // A fault that never fired proves nothing: where a failure is expected, it did fire.
      for (const [what, report, expect] of [
        ['streams', outcome?.report, runStreams ? c.streams : 'either'],
        ['file', fileReport, c.file],
      ] as const) {
        if (!c.fires || expect === 'either') continue;
        const side = report?.[c.fires];
        assert.ok(side, `${c.name} (${what}): the proxy carried the connection`);
        assert.notEqual(side.firedAt, null, `${c.name} (${what}): the fault fired (${side.frames} frames went ${c.fires})`);
      }
    });
  }
});
