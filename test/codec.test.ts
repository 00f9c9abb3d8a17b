// The pure codec: encoder functions and the incremental FrameDecoder. Every chunked test
// pushes each chunk to the decoder with its own push() call, each chunk a separate Buffer;
// nothing is joined back together before decoding.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder, type DecoderLimits, type FrameSink } from '../src/codec/decoder';
import { decodeCodeAndReason, encodeCodeAndReason, encodeFrame, encodeHeader, encodeWindowUpdate, writeHeader } from '../src/codec/encode';
import { MuxError } from '../src/errors';
import { Flag, FrameType, MAGIC, PROTOCOL_VERSION, WireErrorCode } from '../src/protocol/constants';
import { encodeSettings, type PeerSettings } from '../src/protocol/hello';
import { bytewise, CollectingSink, decodeChunks, splitAt, TEST_LIMITS, type DecodedFrame } from './helpers/collect';
import { wire } from './helpers/frame-builder';
import { referenceDecode } from './helpers/reference-decoder';

// Seeded runs are reproducible: FC_SEED=<seed printed by a failure> reruns that case.
const FC = { numRuns: 150, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) };

// ---- frames to test with, each with the frame the decoder must report ------------------

interface Sample {
  bytes: Buffer;
  expected: DecodedFrame;
}

function control(type: FrameType, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Sample {
  return { bytes: encodeFrame(type, flags, streamId, payload), expected: { kind: 'frame', type, flags, streamId, payload } };
}

function data(streamId: number, payload: Buffer, fin = false): Sample {
  const flags = fin ? Flag.FIN : 0;
  return {
    bytes: Buffer.concat([encodeHeader(FrameType.DATA, flags, streamId, payload.length), payload]),
    expected: { kind: 'frame', type: FrameType.DATA, flags, streamId, payload },
  };
}

const SETTINGS: PeerSettings = {
  initialWindow: 262144,
  connectionWindow: 16777216,
  maxFrameSize: 65536,
  maxStreams: 100,
  maxMetaBytes: 4096,
  hello: { token: 'é' },
};

/** One of each frame type, with payloads long enough to be split inside. */
function oneOfEach(): Sample[] {
  return [
    control(FrameType.HELLO, 0, 0, encodeSettings(SETTINGS)),
    control(FrameType.OPEN, 0, 1, Buffer.from(JSON.stringify({ type: 'update', file: 'xy.js' }))),
    control(FrameType.ACCEPT, 0, 1),
    data(1, Buffer.from('hello, stream one')),
    data(1, Buffer.alloc(0), true),
    {
      bytes: encodeWindowUpdate(3, 131072),
      expected: { kind: 'frame', type: FrameType.WINDOW_UPDATE, flags: 0, streamId: 3, payload: Buffer.from([0, 2, 0, 0]) },
    },
    control(FrameType.PING, 0, 0, Buffer.from('0102030405060708', 'hex')),
    control(FrameType.PING, Flag.ACK, 0, Buffer.from('0102030405060708', 'hex')),
    control(FrameType.REFUSE, 0, 5, encodeCodeAndReason(WireErrorCode.STREAM_LIMIT, 'too many')),
    control(FrameType.RESET, 0, 7, encodeCodeAndReason(WireErrorCode.CANCEL)),
    control(FrameType.GO_AWAY, 0, 0, encodeCodeAndReason(WireErrorCode.NORMAL, 'closing')),
  ];
}

const uint8 = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const streamId = fc.integer({ min: 1, max: 0x7fffffff });
const wireCode = fc.integer({ min: 0, max: 0xffffffff });
const reason = fc.string({ maxLength: 40, unit: 'grapheme' });

/** Any valid frame (within TEST_LIMITS), with what it must decode to. */
const validFrame: fc.Arbitrary<Sample> = fc.oneof(
  fc.tuple(streamId, uint8(300), fc.boolean()).map(([id, payload, fin]) => data(id, payload, fin)),
  fc.tuple(streamId, fc.integer({ min: 1, max: 0xffffffff })).map(([id, increment]) => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(increment);
    return {
      bytes: encodeWindowUpdate(id, increment),
      expected: { kind: 'frame' as const, type: FrameType.WINDOW_UPDATE, flags: 0, streamId: id, payload },
    };
  }),
  fc
    .tuple(fc.boolean(), fc.uint8Array({ minLength: 8, maxLength: 8 }))
    .map(([ack, opaque]) => control(FrameType.PING, ack ? Flag.ACK : 0, 0, Buffer.from(opaque))),
  fc.tuple(wireCode, reason).map(([code, text]) => control(FrameType.GO_AWAY, 0, 0, encodeCodeAndReason(code, text))),
  fc
    .tuple(streamId, fc.jsonValue({ maxDepth: 2 }))
    .map(([id, meta]) => control(FrameType.OPEN, 0, id, Buffer.from(JSON.stringify(meta) ?? 'null'))),
  streamId.map((id) => control(FrameType.ACCEPT, 0, id)),
  fc
    .tuple(fc.constantFrom(FrameType.REFUSE, FrameType.RESET), streamId, wireCode, reason)
    .map(([type, id, code, text]) => control(type, 0, id, encodeCodeAndReason(code, text))),
  uint8(200).map((payload) => control(FrameType.HELLO, 0, 0, payload)),
);

