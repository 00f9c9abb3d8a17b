/**
 * The attacks of issue 11, one exported function each: `(port, { durationMs, signal })`
 * runs against a server on loopback until the duration is up (or the signal aborts, or the
 * server is gone), cuts every connection it made, and resolves to what it sent and how the
 * server answered. None of them rejects, and each stops by itself.
 *
 * Unless an attack says otherwise the attacker obeys the protocol: it answers PINGs (an
 * attacker that does not read its socket cannot), stays within the windows it was granted
 * and within `maxStreams`, so whatever harm it does is harm a conforming peer can do. When the server closes a connection, the attack connects
 * again and carries on, as a real attacker would: a defence must hold for the whole run.
 */
import { setMaxListeners } from 'node:events';
import { writeHeader, encodeCodeAndReason } from '../../src/codec/encode';
import { DEFAULTS } from '../../src/config';
import { FrameType, HEADER_LENGTH, MAGIC, WireErrorCode } from '../../src/protocol/constants';
import { Tally, type AttackReport } from './report';
import type { TargetMetas } from './target';
import { nextTurn, sleep } from './timing';
import { attackerHello, connectPeer, preface, rawSocket, watchServer, type PeerOptions, type WirePeer } from './wire';

/** What every attack is given. */
export interface AttackOptions {
  /** How long to attack, milliseconds. */
  durationMs: number;
  /** Stops the attack early (the server died, the run is interrupted). */
  signal: AbortSignal;
  /** Metas the target gives a meaning to; default: the echo target's `{mode:'echo'}` and `{mode:'hold'}`. */
  metas?: TargetMetas;
}

/** An attack: see the module comment. */
export type Attack = (port: number, options: AttackOptions) => Promise<AttackReport>;

const ECHO_TARGET_METAS: TargetMetas = { echo: { mode: 'echo' }, hold: { mode: 'hold' } };

// After the server closed a connection: wait this long, and give up after this many failed
// connects in a row (the server is dead or refuses everyone).
const RECONNECT_DELAY_MS = 100;
const MAX_CONNECT_FAILURES = 5;
/** A peer that did not read gets this long at the end to read what the server said (a GO_AWAY behind data). */
const DRAIN_AT_END_MS = 1000;
/** Longest a sleep may be (setTimeout's limit): "until the attack stops". */
const UNTIL_STOPPED = 0x7fffffff;

// ---- the attacks ---------------------------------------------------------------------------

/**
 * 8 connections, each opening streams with a meta as large as the server accepts (a 64 KiB
 * string) as fast as it takes them, up to `maxStreams`, and never sending data: the server
 * keeps every open stream's meta.
 */
export const metaFlood: Attack = (port, options) =>
  run('meta-flood', options, (stop, tally, metas) =>
    onConnections(8, port, stop, tally, {}, (peer) => {
      const meta = paddedMeta(metas.echo, peer.server!.maxMetaBytes);
      return openUpToLimit(peer, stop, meta);
    }),
  );

/**
 * One connection opening streams whose meta is `[[[[...]]]]` in 64,000 bytes: 32,000
 * levels of arrays, about 1.9 MB of heap each once parsed, kept for as long as the stream is.
 */
export const nestedMeta: Attack = (port, options) =>
  run('nested-meta', options, (stop, tally) =>
    onConnections(1, port, stop, tally, {}, (peer) => openUpToLimit(peer, stop, nested(64_000))),
  );

/**
 * 1-byte DATA frames round-robin over many streams the application holds but never reads,
 * within every window: the bytes are few (the memory budget never trips), the frames many.
 */
export const tinyFramesUnread: Attack = (port, options) =>
  run('tiny-frames-unread', options, (stop, tally, metas) =>
    onConnections(1, port, stop, tally, {}, (peer) => tinyFrames(peer, stop, json(metas.hold))),
  );

/**
 * 1-byte DATA frames on many echo streams, within the windows, never reading what comes
 * back: every echoed byte waits in the server, in its stream's send queue or its receive
 * queue. (Reading slowly, `read: 'slow'`, lets the server shed most of it; not reading at
 * all is the worst a peer can do within the rules, so that is what is measured.)
 */
