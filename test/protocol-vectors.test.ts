// Keeps PROTOCOL.md honest: every test vector in it is parsed at test time, encoded with the
// real encoder, built again byte by byte from the spec, and decoded with FrameDecoder. A
// vector edited wrongly (hex or fields) fails here, and so does a code change that moves
// the wire away from the document.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { FrameDecoder } from '../src/codec/decoder';
import { decodeCodeAndReason, encodeCodeAndReason, encodeFrame, encodeHeader, encodeWindowUpdate } from '../src/codec/encode';
import { Flag, FrameType, MAGIC, WireErrorCode } from '../src/protocol/constants';
import { encodeSettings, parseSettings, type PeerSettings } from '../src/protocol/hello';
import { CollectingSink, TEST_LIMITS } from './helpers/collect';
import { wire } from './helpers/frame-builder';

const SPEC_PATH = path.join(__dirname, '..', 'PROTOCOL.md');
const SPEC = readFileSync(SPEC_PATH, 'utf8');

interface Vector {
  name: string;
  hex: string;
  /** `key: value` lines after the vector line, in document order. */
  fields: Map<string, string>;
}

const PAYLOAD_KEYS = ['settings', 'meta', 'data', 'increment', 'opaque', 'code'] as const;
const KNOWN_KEYS = new Set(['preface', 'header', 'reason', ...PAYLOAD_KEYS]);

/** Every `vector NAME: HEX` line of the document with the field lines that follow it. */
function parseVectors(markdown: string): Vector[] {
  const vectors: Vector[] = [];
  const lines = markdown.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const head = /^vector ([a-z0-9-]+): ?(.*)$/.exec(lines[i]);
    if (!head) continue;
    const fields = new Map<string, string>();
    for (i++; i < lines.length && lines[i].trim() !== '' && !lines[i].startsWith('```'); i++) {
      const field = /^([a-z-]+): (.*)$/.exec(lines[i]);
      // A malformed line is kept under a key no check accepts, so the vector fails.
      if (field) fields.set(field[1], field[2]);
      else fields.set(`malformed line "${lines[i]}"`, '');
    }
    i--;
    vectors.push({ name: head[1], hex: head[2], fields });
  }
  return vectors;
}

interface Described {
  preface: boolean;
  type: FrameType;
  flags: number;
  stream: number;
  length: number;
  payloadKey: (typeof PAYLOAD_KEYS)[number] | null;
}

/** Reads the header-level fields; throws with a readable message on anything malformed. */
function describeVector(vector: Vector): Described {
  for (const key of vector.fields.keys()) if (!KNOWN_KEYS.has(key)) throw new Error(`unknown key ${key}`);
  const preface = vector.fields.get('preface');
  if (preface !== undefined && preface !== 'TSMX') throw new Error(`preface must be TSMX, got ${preface}`);
  const header = /^type=([A-Z_]+) flags=([A-Z|]+|none) stream=(\d+) length=(\d+)$/.exec(vector.fields.get('header') ?? '');
  if (!header) throw new Error('missing or malformed header line');
  const type = (FrameType as unknown as Record<string, number>)[header[1]];
  if (type === undefined) throw new Error(`unknown frame type ${header[1]}`);
  let flags = 0;
  if (header[2] !== 'none') {
    for (const name of header[2].split('|')) {
      const bit = (Flag as unknown as Record<string, number>)[name];
      if (bit === undefined) throw new Error(`unknown flag ${name}`);
      flags |= bit;
    }
  }
  const payloadKeys = PAYLOAD_KEYS.filter((key) => vector.fields.has(key));
  if (payloadKeys.length > 1) throw new Error(`more than one payload key: ${payloadKeys.join(', ')}`);
  if (vector.fields.has('code') !== vector.fields.has('reason')) throw new Error('code and reason go together');
  return {
    preface: preface !== undefined,
    type: type,
    flags,
    stream: Number(header[3]),
    length: Number(header[4]),
    payloadKey: payloadKeys[0] ?? null,
  };
}