/** Split points for a buffer of `length` bytes, sorted and unique. */
function cuts(length: number): fc.Arbitrary<number[]> {
  if (length < 2) return fc.constant([]);
  return fc
    .uniqueArray(fc.integer({ min: 1, max: length - 1 }), { maxLength: Math.min(length - 1, 40) })
    .map((a) => a.sort((x, y) => x - y));
}

function label(sample: Sample): string {
  return sample.expected.kind === 'frame' ? `${FrameType[sample.expected.type]} on ${sample.expected.streamId}` : 'oversize OPEN';
}

function expectedOf(samples: readonly Sample[]): DecodedFrame[] {
  return samples.map((s) => s.expected);
}

function concat(samples: readonly Sample[]): Buffer {
  return Buffer.concat(samples.map((s) => s.bytes));
}

/** Decodes and requires success. */
function decodeOk(chunks: readonly Buffer[], limits: DecoderLimits = TEST_LIMITS, expectMagic = false): DecodedFrame[] {
  const outcome = decodeChunks(chunks, limits, { expectMagic });
  if (outcome.error) throw outcome.error;
  return outcome.frames;
}

/** Runs `bytes` through a fresh decoder and returns the MuxError it throws. */
function decodeError(bytes: Buffer, limits: DecoderLimits = TEST_LIMITS, expectMagic = false): MuxError {
  const outcome = decodeChunks([bytes], limits, { expectMagic });
  assert.ok(outcome.error, `expected ${bytes.toString('hex')} to be rejected`);
  return outcome.error;
}

function assertRejects(bytes: Buffer, code: string, message: RegExp, limits: DecoderLimits = TEST_LIMITS): MuxError {
  const err = decodeError(bytes, limits);
  assert.ok(err instanceof MuxError);
  assert.equal(err.code, code, `${bytes.subarray(0, 12).toString('hex')}: ${err.message}`);
  assert.match(err.message, message);
  return err;
}

const header = (type: number, flags: number, stream: number, length: number, version?: number): Buffer =>
  wire()
    .header({ type, flags, stream, length, ...(version === undefined ? {} : { version }) })
    .bytes();

// ---- encoder ---------------------------------------------------------------------------

describe('encoder', () => {
  test('writes the header fields big-endian in the order version, type, flags, stream id, length', () => {
    const expected = wire().header({ type: FrameType.RESET, flags: 0xabcd, stream: 0x01020304, length: 0x05060708 }).bytes();
    assert.deepEqual(encodeHeader(FrameType.RESET, 0xabcd, 0x01020304, 0x05060708), expected);
    assert.equal(expected.toString('hex'), '0207abcd0102030405060708');
  });

  test('encodes the largest stream id and length without sign trouble', () => {
    assert.equal(encodeHeader(FrameType.DATA, 0, 0x7fffffff, 0xffffffff).toString('hex'), '020000007fffffffffffffff');
  });

  test('writeHeader writes at the given offset and leaves the other bytes alone', () => {
    const target = Buffer.alloc(16, 0xee);
    writeHeader(target, 2, FrameType.PING, Flag.ACK, 0, 8);
    assert.equal(target.toString('hex'), 'eeee020200020000000000000008eeee');
  });

  test('encodeFrame puts the payload after the header and sets the length', () => {
    const payload = Buffer.from('abc');
    assert.deepEqual(encodeFrame(FrameType.OPEN, 0, 9, payload), wire().header({ type: FrameType.OPEN, stream: 9 }).utf8('abc').bytes());
    assert.deepEqual(encodeFrame(FrameType.ACCEPT, 0, 9), wire().header({ type: FrameType.ACCEPT, stream: 9, length: 0 }).bytes());
  });

  test('encodeWindowUpdate writes a 4-byte increment', () => {
    assert.deepEqual(
      encodeWindowUpdate(0x7fffffff, 0xffffffff),
      wire().header({ type: FrameType.WINDOW_UPDATE, stream: 0x7fffffff }).u32(0xffffffff).bytes(),
    );
  });

  test('code and reason round trip through encodeCodeAndReason and decodeCodeAndReason', () => {
    fc.assert(
      fc.property(wireCode, fc.string({ maxLength: 200, unit: 'binary' }), (code, text) => {
        const payload = encodeCodeAndReason(code, text);
        const expectedText = Buffer.from(text, 'utf8').toString('utf8'); // lone surrogates become U+FFFD
        assert.deepEqual(decodeCodeAndReason(payload), { code, reason: expectedText });
        assert.deepEqual(payload, wire().u32(code).utf8(text).bytes());
      }),
      FC,
    );
  });

  test('a reason longer than 1024 bytes is cut at a character boundary', () => {
    for (const [unit, count] of [
      ['a', 2000],
      ['é', 600],
      ['€', 400],
      ['😀', 300],
    ] as const) {
      for (let shift = 0; shift < 4; shift++) {
        const text = 'x'.repeat(shift) + unit.repeat(count);
        const payload = encodeCodeAndReason(WireErrorCode.PROTOCOL_ERROR, text);
        const { reason: cut } = decodeCodeAndReason(payload);
        assert.ok(payload.length <= 4 + 1024, `${payload.length} bytes`);
        assert.ok(payload.length > 4 + 1024 - Buffer.byteLength(unit), `cut too short: ${payload.length}`);
        assert.ok(text.startsWith(cut), 'reason is a prefix of the original');
        assert.ok(!cut.includes('\ufffd'), 'no broken character');
      }
    }
  });
});