export const tinyFramesEcho: Attack = (port, options) =>
  run('tiny-frames-echo', options, (stop, tally, metas) =>
    onConnections(1, port, stop, tally, { read: 'none' }, (peer) => tinyFrames(peer, stop, json(metas.echo))),
  );

/**
 * 40 connections, each filling the per-connection memory budget (64 MiB by default) with
 * data for streams the application never reads, then staying: the budget bounds one
 * connection, nothing bounds their number.
 */
export const manyConnections: Attack = (port, options) =>
  run('many-connections', options, (stop, tally, metas) =>
    onConnections(40, port, stop, tally, {}, async (peer) => {
      const sent = await fill(peer, stop, json(metas.hold), DEFAULTS.maxBufferedBytes * 1.25);
      tally.add('filledConnections', sent >= DEFAULTS.maxBufferedBytes ? 1 : 0);
    }),
  );

/**
 * Waves of 2,000 connections that send the magic and half of a 64 KiB HELLO, then wait:
 * each holds a half-parsed HELLO and a file descriptor until the handshake timeout.
 */
export const halfHellos: Attack = (port, options) => run('half-hellos', options, (stop, tally) => hellosInWaves(port, stop, tally));

/**
 * One connection sending OPEN then RESET for the same stream, as fast as the server reads
 * them (CVE-2023-44487, HTTP/2 "rapid reset"): never more than one stream open, all the
 * server's work for nothing.
 */
export const rapidReset: Attack = (port, options) =>
  run('rapid-reset', options, async (stop, tally, metas) => {
    await onConnections(1, port, stop, tally, {}, async (peer) => {
      const meta = json(metas.echo);
      const reset = encodeCodeAndReason(WireErrorCode.CANCEL);
      const pairLength = 2 * HEADER_LENGTH + meta.length + reset.length;
      const PAIRS = 512;
      while (!stop.aborted && !peer.closed) {
        // A fresh buffer per write: the socket keeps a reference until it is sent.
        const batch = Buffer.allocUnsafe(PAIRS * pairLength);
        let offset = 0;
        let pairs = 0;
        for (; pairs < PAIRS; pairs++) {
          const id = peer.takeId();
          if (id === null) break;
          offset = putFrame(batch, offset, FrameType.OPEN, id, meta);
          offset = putFrame(batch, offset, FrameType.RESET, id, reset);
        }
        if (pairs === 0) return tally.note('stream ids used up');
        peer.write(batch.subarray(0, offset), pairs * 2);
        tally.add('pairs', pairs);
        if (!(await peer.ready(stop))) return;
        await nextTurn();
      }
    });
    // Written to the socket; the server's pace shows in the ACCEPTs it sent back.
    tally.extra.pairsPerSecond = (tally.extra.pairs ?? 0) / (tally.elapsed() / 1000);
    tally.extra.acceptsPerSecond = tally.accepted / (tally.elapsed() / 1000);
  });

/**
 * One connection that opens `maxStreams` streams and keeps them, then floods OPENs with
 * 64 KiB of nested arrays as meta: each is refused (STREAM_LIMIT), but only after the
 * server parsed it. The only attack here that breaks a rule (the opener must not exceed
 * `maxStreams`), and the protocol answers it with a REFUSE, not an error.
 */
export const refusedNested: Attack = (port, options) =>
  run('refused-nested', options, (stop, tally, metas) =>
    onConnections(1, port, stop, tally, {}, async (peer) => {
      const limit = peer.server!.maxStreams;
      const hold = json(metas.hold);
      while (!stop.aborted && !peer.closed && peer.openStreams < limit) {
        for (let i = 0; i < 256 && peer.openStreams < limit; i++) peer.open(hold);
        if (!(await peer.ready(stop))) return;
        await nextTurn();
      }
      tally.add('heldStreams', peer.openStreams);
      const meta = nested(peer.server!.maxMetaBytes);
      const header = (id: number): Buffer => {
        const bytes = Buffer.allocUnsafe(HEADER_LENGTH);
        writeHeader(bytes, 0, FrameType.OPEN, 0, id, meta.length);
        return bytes;
      };
      while (!stop.aborted && !peer.closed) {
        const frames: Buffer[] = [];
        for (let i = 0; i < 16; i++) {
          const id = peer.takeId();
          if (id === null) return tally.note('stream ids used up');
          frames.push(header(id), meta);
        }
        peer.write(frames, 16);
        tally.add('refusableOpens', 16);
        if (!(await peer.ready(stop))) return;
        await nextTurn();
      }
    }),
  );