function field(vector: Vector, key: string): string {
  const value = vector.fields.get(key);
  if (value === undefined) throw new Error(`missing ${key}`);
  return value;
}

function wireCode(name: string): number {
  const code = (WireErrorCode as unknown as Record<string, number>)[name];
  if (code === undefined) throw new Error(`unknown error code ${name}`);
  return code;
}

/** The frame the fields describe, produced by the real encoder. */
function encodeDescribed(vector: Vector, d: Described): Buffer {
  let frame: Buffer;
  switch (d.payloadKey) {
    case 'settings':
      frame = encodeFrame(d.type, d.flags, d.stream, encodeSettings(JSON.parse(field(vector, 'settings')) as PeerSettings));
      break;
    case 'meta':
      // The session encodes meta exactly so: JSON.stringify of the application's value.
      frame = encodeFrame(d.type, d.flags, d.stream, Buffer.from(JSON.stringify(JSON.parse(field(vector, 'meta'))), 'utf8'));
      break;
    case 'data': {
      const payload = Buffer.from(JSON.parse(field(vector, 'data')) as string, 'utf8');
      frame = Buffer.concat([encodeHeader(d.type, d.flags, d.stream, payload.length), payload]);
      break;
    }
    case 'increment':
      if (d.type !== FrameType.WINDOW_UPDATE || d.flags !== 0) throw new Error('increment belongs to a WINDOW_UPDATE without flags');
      frame = encodeWindowUpdate(d.stream, Number(field(vector, 'increment')));
      break;
    case 'opaque':
      frame = encodeFrame(d.type, d.flags, d.stream, Buffer.from(field(vector, 'opaque'), 'hex'));
      break;
    case 'code':
      frame = encodeFrame(
        d.type,
        d.flags,
        d.stream,
        encodeCodeAndReason(wireCode(field(vector, 'code')), JSON.parse(field(vector, 'reason')) as string),
      );
      break;
    case null:
      frame = encodeFrame(d.type, d.flags, d.stream);
      break;
  }
  return d.preface ? Buffer.concat([MAGIC, frame]) : frame;
}

/** The same frame, built field by field from the spec with the test byte builder. */
function buildDescribed(vector: Vector, d: Described): Buffer {
  const b = wire();
  if (d.preface) b.magic();
  b.header({ type: d.type, flags: d.flags, stream: d.stream });
  switch (d.payloadKey) {
    case 'settings':
    case 'meta':
      b.json(JSON.parse(field(vector, d.payloadKey)));
      break;
    case 'data':
      b.utf8(JSON.parse(field(vector, 'data')) as string);
      break;
    case 'increment':
      b.u32(Number(field(vector, 'increment')));
      break;
    case 'opaque':
      b.hex(field(vector, 'opaque'));
      break;
    case 'code':
      b.u32(wireCode(field(vector, 'code'))).utf8(JSON.parse(field(vector, 'reason')) as string);
      break;
    case null:
      break;
  }
  return b.bytes();
}

/** Checks the decoded payload against the payload field; returns what does not match. */
function payloadProblems(vector: Vector, d: Described, payload: Buffer): string[] {
  const problems: string[] = [];
  const expect = (what: string, actual: unknown, expected: unknown): void => {
    try {
      assert.deepStrictEqual(actual, expected);
    } catch {
      problems.push(`decoded ${what} ${JSON.stringify(actual)}, vector says ${JSON.stringify(expected)}`);
    }
  };
  switch (d.payloadKey) {
    case 'settings':
      expect('settings', parseSettings(payload), JSON.parse(field(vector, 'settings')));
      break;
    case 'meta':
      expect('meta', JSON.parse(payload.toString('utf8')), JSON.parse(field(vector, 'meta')));
      break;
    case 'data':
      expect('data', payload.toString('utf8'), JSON.parse(field(vector, 'data')));
      break;
    case 'increment':
      expect('increment', payload.readUInt32BE(0), Number(field(vector, 'increment')));
      break;
    case 'opaque':
      expect('opaque', payload.toString('hex'), field(vector, 'opaque'));
      break;
    case 'code': {
      const { code, reason } = decodeCodeAndReason(payload);
      expect('code', WireErrorCode[code], field(vector, 'code'));
      expect('reason', reason, JSON.parse(field(vector, 'reason')));
      break;
    }
    case null:
      expect('payload', payload.length, 0);
      break;
  }
  return problems;
}