// ---- decoder: round trips and splitting ----------------------------------------------

describe('decoder round trips', () => {
  test('decodes one of every frame type pushed in one piece', () => {
    const samples = oneOfEach();
    assert.deepEqual(decodeOk([concat(samples)]), expectedOf(samples));
  });

  test('decodes the largest stream id, every allowed flag and empty payloads', () => {
    const samples = [
      data(0x7fffffff, Buffer.alloc(0)),
      data(0x7fffffff, Buffer.from('z'), true),
      control(FrameType.ACCEPT, 0, 0x7fffffff),
      control(FrameType.OPEN, 0, 0x7fffffff, Buffer.alloc(0)),
      control(FrameType.HELLO, 0, 0, Buffer.alloc(0)),
      control(FrameType.PING, Flag.ACK, 0, Buffer.alloc(8)),
    ];
    assert.deepEqual(decodeOk([concat(samples)]), expectedOf(samples));
  });

  test('accepts DATA of exactly maxFrameSize and control payloads of exactly their maximum', () => {
    const limits = { maxFrameSize: 16 * 1024 * 1024, maxMetaBytes: 5000, maxHelloBytes: 3000 };
    const big = Buffer.alloc(limits.maxFrameSize, 0x5a);
    big[0] = 1;
    big[big.length - 1] = 2;
    const samples = [
      data(1, big, true),
      control(FrameType.OPEN, 0, 3, Buffer.alloc(5000, 0x20)),
      control(FrameType.HELLO, 0, 0, Buffer.alloc(3000, 0x20)),
      control(FrameType.GO_AWAY, 0, 0, encodeCodeAndReason(1, 'r'.repeat(1024))),
    ];
    const frames = decodeOk(
      samples.map((s) => s.bytes),
      limits,
    );
    assert.equal(frames.length, 4);
    assert.ok(frames[0].kind === 'frame' && frames[0].payload.equals(big));
    assert.deepEqual(frames.slice(1), expectedOf(samples.slice(1)));
  });

  test('decodes a frame split at every offset', () => {
    for (const sample of oneOfEach()) {
      for (let offset = 0; offset <= sample.bytes.length; offset++) {
        const chunks = [Buffer.from(sample.bytes.subarray(0, offset)), Buffer.from(sample.bytes.subarray(offset))];
        assert.deepEqual(decodeOk(chunks), [sample.expected], `${label(sample)} split at ${offset}`);
      }
    }
  });

  test('decodes two back-to-back frames split at every offset', () => {
    const samples = oneOfEach();
    for (let i = 0; i < samples.length; i++) {
      const pair = [samples[i], samples[(i + 1) % samples.length]];
      const bytes = concat(pair);
      for (let offset = 0; offset <= bytes.length; offset++) {
        assert.deepEqual(decodeOk(splitAt(bytes, [offset])), expectedOf(pair), `pair ${i} split at ${offset}`);
      }
    }
  });

  test('decodes two small frames cut into three pieces at every pair of offsets', () => {
    const pair = [data(1, Buffer.from('0123456789'), true), control(FrameType.RESET, 0, 3, encodeCodeAndReason(6, 'bye'))];
    const bytes = concat(pair);
    for (let a = 1; a < bytes.length; a++) {
      for (let b = a + 1; b < bytes.length; b++) {
        assert.deepEqual(decodeOk(splitAt(bytes, [a, b])), expectedOf(pair), `cut at ${a} and ${b}`);
      }
    }
  });

  test('decodes the magic preface and a HELLO split at every offset', () => {
    const hello = control(FrameType.HELLO, 0, 0, encodeSettings(SETTINGS));
    const bytes = Buffer.concat([MAGIC, hello.bytes]);
    for (let offset = 0; offset <= bytes.length; offset++) {
      assert.deepEqual(decodeOk(splitAt(bytes, [offset]), TEST_LIMITS, true), [hello.expected], `split at ${offset}`);
    }
  });

  test('decodes every frame type fed one byte at a time', () => {
    const samples = oneOfEach();
    assert.deepEqual(decodeOk(bytewise(concat(samples))), expectedOf(samples));
    assert.deepEqual(decodeOk(bytewise(Buffer.concat([MAGIC, concat(samples)])), TEST_LIMITS, true), expectedOf(samples));
  });

  test('decodes random frame sequences cut at random points, each piece pushed separately', () => {
    fc.assert(
      fc.property(
        fc
          .array(validFrame, { minLength: 1, maxLength: 8 })
          .chain((samples) => fc.tuple(fc.constant(samples), cuts(concat(samples).length))),
        ([samples, offsets]) => {
          const chunks = splitAt(concat(samples), offsets);
          assert.equal(chunks.length, offsets.length + 1);
          assert.deepEqual(decodeOk(chunks), expectedOf(samples));
        },
      ),
      FC,
    );
  });

  test('decodes ten thousand frames from one buffer', () => {
    const make = [
      (i: number, id: number) => data(id, Buffer.from(`frame ${i}`), i % 10 === 0),
      (i: number, id: number) => control(FrameType.OPEN, 0, id, Buffer.from(`{"n":${i}}`)),
      (i: number, id: number) =>
        control(
          FrameType.WINDOW_UPDATE,
          0,
          id,
          wire()
            .u32(i + 1)
            .bytes(),
        ),
      (i: number) => control(FrameType.PING, Flag.ACK, 0, wire().u64(BigInt(i)).bytes()),
      (i: number, id: number) => control(FrameType.RESET, 0, id, encodeCodeAndReason(i, `r${i}`)),
    ];
    const samples = Array.from({ length: 10_000 }, (_, i) => make[i % make.length](i, 1 + 2 * (i % 500)));
    const bytes = concat(samples);
    const outcome = decodeChunks([bytes]);
    assert.equal(outcome.error, null);
    assert.equal(outcome.frames.length, 10_000);
    assert.deepEqual(outcome.frames, expectedOf(samples));
    assert.equal(outcome.decoder.bufferedBytes, 0);
  });

  test('DATA payload pieces reassemble to the original payload, whatever the cuts', () => {
    fc.assert(
      fc.property(
        uint8(5000).chain((payload) => fc.tuple(fc.constant(payload), cuts(payload.length + 12))),
        ([payload, offsets]) => {
          const outcome = decodeChunks(splitAt(data(5, payload, true).bytes, offsets));
          assert.equal(outcome.error, null);
          const pieces = outcome.sink.pieceLengths;
          assert.equal(
            pieces.reduce((a, b) => a + b, 0),
            payload.length,
          );
          assert.ok(pieces.length <= offsets.length + 1);
          assert.deepEqual(outcome.frames, [data(5, payload, true).expected]);
        },
      ),
      FC,
    );
  });

  test('hands DATA payload on as views of the received chunk, without copying', () => {
    const chunk = data(1, Buffer.from('zero-copy payload')).bytes;
    const pieces: Buffer[] = [];
    const sink: FrameSink = { onData: (_id, _flags, piece) => void pieces.push(piece), onControl() {}, onOversizeOpen() {} };
    new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false }).push(chunk);
    assert.equal(pieces.length, 1);
    assert.equal(pieces[0].buffer, chunk.buffer);
    assert.equal(pieces[0].byteOffset, chunk.byteOffset + 12);
    assert.equal(pieces[0].toString(), 'zero-copy payload');
  });

  test('delivers the DATA that has arrived before the rest of the frame', () => {
    const frame = data(1, Buffer.from('abcdefghij'), true).bytes;
    const sink = new CollectingSink();
    const decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false });
    decoder.push(frame.subarray(0, 16));
    assert.deepEqual(sink.pieceLengths, [4]);
    assert.equal(decoder.bufferedBytes, 0);
    decoder.push(frame.subarray(16));
    assert.deepEqual(sink.pieceLengths, [4, 6]);
    assert.equal(sink.frames.length, 1);
  });
});

