/**
 * When a connection measures its round trip, on a real server driven by a raw peer: the first
 * stream's probes, and one more probe for a later stream while the path is not measured fast
 * (a first reading taken while the processes were cold must not stand for good).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MuxConnection } from '../src/index';
import { Flag, FrameType } from '../src/protocol/constants';
import { isFastPath, type RoundTrips } from '../src/session/window-tuning';
import { waitFor } from './helpers/async';
import { rawClientForTest, serveForTest, type WirePeer } from './helpers/wire-peer';

interface RoundTripFigures extends RoundTrips {
  readonly probesDone: boolean;
}

function roundTrips(con: MuxConnection): RoundTripFigures {
  return (con as unknown as { liveness: RoundTripFigures }).liveness;
}

function serverPings(peer: WirePeer): number {
  return peer.frames.filter((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) === 0).length;
}

test(
  'a later stream probes again on a path first measured long, and the quick answer replaces the slow reading',
  { timeout: 15_000 },
  async (t) => {
    const { server, port } = await serveForTest(t);
    // The peer answers 20 ms late at first: what a cold process on loopback looks like, only longer.
    const { peer, con } = await rawClientForTest(t, server, port, { pingDelayMs: 20 });
    peer.open(1);
    // All three of the first stream's timed probes answered: any PING from here on is a new one.
    await waitFor(() => roundTrips(con).probesDone, 5000, "the first stream's probes");
    const first = roundTrips(con).minRtt!;
    assert.equal(isFastPath(roundTrips(con)), false, `measured ${first} ms: the slow answers read a long path`);

    peer.pingDelayMs = 0;
    const samples = roundTrips(con).samples;
    const before = serverPings(peer);
    peer.open(3);
    await waitFor(() => serverPings(peer) > before, 2000, 'a probe for the second stream');
    await waitFor(() => roundTrips(con).samples > samples, 5000, 'its answer');
    assert.ok(roundTrips(con).minRtt! < first, `the path now reads ${roundTrips(con).minRtt} ms, below the first ${first} ms`);
  },
);