/** Everything wrong with one vector; an empty list means it is right. */
function checkVector(vector: Vector): string[] {
  const problems: string[] = [];
  try {
    if (!/^(?:[0-9a-f]{2})+$/.test(vector.hex)) return ['hex must be lowercase hex digit pairs'];
    const bytes = Buffer.from(vector.hex, 'hex');
    const d = describeVector(vector);

    // (a) The encoder, given the described fields, produces exactly these bytes...
    const encoded = encodeDescribed(vector, d);
    if (encoded.toString('hex') !== vector.hex) problems.push(`encoder gives ${encoded.toString('hex')}`);
    const headerAt = d.preface ? MAGIC.length : 0;
    if (encoded.length - headerAt - 12 !== d.length)
      problems.push(`payload is ${encoded.length - headerAt - 12} bytes, header line says ${d.length}`);
    // ...and so does building it byte by byte from the spec.
    const built = buildDescribed(vector, d);
    if (!built.equals(encoded)) problems.push(`byte builder gives ${built.toString('hex')}`);

    // (b) Decoding the bytes gives the described fields.
    const sink = new CollectingSink();
    const decoder = new FrameDecoder(sink, TEST_LIMITS, { expectMagic: d.preface });
    decoder.push(bytes);
    if (sink.frames.length !== 1) return [...problems, `decoder gives ${sink.frames.length} frames`];
    if (decoder.bufferedBytes !== 0) problems.push(`${decoder.bufferedBytes} bytes left over after the frame`);
    const frame = sink.frames[0];
    if (frame.kind !== 'frame') return [...problems, 'decoder reports an oversize OPEN'];
    const got = { type: frame.type, flags: frame.flags, stream: frame.streamId, length: frame.payload.length };
    const want = { type: d.type, flags: d.flags, stream: d.stream, length: d.length };
    if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`decoded header ${JSON.stringify(got)}`);
    problems.push(...payloadProblems(vector, d, frame.payload));
  } catch (err) {
    problems.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  }
  return problems;
}

const vectors = parseVectors(SPEC);