// ---- differential check against the slow reference decoder ----------------------------

const SMALL_LIMITS: Required<DecoderLimits> = { maxFrameSize: 1024, maxMetaBytes: 16, maxHelloBytes: 64 };

/** Headers with awkward values on every field, each followed by its declared payload. */
const hostileFrame = fc
  .record({
    version: fc.oneof({ weight: 12, arbitrary: fc.constant(PROTOCOL_VERSION) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    type: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 8 }) }, { weight: 1, arbitrary: fc.integer({ min: 9, max: 255 }) }),
    flags: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(0, 1, 2, 3) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }),
    stream: fc.constantFrom(0, 0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff),
    length: fc.oneof(fc.constantFrom(0, 1, 3, 4, 5, 7, 8, 9, 16, 17, 64, 65, 1024, 1025, 1028, 1029), fc.integer({ min: 0, max: 1100 })),
  })
  .map((h) => Buffer.concat([header(h.type, h.flags, h.stream, h.length, h.version), Buffer.alloc(h.length, 0x61)]));

function assertSameAsReference(chunks: Buffer[], whole: Buffer, limits: Required<DecoderLimits>, expectMagic: boolean): void {
  const outcome = decodeChunks(chunks, limits, { expectMagic });
  const reference = referenceDecode(whole, limits, { expectMagic });
  assert.equal(outcome.error?.code ?? null, reference.error);
  assert.deepEqual(outcome.frames, reference.frames);
}