/**
 * One connection that opens echo streams and sends their windows' worth, and never reads
 * its socket: the echo has nowhere to go, and the connection stays.
 */
export const neverReads: Attack = (port, options) =>
  run('never-reads', options, (stop, tally, metas) =>
    onConnections(1, port, stop, tally, { read: 'none' }, async (peer) => {
      // Bounded, in case a server somehow keeps reading: 1 GiB is far past any budget.
      await fill(peer, stop, json(metas.echo), 1024 * 1024 * 1024);
    }),
  );

/** Every attack by name, in the order the runner runs them. */
export const ATTACKS: Record<string, Attack> = {
  'meta-flood': metaFlood,
  'nested-meta': nestedMeta,
  'tiny-frames-unread': tinyFramesUnread,
  'tiny-frames-echo': tinyFramesEcho,
  'many-connections': manyConnections,
  'half-hellos': halfHellos,
  'rapid-reset': rapidReset,
  'refused-nested': refusedNested,
  'never-reads': neverReads,
};

// ---- the shared machinery -----------------------------------------------------------------

/**
 * Runs `body` until `options.durationMs` is up or `options.signal` aborts (whichever is
 * first: the attack stops by itself), and reports. A failure inside is reported as a note.
 */
async function run(
  name: string,
  options: AttackOptions,
  body: (stop: AbortSignal, tally: Tally, metas: TargetMetas) => Promise<void>,
): Promise<AttackReport> {
  const tally = new Tally(name);
  const stop = AbortSignal.any([options.signal, AbortSignal.timeout(options.durationMs)]);
  // Every connection and every wait listens to it: thousands of listeners are expected.
  setMaxListeners(0, stop);
  try {
    await body(stop, tally, options.metas ?? ECHO_TARGET_METAS);
  } catch (err) {
    tally.note(`attack failed: ${(err as Error).stack ?? String(err)}`);
  }
  return tally.report();
}

/**
 * Keeps `count` attacker connections busy with `work` until `stop`: each connects, runs
 * `work`, then stays (answering PINGs) until the server closes it or the attack ends; a
 * connection the server closed is made again.
 */
async function onConnections(
  count: number,
  port: number,
  stop: AbortSignal,
  tally: Tally,
  peerOptions: Omit<PeerOptions, 'tally' | 'signal'>,
  work: (peer: WirePeer) => Promise<void>,
): Promise<void> {
  const one = async (): Promise<void> => {
    let failures = 0;
    let connected = false;
    while (!stop.aborted) {
      const peer = await connectPeer(port, { ...peerOptions, tally, signal: stop });
      if (peer === null) {
        if (stop.aborted) return;
        if (++failures >= MAX_CONNECT_FAILURES) return tally.note(`gave up after ${failures} failed connects in a row`);
        await sleep(RECONNECT_DELAY_MS * failures, stop);
        continue;
      }
      failures = 0;
      if (connected) tally.reconnects++;
      connected = true;
      try {
        await work(peer);
        await Promise.race([peer.whenClosed, sleep(UNTIL_STOPPED, stop)]);
      } catch (err) {
        tally.note(`attack failed: ${(err as Error).stack ?? String(err)}`);
      } finally {
        if (!peer.closed && peerOptions.read !== undefined && peerOptions.read !== 'all') await peer.drainAtEnd(DRAIN_AT_END_MS);
        if (!peer.closed) tally.openAtEnd++;
        peer.destroy();
      }
      if (!stop.aborted) await sleep(RECONNECT_DELAY_MS, stop);
    }
  };
  await Promise.all(Array.from({ length: count }, one));
}