describe('PROTOCOL.md test vectors', () => {
  test('the spec holds between 8 and 16 vectors with unique names', () => {
    assert.ok(vectors.length >= 8 && vectors.length <= 16, `found ${vectors.length} vectors`);
    assert.equal(new Set(vectors.map((v) => v.name)).size, vectors.length);
  });

  test('the vectors cover every frame type and both flags', () => {
    const described = vectors.map(describeVector);
    const types = new Set(described.map((d) => FrameType[d.type]));
    assert.deepEqual(
      [...types].sort(),
      Object.keys(FrameType)
        .filter((k) => Number.isNaN(Number(k)))
        .sort(),
    );
    assert.ok(described.some((d) => d.flags & Flag.FIN));
    assert.ok(described.some((d) => d.flags & Flag.ACK));
    assert.ok(described.some((d) => d.preface));
  });

  for (const vector of vectors) {
    test(`vector ${vector.name} encodes to its bytes and decodes to its fields`, () => {
      assert.deepEqual(checkVector(vector), []);
    });
  }

  test('a vector with any one byte changed is reported', () => {
    for (const vector of vectors) {
      const bytes = Buffer.from(vector.hex, 'hex');
      for (let i = 0; i < bytes.length; i++) {
        const edited = Buffer.from(bytes);
        edited[i] ^= 0x01;
        const problems = checkVector({ ...vector, hex: edited.toString('hex') });
        assert.notDeepEqual(problems, [], `${vector.name} with byte ${i} changed passed`);
      }
    }
  });

  test('a vector with an edited field is reported', () => {
    const edits: [key: string, edit: (value: string) => string][] = [
      ['header', (v) => v.replace(/stream=(\d+)/, (_, n: string) => `stream=${Number(n) + 2}`)],
      ['header', (v) => v.replace(/length=(\d+)/, (_, n: string) => `length=${Number(n) + 1}`)],
      ['header', (v) => v.replace(/flags=\S+/, (f) => (f === 'flags=none' ? 'flags=FIN' : 'flags=none'))],
      ['header', (v) => v.replace(/type=\S+/, (t) => (t === 'type=RESET' ? 'type=REFUSE' : 'type=RESET'))],
      ['settings', (v) => v.replace('262144', '262145')],
      ['meta', (v) => v.replace('xy.js', 'xz.js')],
      ['data', (v) => (v === '""' ? '"x"' : v.replace(/"$/, 'x"'))],
      ['increment', (v) => String(Number(v) + 1)],
      ['opaque', (v) => `${v.slice(0, -2)}ff`],
      ['code', (v) => (v === 'CANCEL' ? 'REFUSED' : 'CANCEL')],
      ['reason', (v) => (v === '""' ? '"x"' : v.replace(/"$/, '!"'))],
      ['preface', () => 'TSMY'],
    ];
    let tried = 0;
    for (const vector of vectors) {
      for (const [key, edit] of edits) {
        const value = vector.fields.get(key);
        if (value === undefined) continue;
        const fields = new Map(vector.fields);
        fields.set(key, edit(value));
        assert.notDeepEqual(checkVector({ ...vector, fields }), [], `${vector.name} with ${key} edited passed`);
        tried++;
      }
      const withoutPreface = new Map(vector.fields);
      if (withoutPreface.delete('preface')) {
        assert.notDeepEqual(checkVector({ ...vector, fields: withoutPreface }), [], `${vector.name} without preface passed`);
      }
    }
    assert.ok(tried >= vectors.length * 3);
  });

  test('an unknown key or a malformed line in a vector is reported', () => {
    const vector = vectors[0];
    assert.notDeepEqual(checkVector({ ...vector, fields: new Map([...vector.fields, ['colour', 'red']]) }), []);
    const [parsed] = parseVectors('vector x: 020500000000000100000000\nheader: type=ACCEPT flags=none stream=1 length=0\nnot a field\n');
    assert.notDeepEqual(checkVector(parsed), []);
    const [good] = parseVectors('vector x: 020500000000000100000000\nheader: type=ACCEPT flags=none stream=1 length=0\n');
    assert.deepEqual(checkVector(good), []);
  });
});

describe('PROTOCOL.md tables', () => {
  /** Rows `| VALUE | NAME | ...` of the table that follows `heading`. */
  function tableRows(heading: string, valuePattern: string): Map<string, number> {
    const section = SPEC.slice(SPEC.indexOf(heading));
    const rows = new Map<string, number>();
    const re = new RegExp(`^\\| (${valuePattern}) +\\| ([A-Z_]+) +\\|`, 'gm');
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('\n|')));
    for (const match of table.matchAll(re)) rows.set(match[2], Number(match[1]));
    return rows;
  }

  function members(enumObject: object): Map<string, number> {
    return new Map(Object.entries(enumObject).filter((e): e is [string, number] => typeof e[1] === 'number'));
  }

  test('the frame type table lists exactly the FrameType values', () => {
    assert.deepEqual(tableRows('## 5. Frame types', '0x[0-9a-f]+'), members(FrameType));
  });

  test('the flag table lists exactly the Flag values', () => {
    assert.deepEqual(tableRows('### 5.1 Flags', '0x[0-9a-f]{4}'), members(Flag));
  });

  test('the error code table lists exactly the WireErrorCode values', () => {
    assert.deepEqual(tableRows('## 11. Error codes', '\\d+'), members(WireErrorCode));
  });
});