describe('decoder matches the DataView reference decoder', () => {
  test('on valid frame sequences', () => {
    fc.assert(
      fc.property(fc.array(validFrame, { maxLength: 10 }), fc.integer({ min: 1, max: 64 }), (samples, step) => {
        const whole = concat(samples);
        const offsets = Array.from({ length: Math.floor(whole.length / step) }, (_, i) => (i + 1) * step);
        assertSameAsReference(splitAt(whole, offsets), whole, TEST_LIMITS, false);
      }),
      FC,
    );
  });

  test('on headers with hostile field values, truncated anywhere', () => {
    fc.assert(
      fc.property(
        fc.array(hostileFrame, { minLength: 1, maxLength: 6 }),
        fc.nat(),
        fc.integer({ min: 1, max: 50 }),
        (frames, truncateSeed, step) => {
          const full = Buffer.concat(frames);
          const whole = full.subarray(0, full.length - (truncateSeed % 13));
          const offsets = Array.from({ length: Math.floor(whole.length / step) }, (_, i) => (i + 1) * step);
          assertSameAsReference(splitAt(whole, offsets), whole, SMALL_LIMITS, false);
        },
      ),
      { ...FC, numRuns: 400 },
    );
  });

  test('on ten thousand frames in one buffer', () => {
    const samples = fc.sample(validFrame, { numRuns: 10_000, seed: 42 });
    const whole = concat(samples);
    assertSameAsReference([whole], whole, TEST_LIMITS, false);
  });

  test('any byte sequence either decodes or throws a MuxError, never another error', () => {
    const prefixes = [Buffer.alloc(0), MAGIC, Buffer.from('TSMX\x01', 'latin1'), Buffer.from([1])];
    fc.assert(
      fc.property(
        fc.constantFrom(...prefixes.keys()),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 1, max: 40 }),
        (p, random, step) => {
          const whole = Buffer.concat([prefixes[p], random]);
          const expectMagic = p === 0 || p === 1 || p === 2;
          const offsets = Array.from({ length: Math.floor(whole.length / step) }, (_, i) => (i + 1) * step);
          // decodeChunks rethrows anything that is not a MuxError, failing the property.
          assertSameAsReference(splitAt(whole, offsets), whole, SMALL_LIMITS, expectMagic);
        },
      ),
      { ...FC, numRuns: 500 },
    );
  });
});

// ---- decoder: violations -------------------------------------------------------------