/** Opens streams with `meta` as fast as the socket takes them, keeping `maxStreams` open, until `stop`. */
async function openUpToLimit(peer: WirePeer, stop: AbortSignal, meta: Buffer): Promise<void> {
  const limit = peer.server!.maxStreams;
  while (!stop.aborted && !peer.closed) {
    if (peer.openStreams >= limit) {
      // At the limit: a refused or reset stream frees a place.
      await peer.changed(stop, 1000);
      continue;
    }
    for (let i = 0; i < 32 && peer.openStreams < limit; i++) {
      if (peer.open(meta) === null) return;
    }
    if (!(await peer.ready(stop))) return;
    await nextTurn();
  }
}

/** Streams whose frames go out round-robin at once; more are opened as these run dry. */
const TINY_FRAME_STREAMS = 256;
/** 1-byte frames per socket write (13 bytes each: about 200 KiB). */
const TINY_FRAMES_PER_WRITE = 16_384;

/**
 * 1-byte DATA frames round-robin over streams opened with `meta`, each within its credit
 * (and the connection's); streams that run dry are replaced by new ones up to `maxStreams`.
 */
async function tinyFrames(peer: WirePeer, stop: AbortSignal, meta: Buffer): Promise<void> {
  const limit = peer.server!.maxStreams;
  const frameLength = HEADER_LENGTH + 1;
  let ids: number[] = [];
  let cursor = 0;
  while (!stop.aborted && !peer.closed) {
    ids = ids.filter((id) => peer.hasStream(id));
    const withCredit = ids.reduce((n, id) => n + (peer.creditOf(id) > 0 ? 1 : 0), 0);
    for (let i = withCredit; i < TINY_FRAME_STREAMS && peer.openStreams < limit && peer.connectionCredit > 0; i++) {
      const id = peer.open(meta);
      if (id === null) break;
      ids.push(id);
    }
    const batch = Buffer.allocUnsafe(TINY_FRAMES_PER_WRITE * frameLength);
    let frames = 0;
    // `dry` counts streams passed in a row without credit: a whole round of them ends the batch.
    for (let dry = 0; frames < TINY_FRAMES_PER_WRITE && dry < ids.length; cursor++) {
      if (cursor >= ids.length) cursor = 0;
      const id = ids[cursor];
      if (peer.creditOf(id) <= 0) {
        dry++;
        continue;
      }
      dry = 0;
      const offset = frames * frameLength;
      writeHeader(batch, offset, FrameType.DATA, 0, id, 1);
      batch[offset + HEADER_LENGTH] = 0x78;
      peer.spend(id, 1);
      frames++;
    }
    if (frames === 0) {
      // Every window is spent and no stream may be added: wait for credit.
      await peer.changed(stop, 1000);
      continue;
    }
    peer.write(batch.subarray(0, frames * frameLength), frames);
    if (!(await peer.ready(stop))) return;
    await nextTurn();
  }
}

/**
 * Opens streams with `meta` one after another and sends each its whole window in frames as
 * large as the server takes, until `total` bytes are sent, `maxStreams` are open, or the
 * socket stops taking more (the wait lasts until `stop`). Returns the bytes sent.
 */
async function fill(peer: WirePeer, stop: AbortSignal, meta: Buffer, total: number): Promise<number> {
  const payload = Buffer.alloc(Math.min(peer.server!.maxFrameSize, 64 * 1024), 0x78);
  let sent = 0;
  while (!stop.aborted && !peer.closed && sent < total && peer.openStreams < peer.server!.maxStreams) {
    if (peer.connectionCredit <= 0) {
      await peer.changed(stop, 1000);
      continue;
    }
    const id = peer.open(meta);
    if (id === null) break;
    for (let credit = peer.creditOf(id); credit > 0 && sent < total; credit = peer.creditOf(id)) {
      const piece = payload.subarray(0, Math.min(payload.length, credit));
      const header = Buffer.allocUnsafe(HEADER_LENGTH);
      writeHeader(header, 0, FrameType.DATA, 0, id, piece.length);
      peer.spend(id, piece.length);
      sent += piece.length;
      if (!peer.write([header, piece], 1) && !(await peer.ready(stop))) return sent;
    }
    await nextTurn();
  }
  return sent;
}

