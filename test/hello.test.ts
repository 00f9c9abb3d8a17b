// HELLO settings (PROTOCOL.md section 4): the ranges parseSettings enforces are the ones
// the spec's table states.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MuxError } from '../src/errors';
import { encodeSettings, parseSettings, type PeerSettings } from '../src/protocol/hello';

const VALID: PeerSettings = {
  initialWindow: 262144,
  connectionWindow: 16777216,
  maxFrameSize: 65536,
  maxStreams: 16384,
  maxMetaBytes: 65536,
  hello: null,
};

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

function assertHandshakeFailure(payload: Buffer, message: RegExp): void {
  assert.throws(
    () => parseSettings(payload),
    (err) => err instanceof MuxError && err.code === 'ERR_HANDSHAKE_FAILED' && message.test(err.message),
  );
}

/** `field -> [min, max]` from the integer rows of the spec's HELLO table. */
function specRanges(): Map<string, [number, number]> {
  const spec = readFileSync(path.join(__dirname, '..', 'PROTOCOL.md'), 'utf8');
  const section = spec.slice(spec.indexOf('## 4. HELLO settings'), spec.indexOf('## 5.'));
  const ranges = new Map<string, [number, number]>();
  for (const m of section.matchAll(/^\| `(\w+)` *\| integer *\| (\d+)\.\.2\^31-1 /gm)) ranges.set(m[1], [Number(m[2]), 2 ** 31 - 1]);
  return ranges;
}

describe('HELLO settings', () => {
  test('encodes to JSON and parses back to the same settings', () => {
    const settings: PeerSettings = { ...VALID, hello: { token: 'abc', n: [1, 2] } };
    assert.equal(encodeSettings(settings).toString('utf8'), JSON.stringify(settings));
    assert.deepEqual(parseSettings(encodeSettings(settings)), settings);
  });

  test('the spec table gives a range for each of the five numeric fields', () => {
    assert.deepEqual([...specRanges().keys()].sort(), ['connectionWindow', 'initialWindow', 'maxFrameSize', 'maxMetaBytes', 'maxStreams']);
  });

  test('accepts each numeric field at both ends of its spec range and rejects one past either end', () => {
    for (const [key, [min, max]] of specRanges()) {
      for (const ok of [min, max]) assert.equal(parseSettings(json({ ...VALID, [key]: ok }))[key as keyof PeerSettings], ok);
      for (const bad of [min - 1, max + 1]) {
        assertHandshakeFailure(json({ ...VALID, [key]: bad }), new RegExp(`HELLO field ${key} must be an integer from ${min} to ${max}`));
      }
    }
  });

  test('rejects a numeric field that is missing, fractional or not a number', () => {
    for (const key of ['initialWindow', 'connectionWindow', 'maxFrameSize', 'maxStreams', 'maxMetaBytes']) {
      const { [key as keyof PeerSettings]: _omitted, ...missing } = VALID;
      assertHandshakeFailure(json(missing), new RegExp(`HELLO field ${key}`));
      assertHandshakeFailure(json({ ...VALID, [key]: 4096.5 }), new RegExp(`HELLO field ${key}`));
      assertHandshakeFailure(json({ ...VALID, [key]: '4096' }), new RegExp(`HELLO field ${key}`));
    }
  });

  test('rejects a payload that is not JSON or not an object', () => {
    assertHandshakeFailure(Buffer.from('{"initialWindow":'), /not valid JSON/);
    assertHandshakeFailure(Buffer.alloc(0), /not valid JSON/);
    for (const value of [null, [VALID], 'hello', 42]) assertHandshakeFailure(json(value), /must be a JSON object/);
  });

  test('treats a missing hello as null and ignores unknown fields', () => {
    const { hello: _hello, ...withoutHello } = VALID;
    const parsed = parseSettings(json({ ...withoutHello, futureSetting: 7 }));
    assert.deepEqual(parsed, VALID);
    assert.equal('futureSetting' in parsed, false);
  });
  test('the same greeting-free payload parses once: later connections share its frozen settings', () => {
    const bytes = json({ ...VALID, initialWindow: 300000 });
    const first = parseSettings(bytes);
    const again = parseSettings(Buffer.from(bytes));
    assert.equal(again, first);
    assert.ok(Object.isFrozen(first));
    // The cache holds a copy: a reused read buffer does not change what later payloads match.
    bytes.fill(0x20);
    assert.equal(parseSettings(json({ ...VALID, initialWindow: 300000 })), first);
    const other = parseSettings(json({ ...VALID, initialWindow: 300001 }));
    assert.equal(other.initialWindow, 300001);
    assert.equal(parseSettings(json({ ...VALID, initialWindow: 300000 })).initialWindow, 300000);
  });

  test("a payload with a greeting is parsed for each connection: no client shares another's hello", () => {
    const bytes = json({ ...VALID, hello: { token: 'a' } });
    const first = parseSettings(bytes);
    const second = parseSettings(bytes);
    assert.notEqual(second, first);
    assert.notEqual(second.hello, first.hello);
    assert.deepEqual(second, first);
  });

  test('a malformed payload fails even after a valid one was cached', () => {
    parseSettings(json(VALID));
    assertHandshakeFailure(json({ ...VALID, maxFrameSize: 1 }), /maxFrameSize/);
  });
  test('a padded payload is parsed each time, not kept: a peer cannot make the cache hold its bytes', () => {
    const padded = json({ ...VALID, padding: 'x'.repeat(1000) });
    const first = parseSettings(padded);
    assert.notEqual(parseSettings(padded), first);
    assert.equal(first.initialWindow, VALID.initialWindow);
  });
});