describe('decoder rejects protocol violations', () => {
  test('a wrong magic fails the handshake', () => {
    const err = decodeError(Buffer.from('HTTP/1.1 200 OK\r\n'), TEST_LIMITS, true);
    assert.equal(err.code, 'ERR_HANDSHAKE_FAILED');
    assert.equal(err.wireCode, WireErrorCode.PROTOCOL_ERROR);
    assert.match(err.message, /expected magic 0x54534d58, got 0x48545450/);
  });

  test('waits for four bytes before judging the magic', () => {
    const outcome = decodeChunks([Buffer.from('TSM')], TEST_LIMITS, { expectMagic: true });
    assert.equal(outcome.error, null);
    assert.equal(outcome.decoder.bufferedBytes, 3);
  });

  test('a header version other than 2 is a version mismatch', () => {
    for (const version of [0, 1, 3, 255]) {
      const err = assertRejects(
        header(FrameType.PING, 0, 0, 8, version),
        'ERR_VERSION_MISMATCH',
        new RegExp(`version ${version}; this side speaks version 2`),
      );
      assert.equal(err.wireCode, WireErrorCode.PROTOCOL_ERROR);
    }
  });

  test('an unknown frame type is a protocol error', () => {
    for (const type of [9, 0x7f, 0xff])
      assertRejects(header(type, 0, 1, 0), 'ERR_PROTOCOL', new RegExp(`unknown frame type 0x${type.toString(16)}`));
  });

  test('an unknown flag bit is a protocol error on every frame type', () => {
    for (let type = 0; type <= 8; type++) {
      for (const flags of [0x4, 0x8000, 0xffff])
        assertRejects(header(type, flags, type === 2 || type === 3 || type === 8 ? 0 : 1, 0), 'ERR_PROTOCOL', /unknown flags/);
    }
  });

  test('FIN or ACK where the type does not allow it is a protocol error', () => {
    assertRejects(header(FrameType.DATA, Flag.ACK, 1, 0), 'ERR_PROTOCOL', /DATA frame with the ACK flag/);
    assertRejects(header(FrameType.PING, Flag.FIN, 0, 8), 'ERR_PROTOCOL', /PING frame with the FIN flag/);
    const plain: [FrameType, number][] = [
      [FrameType.WINDOW_UPDATE, 1],
      [FrameType.GO_AWAY, 0],
      [FrameType.OPEN, 1],
      [FrameType.ACCEPT, 1],
      [FrameType.REFUSE, 1],
      [FrameType.RESET, 1],
      [FrameType.HELLO, 0],
    ];
    for (const [type, stream] of plain) {
      for (const flag of [Flag.FIN, Flag.ACK])
        assertRejects(header(type, flag, stream, 4), 'ERR_PROTOCOL', new RegExp(`${FrameType[type]} frame with flags 0x${flag}`));
    }
  });

  test('a stream id with the reserved top bit is a protocol error', () => {
    for (const stream of [0x80000000, 0x80000001, 0xffffffff])
      assertRejects(header(FrameType.DATA, 0, stream, 0), 'ERR_PROTOCOL', /reserved top bit/);
  });

  test('stream frames on stream 0 are protocol errors; WINDOW_UPDATE on stream 0 is the connection window', () => {
    const decoded = decodeChunks([header(FrameType.WINDOW_UPDATE, 0, 0, 4), Buffer.from([0, 1, 0, 0])], TEST_LIMITS, {
      expectMagic: false,
    });
    assert.equal(decoded.frames.length, 1);
    for (const type of [FrameType.DATA, FrameType.OPEN, FrameType.ACCEPT, FrameType.REFUSE, FrameType.RESET]) {
      assertRejects(header(type, 0, 0, 4), 'ERR_PROTOCOL', new RegExp(`${FrameType[type]} frame on stream 0`));
    }
  });

  test('session frames on a stream are protocol errors', () => {
    for (const type of [FrameType.PING, FrameType.GO_AWAY, FrameType.HELLO]) {
      assertRejects(header(type, 0, 2, 8), 'ERR_PROTOCOL', new RegExp(`${FrameType[type]} frame on stream 2; it belongs on stream 0`));
    }
  });

  test('DATA above maxFrameSize is too large, checked before any payload arrives', () => {
    const err = assertRejects(
      header(FrameType.DATA, 0, 1, 1025),
      'ERR_FRAME_TOO_LARGE',
      /DATA frame of 1025 bytes exceeds maxFrameSize 1024/,
      SMALL_LIMITS,
    );
    assert.equal(err.wireCode, WireErrorCode.FRAME_TOO_LARGE);
    assertRejects(header(FrameType.DATA, 0, 1, 0xffffffff), 'ERR_FRAME_TOO_LARGE', /4294967295 bytes/, SMALL_LIMITS);
  });

  test('control payloads of the wrong length are rejected with the specific code', () => {
    const cases: [FrameType, number, number, string][] = [
      [FrameType.WINDOW_UPDATE, 1, 3, 'ERR_PROTOCOL'],
      [FrameType.WINDOW_UPDATE, 1, 5, 'ERR_FRAME_TOO_LARGE'],
      [FrameType.PING, 0, 7, 'ERR_PROTOCOL'],
      [FrameType.PING, 0, 9, 'ERR_FRAME_TOO_LARGE'],
      [FrameType.ACCEPT, 1, 1, 'ERR_FRAME_TOO_LARGE'],
      [FrameType.GO_AWAY, 0, 3, 'ERR_PROTOCOL'],
      [FrameType.GO_AWAY, 0, 1029, 'ERR_FRAME_TOO_LARGE'],
      [FrameType.REFUSE, 1, 0, 'ERR_PROTOCOL'],
      [FrameType.REFUSE, 1, 1029, 'ERR_FRAME_TOO_LARGE'],
      [FrameType.RESET, 1, 3, 'ERR_PROTOCOL'],
      [FrameType.RESET, 1, 0xffffffff, 'ERR_FRAME_TOO_LARGE'],
      [FrameType.HELLO, 0, 65, 'ERR_FRAME_TOO_LARGE'],
    ];
    for (const [type, stream, length, code] of cases) {
      assertRejects(header(type, 0, stream, length), code, new RegExp(`${FrameType[type]} frame payload of ${length} bytes`), SMALL_LIMITS);
    }
  });

  test('after an error, every push throws the same error and nothing more is delivered', () => {
    const sink = new CollectingSink();
    const decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false });
    const bad = Buffer.concat([control(FrameType.ACCEPT, 0, 1).bytes, header(0x42, 0, 1, 0), control(FrameType.ACCEPT, 0, 3).bytes]);
    let first: unknown;
    assert.throws(
      () => decoder.push(bad),
      (err) => {
        first = err;
        return err instanceof MuxError && err.code === 'ERR_PROTOCOL';
      },
    );
    assert.equal(sink.frames.length, 1);
    assert.equal(decoder.bufferedBytes, 0);
    for (const more of [control(FrameType.ACCEPT, 0, 5).bytes, Buffer.alloc(0), Buffer.from([1])]) {
      assert.throws(
        () => decoder.push(more),
        (err) => err === first,
      );
    }
    decoder.resume();
    assert.equal(sink.frames.length, 1);
  });

  test('an error thrown by the sink kills the decoder; a non-MuxError is wrapped as ERR_PROTOCOL', () => {
    const boom = new TypeError('sink bug');
    const decoder = new FrameDecoder(
      {
        onData() {},
        onControl() {
          throw boom;
        },
        onOversizeOpen() {},
      },
      TEST_LIMITS,
      { expectMagic: false },
    );
    let first: unknown;
    assert.throws(
      () => decoder.push(control(FrameType.ACCEPT, 0, 1).bytes),
      (err) => {
        first = err;
        return err instanceof MuxError && err.code === 'ERR_PROTOCOL' && err.cause === boom && /sink bug/.test(err.message);
      },
    );
    assert.throws(
      () => decoder.push(control(FrameType.ACCEPT, 0, 3).bytes),
      (err) => err === first,
    );

    const own = new MuxError('ERR_FLOW_CONTROL', 'too much');
    const decoder2 = new FrameDecoder(
      {
        onData() {
          throw own;
        },
        onControl() {},
        onOversizeOpen() {},
      },
      TEST_LIMITS,
      { expectMagic: false },
    );
    assert.throws(
      () => decoder2.push(data(1, Buffer.from('x')).bytes),
      (err) => err === own,
    );
    assert.throws(
      () => decoder2.push(data(1, Buffer.from('y')).bytes),
      (err) => err === own,
    );
  });
});