const WAVE_SIZE = 2000;
/** Connects in progress at once: more only overflow the listen backlog and wait for SYN retries. */
const WAVE_CONNECTS_IN_FLIGHT = 256;
/** A wave ends when the server has closed every connection, or after this long (its handshake timeout is 10 s by default). */
const WAVE_MS = 15_000;
/** The HELLO a half-hello announces: as long as the server accepts (64 KiB by default). */
const HALF_HELLO_LENGTH = 64 * 1024;

async function hellosInWaves(port: number, stop: AbortSignal, tally: Tally): Promise<void> {
  // A real HELLO, padded to the limit; each connection sends its first half.
  const base = attackerHello();
  const padding = HALF_HELLO_LENGTH - JSON.stringify({ ...base, pad: '' }).length;
  const full = preface({ ...base, pad: 'x'.repeat(padding) });
  const half = full.subarray(0, MAGIC.length + HEADER_LENGTH + HALF_HELLO_LENGTH / 2);
  while (!stop.aborted) {
    const waveEnd = AbortSignal.any([stop, AbortSignal.timeout(WAVE_MS)]);
    setMaxListeners(0, waveEnd);
    const open = new Set<ReturnType<typeof rawSocket>>();
    const closes: Promise<void>[] = [];
    let started = 0;
    const connectOne = async (): Promise<void> => {
      while (started < WAVE_SIZE && !waveEnd.aborted) {
        started++;
        const socket = rawSocket(port);
        let connectedAt = 0;
        let sawGoAway = false;
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        closes.push(closed);
        watchServer(socket, tally, () => (sawGoAway = true));
        const connected = await Promise.race([
          new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true))),
          closed.then(() => false),
          sleep(WAVE_MS, waveEnd).then(() => false),
        ]);
        if (!connected) {
          tally.connectFailures++;
          socket.destroy();
          continue;
        }
        connectedAt = performance.now();
        tally.connections++;
        open.add(socket);
        socket.write(half);
        tally.framesSent++;
        tally.bytesSent += half.length;
        void closed.then(() => {
          // Still in the set: nobody on our side closed it.
          if (open.delete(socket)) tally.closed(performance.now() - connectedAt, sawGoAway);
        });
      }
    };
    await Promise.all(Array.from({ length: WAVE_CONNECTS_IN_FLIGHT }, connectOne));
    tally.add('waves', 1);
    tally.extra.peakOpen = Math.max(tally.extra.peakOpen ?? 0, open.size);
    // Until the server has closed them all, or the wave is over.
    await Promise.race([Promise.all(closes), sleep(WAVE_MS, waveEnd)]);
    const survivors = [...open];
    if (stop.aborted) tally.openAtEnd += survivors.length;
    else tally.add('keptPastWave', survivors.length);
    open.clear();
    for (const socket of survivors) socket.destroy();
  }
}

// ---- small builders -------------------------------------------------------------------------

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** `base` with a `pad` string that makes its JSON exactly `size` bytes. */
function paddedMeta(base: object, size: number): Buffer {
  const padding = Math.max(0, size - JSON.stringify({ ...base, pad: '' }).length);
  return json({ ...base, pad: 'x'.repeat(padding) });
}

/** `[[[...]]]` in `size` bytes (rounded down to an even number): size / 2 levels of arrays. */
function nested(size: number): Buffer {
  const depth = Math.floor(size / 2);
  return Buffer.from('['.repeat(depth) + ']'.repeat(depth), 'latin1');
}

/** Writes one frame (header and payload) into `target` at `offset`; returns the offset after it. */
function putFrame(target: Buffer, offset: number, type: FrameType, id: number, payload: Buffer): number {
  writeHeader(target, offset, type, 0, id, payload.length);
  payload.copy(target, offset + HEADER_LENGTH);
  return offset + HEADER_LENGTH + payload.length;
}
