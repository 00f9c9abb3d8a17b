/**
 * The connection's receive window on its own (connection-window.ts), with a fake connection:
 * when its credit goes back, alone or with a stream's update, and that it never grants more
 * than left the account. Nothing here depends on timing.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConnectionWindow, type ConnectionWindowHost } from '../src/session/connection-window';
import { HEADER_LENGTH } from '../src/protocol/constants';
import { windowUpdateThreshold } from '../src/session/window-tuning';

const MiB = 1024 * 1024;

interface Fake {
  window: ConnectionWindow;
  host: ConnectionWindowHost & { ready: boolean };
  /** Increments granted so far, in order. */
  grants: number[];
}

/** A connection window of `size` bytes (not growing) on a path measured fast or not. */
function fake(size: number, fastPath: boolean): Fake {
  const grants: number[] = [];
  const host = {
    ready: true,
    streamWindowsTotal: () => size,
    queueControl: (frame: Buffer) => {
      assert.equal(frame.readUInt32BE(4), 0, 'a connection update is on stream 0');
      grants.push(frame.readUInt32BE(HEADER_LENGTH));
    },
    windowUpdateThreshold: (window: number) => windowUpdateThreshold(window, fastPath),
  };
  const window = new ConnectionWindow(host, { connectionWindow: size, maxConnectionWindow: size }, { reserveGrowth: () => true });
  return { window, host, grants };
}

/** Receives and releases `bytes` (read by the application), as the session does. */
function consume(f: Fake, bytes: number): void {
  f.window.receive(bytes);
  f.window.release(bytes);
}

describe('ConnectionWindow', () => {
  test('a 16 MiB window grants after a quarter of itself left on a fast path, once a grant set the threshold', () => {
    const f = fake(16 * MiB, true);
    // Until its first grant the window does not know the path: 1 MiB, as on a long one.
    consume(f, MiB);
    assert.deepEqual(f.grants, [MiB]);
    consume(f, 4 * MiB - 1);
    assert.deepEqual(f.grants, [MiB], 'nothing before 4 MiB left');
    consume(f, 1);
    assert.deepEqual(f.grants, [MiB, 4 * MiB]);
  });

  test('on a long path the same window grants every 1 MiB', () => {
    const f = fake(16 * MiB, false);
    for (let i = 0; i < 4; i++) consume(f, MiB);
    assert.deepEqual(f.grants, [MiB, MiB, MiB, MiB]);
  });

  test("a stream's update takes whatever is owed along, and nothing when nothing is", () => {
    const f = fake(16 * MiB, true);
    f.window.releaseWithStreamUpdate();
    assert.deepEqual(f.grants, [], 'nothing owed: no frame');
    consume(f, 3000);
    f.window.releaseWithStreamUpdate();
    assert.deepEqual(f.grants, [3000]);
    f.window.releaseWithStreamUpdate();
    assert.deepEqual(f.grants, [3000], 'owed nothing again');
  });

  test('before the connection is ready nothing goes out, and what is owed waits for a later grant', () => {
    const f = fake(16 * MiB, false);
    f.host.ready = false;
    consume(f, 2 * MiB);
    f.window.releaseWithStreamUpdate();
    assert.deepEqual(f.grants, []);
    f.host.ready = true;
    f.window.releaseWithStreamUpdate();
    assert.deepEqual(f.grants, [2 * MiB]);
  });

  test('however releases and stream updates interleave, it grants exactly what left, never more', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 3 * MiB }), fc.constant(0)), { minLength: 1, maxLength: 60 }),
        (fastPath, steps) => {
          const f = fake(16 * MiB, fastPath);
          let released = 0;
          for (const bytes of steps) {
            if (bytes === 0) f.window.releaseWithStreamUpdate();
            else {
              consume(f, bytes);
              released += bytes;
            }
            const granted = f.grants.reduce((a, b) => a + b, 0);
            if (granted > released) return false;
          }
          f.window.releaseWithStreamUpdate();
          return f.grants.reduce((a, b) => a + b, 0) === released;
        },
      ),
    );
  });
});