// ---- decoder: oversize OPEN ----------------------------------------------------------

describe('decoder skips an oversize OPEN', () => {
  test('reports a 10 MB declared OPEN once, at its header, then skips it without buffering', () => {
    const declared = 10 * 1024 * 1024;
    const sink = new CollectingSink();
    const decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false });
    decoder.push(header(FrameType.OPEN, 0, 7, declared));
    assert.deepEqual(sink.frames, [{ kind: 'oversize-open', streamId: 7, length: declared }]);
    let fed = 0;
    let maxBuffered = decoder.bufferedBytes;
    while (fed < declared) {
      const chunk = Buffer.alloc(Math.min(64 * 1024 + 3, declared - fed), 0x7b);
      decoder.push(chunk);
      fed += chunk.length;
      maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
      assert.equal(sink.frames.length, 1, `reported again after ${fed} bytes`);
    }
    assert.ok(maxBuffered <= 12, `buffered up to ${maxBuffered} bytes`);
    assert.deepEqual(sink.frames, [{ kind: 'oversize-open', streamId: 7, length: declared }]);
    decoder.push(control(FrameType.ACCEPT, 0, 2).bytes);
    assert.deepEqual(sink.frames[1], control(FrameType.ACCEPT, 0, 2).expected);
  });

  test('delivers an OPEN of exactly maxMetaBytes and skips one byte more', () => {
    const limits = { ...TEST_LIMITS, maxMetaBytes: 16 };
    const fits = control(FrameType.OPEN, 0, 1, Buffer.from('"0123456789abcd"'));
    const tooBig = Buffer.concat([header(FrameType.OPEN, 0, 3, 17), Buffer.from('"0123456789abcde"')]);
    const after = control(FrameType.PING, 0, 0, Buffer.alloc(8));
    for (let offset = 0; offset <= tooBig.length; offset++) {
      const frames = decodeOk([fits.bytes, ...splitAt(tooBig, [offset]), after.bytes], limits);
      assert.deepEqual(frames, [fits.expected, { kind: 'oversize-open', streamId: 3, length: 17 }, after.expected]);
    }
  });

  test('still rejects an oversize OPEN with a bad header', () => {
    const limits = { ...TEST_LIMITS, maxMetaBytes: 16 };
    assertRejects(header(FrameType.OPEN, Flag.FIN, 1, 1000), 'ERR_PROTOCOL', /OPEN frame with flags/, limits);
    assertRejects(header(FrameType.OPEN, 0, 0, 1000), 'ERR_PROTOCOL', /OPEN frame on stream 0/, limits);
  });
});

// ---- decoder: pause and resume -------------------------------------------------------

describe('decoder pause and resume', () => {
  test('a paused decoder buffers without delivering, and resume delivers in order', () => {
    const samples = oneOfEach();
    const bytes = concat(samples);
    const sink = new CollectingSink();
    const decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false });
    decoder.pause();
    decoder.push(bytes.subarray(0, 100));
    decoder.push(bytes.subarray(100));
    assert.equal(sink.frames.length, 0);
    assert.equal(decoder.bufferedBytes, bytes.length);
    decoder.resume();
    assert.deepEqual(sink.frames, expectedOf(samples));
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('pause() inside a callback stops delivery right after that frame', () => {
    const samples = [control(FrameType.ACCEPT, 0, 1), data(1, Buffer.from('abc')), control(FrameType.ACCEPT, 0, 3)];
    const seen: string[] = [];
    let decoder!: FrameDecoder;
    const sink: FrameSink = {
      onControl(type, _flags, id) {
        seen.push(`${FrameType[type]} ${id}`);
        if (id === 1) decoder.pause();
      },
      onData(id, _flags, piece) {
        seen.push(`DATA ${id} ${piece.toString()}`);
      },
      onOversizeOpen() {},
    };
    decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false });
    decoder.push(concat(samples));
    assert.deepEqual(seen, ['ACCEPT 1']);
    assert.equal(decoder.bufferedBytes, 15 + 12);
    decoder.resume();
    assert.deepEqual(seen, ['ACCEPT 1', 'DATA 1 abc', 'ACCEPT 3']);
  });

  test('pause() in the middle of a DATA frame holds the rest of its payload', () => {
    const frame = data(9, Buffer.from('first-second'), true).bytes;
    const pieces: string[] = [];
    const decoder: FrameDecoder = new FrameDecoder(
      {
        onData(_id, _flags, piece, last) {
          pieces.push(`${piece.toString()}${last ? '|' : ''}`);
          decoder.pause();
        },
        onControl() {},
        onOversizeOpen() {},
      },
      TEST_LIMITS,
      { expectMagic: false },
    );
    decoder.push(frame.subarray(0, 18));
    decoder.push(frame.subarray(18));
    assert.deepEqual(pieces, ['first-']);
    assert.equal(decoder.bufferedBytes, 6);
    decoder.resume();
    assert.deepEqual(pieces, ['first-', 'second|']);
  });

  test('every piece of a DATA frame but the first is marked continued, across chunks and frames', () => {
    const first = data(1, Buffer.from('abcdef')).bytes;
    const second = data(3, Buffer.from('gh'), true).bytes;
    const pieces: string[] = [];
    const decoder = new FrameDecoder(
      {
        onData(id, _flags, piece, last, continued) {
          pieces.push(`${id}:${piece.toString()}${continued ? ' continued' : ''}${last ? ' last' : ''}`);
        },
        onControl() {},
        onOversizeOpen() {},
      },
      TEST_LIMITS,
      { expectMagic: false },
    );
    decoder.push(first.subarray(0, 14));
    decoder.push(first.subarray(14, 16));
    decoder.push(Buffer.concat([first.subarray(16), second]));
    assert.deepEqual(pieces, ['1:ab', '1:cd continued', '1:ef continued last', '3:gh last']);
  });

  test('resume() from inside a callback continues the same loop instead of nesting one', () => {
    const samples = [control(FrameType.ACCEPT, 0, 1), control(FrameType.ACCEPT, 0, 3), control(FrameType.ACCEPT, 0, 5)];
    const seen: string[] = [];
    let depth = 0;
    const decoder: FrameDecoder = new FrameDecoder(
      {
        onControl(_type, _flags, id) {
          depth++;
          seen.push(`${id}@${depth}`);
          decoder.pause();
          decoder.resume();
          depth--;
        },
        onData() {},
        onOversizeOpen() {},
      },
      TEST_LIMITS,
      { expectMagic: false },
    );
    decoder.push(concat(samples));
    assert.deepEqual(seen, ['1@1', '3@1', '5@1']);
    assert.equal(decoder.bufferedBytes, 0);
  });

  // The session must catch this: resume() runs the same loop as push(), so it throws too.
  test('resume() throws the MuxError of a violation among the buffered bytes, and the decoder stays dead', () => {
    const sink = new CollectingSink();
    const decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: false });
    decoder.pause();
    decoder.push(Buffer.concat([control(FrameType.ACCEPT, 0, 1).bytes, header(FrameType.PING, 0, 5, 8), Buffer.alloc(8)]));
    let first: unknown;
    assert.throws(
      () => decoder.resume(),
      (err) => {
        first = err;
        return err instanceof MuxError && err.code === 'ERR_PROTOCOL' && /PING frame on stream 5/.test(err.message);
      },
    );
    assert.equal(sink.frames.length, 1);
    assert.throws(
      () => decoder.push(control(FrameType.ACCEPT, 0, 3).bytes),
      (err) => err === first,
    );
  });

  test('a push from inside a callback is decoded after that callback returns', () => {
    const seen: string[] = [];
    const decoder: FrameDecoder = new FrameDecoder(
      {
        onControl(_type, _flags, id) {
          seen.push(`start ${id}`);
          if (id === 1) decoder.push(control(FrameType.ACCEPT, 0, 5).bytes);
          seen.push(`end ${id}`);
        },
        onData() {},
        onOversizeOpen() {},
      },
      TEST_LIMITS,
      { expectMagic: false },
    );
    decoder.push(concat([control(FrameType.ACCEPT, 0, 1), control(FrameType.ACCEPT, 0, 3)]));
    assert.deepEqual(seen, ['start 1', 'end 1', 'start 3', 'end 3', 'start 5', 'end 5']);
  });
});
