// I-JSON for meta and HELLO: parseIJson refuses every rule a peer can break with the code it is
// given and a message naming the payload, agrees with JSON.parse on everything it accepts, and
// reads back exactly what encodeIJson writes; encodeIJson writes what JSON.stringify writes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { collectGarbage } from './helpers/memory';
import vm from 'node:vm';
import fc from 'fast-check';
import type { JsonValue } from '../src/meta';
import { MuxError, type MuxErrorCode } from '../src/errors';
import { encodeIJson, MAX_JSON_DEPTH, parseIJson } from '../src/protocol/json';

// Seeded runs are reproducible: FC_SEED=<seed printed by a failure> reruns that case.
const FC = { numRuns: 300, ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}) };

const META = 'meta of stream 5';

function bytesOf(input: string | Uint8Array): Uint8Array {
  return typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
}

function parse(input: string | Uint8Array): JsonValue {
  return parseIJson(bytesOf(input), META, 'ERR_INVALID_META').value;
}

/** Asserts that parsing `input` throws a MuxError with `code` whose message names `what` and matches `message`. */
function assertRefused(input: string | Uint8Array, message: RegExp, code: MuxErrorCode = 'ERR_INVALID_META', what = META): MuxError {
  let caught: unknown;
  try {
    parseIJson(bytesOf(input), what, code);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MuxError, `expected a MuxError for ${JSON.stringify(String(input).slice(0, 60))}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.ok(caught.message.startsWith(`${what} `), caught.message);
  assert.match(caught.message, message);
  return caught;
}

function assertEncodeRefused(value: unknown, message: RegExp): void {
  assert.throws(
    () => encodeIJson(value, 'meta'),
    (err: unknown) => {
      assert.ok(err instanceof MuxError);
      assert.equal(err.code, 'ERR_INVALID_META');
      assert.match(err.message, message);
      return true;
    },
  );
}

const nestedArrays = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const nestedObjects = (depth: number): string => '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);

// ---- what peers may send ---------------------------------------------------------------

describe('parseIJson accepts', () => {
  test('an ordinary meta, with the value JSON.parse builds', () => {
    const text = '{"type":"file","name":"a/b.txt","size":123,"tags":["x",true,null],"ratio":0.25}';
    assert.deepEqual(parse(text), JSON.parse(text));
  });

  test('every kind of top-level value', () => {
    for (const text of ['null', 'true', 'false', '0', '-12.5e-3', '"s"', '[]', '{}']) assert.deepEqual(parse(text), JSON.parse(text), text);
  });

  test(`nesting of exactly ${MAX_JSON_DEPTH} levels, of arrays and of objects`, () => {
    assert.deepEqual(parse(nestedArrays(MAX_JSON_DEPTH)), JSON.parse(nestedArrays(MAX_JSON_DEPTH)));
    assert.deepEqual(parse(nestedObjects(MAX_JSON_DEPTH)), JSON.parse(nestedObjects(MAX_JSON_DEPTH)));
    const both = `[${nestedArrays(MAX_JSON_DEPTH - 1)},${nestedObjects(MAX_JSON_DEPTH - 1)}]`;
    assert.deepEqual(parse(both), JSON.parse(both));
  });

  test('an escaped surrogate pair, and raw characters of every UTF-8 length', () => {
    assert.equal(parse('"\\ud83d\\ude00"'), '😀');
    assert.equal(parse('"\\uD83D\\uDE00"'), '😀');
    assert.equal(parse('"a\u00e9\u20ac\u{1f600}"'), 'aé€😀');
    assert.deepEqual(parse('{"\\ud83d\\ude00":1}'), { '😀': 1 });
  });

  test('every escape JSON has', () => {
    assert.equal(parse('"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9"'), '"\\/\b\f\n\r\tAé');
  });

  test('the same name in two different objects, and names equal only before unescaping', () => {
    assert.deepEqual(parse('{"a":{"b":1},"c":{"b":2},"d":[{"b":3},{"b":4}]}'), { a: { b: 1 }, c: { b: 2 }, d: [{ b: 3 }, { b: 4 }] });
    assert.deepEqual(parse('{"a":1,"\\u0062":2,"\\\\u0061":3}'), { a: 1, b: 2, '\\u0061': 3 });
  });

  test('numbers a double holds exactly: the safe integer limits, -0, fractions and large exponents', () => {
    assert.equal(parse('-9007199254740991'), -9007199254740991);
    assert.equal(parse('9007199254740991'), 9007199254740991);
    assert.ok(Object.is(parse('-0'), -0));
    assert.equal(parse('1.5'), 1.5);
    assert.equal(parse('1e300'), 1e300);
    assert.equal(parse('-1.7976931348623157e308'), -Number.MAX_VALUE);
    assert.equal(parse('9007199254740993.5'), 9007199254740994); // a fraction is not an integer literal
    assert.equal(parse('1e-400'), 0); // underflow is no loss of magnitude
  });

  test('JSON whitespace (space, tab, LF, CR) around every token', () => {
    assert.deepEqual(parse(' \t\r\n{ "a" : [ 1 , 2 ] , "b" : { } }\n '), { a: [1, 2], b: {} });
  });

  test('whatever JSON.parse accepts within the rules, with the same value', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 6, stringUnit: 'binary' }), (text) => {
        let expected: unknown;
        try {
          expected = parse(text);
        } catch (err) {
          // fc.json writes integers beyond 2^53 in full (1e20 as 100000000000000000000): the only reason.
          assert.ok(err instanceof MuxError);
          assert.match(err.message, /does not survive a round trip/);
          return;
        }
        assert.deepEqual(expected, JSON.parse(text));
      }),
      FC,
    );
  });
});

// ---- what peers may not send -----------------------------------------------------------

describe('parseIJson refuses', () => {
  test('bytes that are not UTF-8: a surrogate encoded in UTF-8, an overlong form, a cut sequence, a stray byte', () => {
    const quoted = (...bytes: number[]): Buffer => Buffer.from([0x22, ...bytes, 0x22]);
    assertRefused(quoted(0xed, 0xa0, 0x80), /^meta of stream 5 is not valid UTF-8$/);
    assertRefused(Buffer.from([0xc0, 0xaf]), /is not valid UTF-8/);
    assertRefused(quoted(0xe2, 0x82), /is not valid UTF-8/);
    assertRefused(quoted(0x80), /is not valid UTF-8/);
    assertRefused(quoted(0xf8, 0x88, 0x80, 0x80, 0x80), /is not valid UTF-8/);
    assertRefused(quoted(0xf4, 0x90, 0x80, 0x80), /is not valid UTF-8/); // above U+10FFFF
  });

  test('a byte order mark', () => {
    assertRefused(Buffer.from([0xef, 0xbb, 0xbf, 0x31]), /starts with a byte order mark/);
  });

  test(`nesting of ${MAX_JSON_DEPTH + 1} levels, of arrays and of objects`, () => {
    assertRefused(nestedArrays(MAX_JSON_DEPTH + 1), /^meta of stream 5 is nested deeper than 32 levels$/);
    assertRefused(nestedObjects(MAX_JSON_DEPTH + 1), /is nested deeper than 32 levels/);
    assertRefused(`[${nestedObjects(MAX_JSON_DEPTH)}]`, /is nested deeper than 32 levels/);
  });

  test('64,000 open brackets with its own error, not a stack overflow', () => {
    const err = assertRefused('['.repeat(64_000), /is nested deeper than 32 levels/);
    assert.ok(!(err.cause instanceof RangeError));
    assertRefused(nestedArrays(64_000), /is nested deeper than 32 levels/);
    assertRefused('{"a":'.repeat(64_000), /is nested deeper than 32 levels/);
  });

  test('a \\u escape that leaves a lone surrogate', () => {
    assertRefused('"\\ud83d"', /has a lone surrogate \\ud83d .*at offset 1$/);
    assertRefused('"\\ude00"', /has a lone surrogate \\ude00/);
    assertRefused('"\\ud83d x"', /has a lone surrogate \\ud83d/);
    assertRefused('"\\ud83d\\u0041"', /has a lone surrogate \\ud83d/);
    assertRefused('"\\ude00\\ud83d"', /has a lone surrogate \\ude00/);
    assertRefused('"\\ude00\\ude00"', /has a lone surrogate \\ude00 .*at offset 1$/);
    assertRefused('"\\ud83d\\ud83d\\ude00"', /has a lone surrogate \\ud83d/);
    assertRefused('{"\\udbff":1}', /has a lone surrogate \\udbff/);
  });

  test('a duplicate member name, plain or escaped, at any depth', () => {
    assertRefused('{"token":1,"token":2}', /^HELLO has a duplicate member "token"$/, 'ERR_HANDSHAKE_FAILED', 'HELLO');
    assertRefused('{"a":1,"\\u0061":2}', /has a duplicate member "a"/);
    assertRefused('{"\\n":1,"\\u000a":2}', /has a duplicate member "\\n"/);
    assertRefused('{"x":[{"b":1,"c":2,"b":3}]}', /has a duplicate member "b"/);
    assertRefused(`{"${'k'.repeat(100)}":1,"${'k'.repeat(100)}":2}`, new RegExp(`duplicate member "${'k'.repeat(40)}\\.\\.\\."$`));
  });

  test('a number that does not survive a round trip through a double', () => {
    assertRefused(
      '9007199254740992',
      /^meta of stream 3 has a number that does not survive a round trip: 9007199254740992$/,
      'ERR_INVALID_META',
      'meta of stream 3',
    );
    assertRefused('-9007199254740992', /round trip: -9007199254740992$/);
    assertRefused('{"id":12345678901234567890}', /round trip: 12345678901234567890$/);
    assertRefused('1e400', /round trip: 1e400$/);
    assertRefused('-1E+309', /round trip: -1E\+309$/);
    assertRefused('[0.5e309]', /round trip: 0\.5e309$/);
    assertRefused(`1${'0'.repeat(400)}.5`, /round trip: 1000/);
    assertRefused(`1e${'9'.repeat(50)}`, /round trip: 1e9{38}\.\.\.$/);
  });

  test('syntax JSON does not have, as invalid JSON with the offset', () => {
    const cases: [string, RegExp][] = [
      ['', /unexpected end of input at offset 0, expected a value/],
      ['  ', /unexpected end of input at offset 2/],
      ['[1,2,]', /unexpected character '\]' at offset 5, expected a value/],
      ['{"a":1,}', /unexpected character '\}' at offset 7, expected a member name/],
      ['01', /number with a leading zero at offset 0/],
      ['[-01]', /number with a leading zero at offset 1/],
      ['NaN', /unexpected character 'N' at offset 0/],
      ['[Infinity]', /unexpected character 'I' at offset 1/],
      ['-Infinity', /expected a digit after '-' at offset 1/],
      ["{'a':1}", /unexpected character "'" at offset 1, expected a member name/],
      ["'a'", /unexpected character "'" at offset 0/],
      ['"a\nb"', /control character U\+000A must be escaped in a string at offset 2/],
      ['"\t"', /control character U\+0009 must be escaped/],
      ['"\u0000"', /control character U\+0000 must be escaped/],
      ['{"type":"file"}x', /unexpected character 'x' at offset 15, expected nothing more after the value/],
      ['1 2', /unexpected character '2' at offset 2, expected nothing more/],
      ['[]]', /unexpected character '\]' at offset 2/],
      ['{"type":"file",x', /unexpected character 'x' at offset 15/],
      ['"é" x', /unexpected character 'x' at offset 5/], // a byte offset: é is two bytes
      ['\u00a01', /unexpected character U\+00A0 at offset 0/],
      ['\f1', /unexpected character U\+000C at offset 0/],
      ['"abc', /unterminated string starting at offset 0/],
      ['"\\', /unexpected end of input in a string at offset 2/],
      ['"\\x"', /invalid escape "\\\\x" at offset 1/],
      ['"\\u12"', /invalid \\u escape \(expected 4 hex digits\) at offset 1/],
      ['"\\u12g4"', /invalid \\u escape/],
      ['{"a" 1}', /unexpected character '1' at offset 5, expected ':' after the member name/],
      ['{a:1}', /unexpected character 'a' at offset 1, expected a member name in double quotes/],
      ['[1 2]', /unexpected character '2' at offset 3, expected ',' or '\]'/],
      ['{"a":1 "b":2}', /unexpected character '"' at offset 7, expected ',' or '\}'/],
      ['[1,2', /unexpected end of input at offset 4, expected ',' or '\]'/],
      ['+1', /unexpected character '\+' at offset 0/],
      ['.5', /unexpected character '\.' at offset 0/],
      ['1.', /expected a digit after '\.' at offset 2/],
      ['1.e5', /expected a digit after '\.' at offset 2/],
      ['1e', /expected a digit in the exponent at offset 2/],
      ['1e+', /expected a digit in the exponent at offset 3/],
      ['0x10', /unexpected character 'x' at offset 1/],
      ['tru', /expected true at offset 0/],
      ['nul', /expected null at offset 0/],
      ['True', /unexpected character 'T' at offset 0/],
      ['/* c */ 1', /unexpected character '\/' at offset 0/],
      ['[1,,2]', /unexpected character ',' at offset 3/],
      ['{,}', /unexpected character ',' at offset 1/],
      ['😀', /unexpected character U\+1F600 at offset 0/],
    ];
    for (const [text, message] of cases) {
      const err = assertRefused(text, message);
      assert.match(err.message, /^meta of stream 5 is not valid JSON: /, JSON.stringify(text));
    }
  });

  test('with the code it is given', () => {
    for (const code of ['ERR_INVALID_META', 'ERR_HANDSHAKE_FAILED', 'ERR_PROTOCOL'] as const) {
      assertRefused('{"a":1,"a":1}', /duplicate/, code, 'HELLO');
      assertRefused(Buffer.from([0xff]), /UTF-8/, code, 'HELLO');
      assertRefused('[', /not valid JSON/, code, 'HELLO');
    }
  });

  test('whatever JSON.parse refuses, and anything else only with a MuxError', () => {
    // Small edits to valid JSON land near the grammar's edges.
    const edit = fc.record({
      at: fc.nat(),
      remove: fc.nat({ max: 2 }),
      insert: fc.string({ maxLength: 2, unit: fc.constantFrom(...'[]{}:,"\\-+.0123456789eEtfnu \t\n\r\'x\u0000\u00e9\ud83d\ude00') }),
    });
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), fc.array(edit, { minLength: 1, maxLength: 3 }), (valid, edits) => {
        let edited = valid;
        for (const { at, remove, insert } of edits) {
          const i = at % (edited.length + 1);
          edited = edited.slice(0, i) + insert + edited.slice(i + remove);
        }
        // An edit may split a surrogate pair, which UTF-8 then carries as U+FFFD.
        const bytes = Buffer.from(edited, 'utf8');
        const text = bytes.toString('utf8');
        let expected: unknown;
        let nativeError: unknown = null;
        try {
          expected = JSON.parse(text);
        } catch (err) {
          nativeError = err;
        }
        let value: JsonValue;
        try {
          value = parse(bytes);
        } catch (err) {
          if (!(err instanceof MuxError)) throw err;
          if (nativeError === null)
            assert.match(err.message, /duplicate member|round trip|lone surrogate|nested deeper/, JSON.stringify(text));
          return;
        }
        assert.equal(nativeError, null, `accepted what JSON.parse refuses: ${JSON.stringify(text)}`);
        assert.deepEqual(value, expected);
      }),
      { ...FC, numRuns: 2000 },
    );
  });
});

// ---- cost --------------------------------------------------------------------------------

/** Bytes of heap that one parsed copy keeps, measured over `copies` copies that share nothing. */
function measuredHeap(gc: () => void, make: (salt: string) => string, copies: number): { heap: number; cost: number } {
  const inputs = Array.from({ length: copies }, (_, k) => Buffer.from(make(`${k.toString(36)}_`)));
  const kept = new Array<JsonValue>(copies).fill(null);
  gc();
  const before = process.memoryUsage().heapUsed;
  let cost = 0;
  for (let k = 0; k < copies; k++) {
    const parsed = parseIJson(inputs[k], META, 'ERR_INVALID_META');
    kept[k] = parsed.value;
    cost = Math.max(cost, parsed.cost);
  }
  gc();
  const heap = (process.memoryUsage().heapUsed - before) / copies;
  assert.equal(kept.length, copies); // keeps every copy alive until after the second measurement
  return { heap, cost };
}

/** `[item(0),item(1),...]` as long as it stays within `bytes`. */
function arrayOf(bytes: number, item: (i: number) => string): string {
  const items: string[] = [];
  let length = 2;
  for (let i = 0; length + item(i).length + 1 <= bytes; i++) {
    items.push(item(i));
    length += item(i).length + 1;
  }
  return `[${items.join(',')}]`;
}

describe('cost', () => {
  test('grows with what the value holds and stays modest for an ordinary meta', () => {
    const cost = (text: string): number => parseIJson(Buffer.from(text), META, 'ERR_INVALID_META').cost;
    const ordinary = cost('{"type":"file","name":"a/b.txt","size":123}');
    assert.ok(ordinary > 100 && ordinary < 1024, `ordinary meta: ${ordinary}`);
    assert.ok(cost(JSON.stringify('x'.repeat(60_000))) >= 60_000);
    assert.ok(cost(JSON.stringify('€'.repeat(20_000))) >= 40_000, 'two bytes per character above U+00FF');
    assert.ok(cost(arrayOf(60_000, () => '[]')) >= 20_000 * 40, 'an empty array is ~40 bytes of heap from 3 bytes of input');
    assert.ok(cost('[1,2,3]') < cost('[1,2,3,4]'));
    assert.ok(cost('{"a":1}') < cost('{"a":1,"b":1}'));
  });

  test('is at least the heap a parsed value keeps, for shapes that cost most per byte', (t) => {
    const gc = collectGarbage();
    if (!gc) {
      t.skip('no way to force a garbage collection here, so heap cannot be measured');
      return;
    }
    const SIZE = 8 * 1024;
    const COPIES = 100;
    const shapes: [string, (salt: string) => string][] = [
      ['one ASCII string', (s) => JSON.stringify(s + 'x'.repeat(SIZE - 2 - s.length))],
      ['one string with a character above U+00FF', (s) => JSON.stringify(`${s}€${'x'.repeat(SIZE - 5 - s.length)}`)],
      ['short strings', (s) => arrayOf(SIZE, (i) => `"${s}${i.toString(36)}"`)],
      ['doubles among nulls', () => arrayOf(SIZE, (i) => (i % 2 ? 'null' : '-0'))],
      ['empty arrays', () => arrayOf(SIZE, () => '[]')],
      ['empty objects', () => arrayOf(SIZE, () => '{}')],
      ['objects with a name never seen before', (s) => arrayOf(SIZE, (i) => `{"${s}${i.toString(36)}":1}`)],
      ['objects with an array-index name', () => arrayOf(SIZE, (i) => `{"${1e9 + i}":0}`)],
      ['one object with many names', (s) => `{${arrayOf(SIZE, (i) => `"${s}${i.toString(36)}":0`).slice(1, -1)}}`],
      ['depth 32', (s) => arrayOf(SIZE, (i) => `{"${s}${i}":`.repeat(MAX_JSON_DEPTH - 1) + '0' + '}'.repeat(MAX_JSON_DEPTH - 1))],
    ];
    for (const [name, make] of shapes) {
      const { heap, cost } = measuredHeap(gc, make, COPIES);
      assert.ok(cost >= heap, `${name}: cost ${cost} < measured heap ${heap.toFixed(0)}`);
    }
  });
});

// ---- encoding ----------------------------------------------------------------------------

/** A number parseIJson reads back as the same number: no -0 (JSON.stringify writes 0), no unsafe integer written in full. */
const roundTripNumber = fc.oneof(
  fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc
    .double({ noNaN: true, noDefaultInfinity: true })
    .filter((d) => !Object.is(d, -0) && (!Number.isInteger(d) || Number.isSafeInteger(d) || Math.abs(d) >= 1e21)),
);

/** Values an application may pass as meta, all within the rules. */
const { value: metaValue } = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 8 },
    fc.constant(null),
    fc.boolean(),
    roundTripNumber,
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), tie('value'), { maxKeys: 5, noNullPrototype: true }),
  ),
}));

describe('encodeIJson', () => {
  test('writes what JSON.stringify writes, and parseIJson reads back the same value', () => {
    fc.assert(
      fc.property(metaValue, (value) => {
        const encoded = encodeIJson(value, 'meta');
        assert.deepEqual(encoded, Buffer.from(JSON.stringify(value), 'utf8'));
        assert.deepEqual(parseIJson(encoded, META, 'ERR_INVALID_META').value, value);
      }),
      FC,
    );
  });

  test('treats undefined, functions, symbols and toJSON as JSON.stringify does', () => {
    const cases: unknown[] = [
      { a: undefined, b: () => 1, c: Symbol('c'), d: 1 },
      [undefined, () => 1, Symbol('c'), 1],
      { when: new Date(0), bad: new Date(NaN) },
      { nested: { toJSON: (key: string) => ({ key }) } },
      [{ toJSON: (key: string) => key }],
      { toJSON: () => undefined, x: 1 },
      Buffer.from('hi'),
      { a: [] as unknown[], b: {}, c: '' },
      { __proto__: null, plain: true },
    ];
    for (const value of cases) assert.equal(encodeIJson(value, 'meta').toString('utf8'), JSON.stringify(value) ?? 'null');
    assert.equal(encodeIJson(undefined, 'meta').toString('utf8'), 'null');
    assert.equal(encodeIJson({ toJSON: () => 'x' }, 'meta').toString('utf8'), '"x"');
  });

  test(`accepts nesting of exactly ${MAX_JSON_DEPTH} levels and refuses ${MAX_JSON_DEPTH + 1}, with the path`, () => {
    const deep = (depth: number): unknown => JSON.parse(nestedArrays(depth));
    assert.equal(encodeIJson(deep(MAX_JSON_DEPTH), 'meta').toString('utf8'), nestedArrays(MAX_JSON_DEPTH));
    assertEncodeRefused(deep(MAX_JSON_DEPTH + 1), new RegExp(`^meta${'\\[0\\]'.repeat(MAX_JSON_DEPTH)} is nested deeper than 32 levels$`));
    assertEncodeRefused(JSON.parse(nestedObjects(MAX_JSON_DEPTH + 1)), /^meta(\.a){32} is nested deeper than 32 levels$/);
  });

  test('refuses a cycle, naming where it loops back to', () => {
    const meta: Record<string, unknown> = { a: { list: [1, 2] } };
    (meta.a as { list: unknown[] }).list.push(meta.a);
    assertEncodeRefused(meta, /^meta\.a\.list\[2\] refers back to meta\.a \(a cycle\)$/);
    const self: unknown[] = [];
    self.push(self);
    assertEncodeRefused(self, /^meta\[0\] refers back to meta \(a cycle\)$/);
  });

  test('accepts plain objects from another realm, and refuses class instances from any', () => {
    const foreign = vm.runInNewContext('({ a: [1, { b: "c" }] })') as unknown;
    assert.equal(encodeIJson(foreign, 'meta').toString('utf8'), '{"a":[1,{"b":"c"}]}');
    assertEncodeRefused({ m: vm.runInNewContext('new Map()') }, /^meta\.m is a Map, not a plain object/);
    assertEncodeRefused([new Error('x')], /^meta\[0\] is an Error, not a plain object/);
  });

  test('accepts the same object twice when it is not its own ancestor', () => {
    const shared = { x: 1 };
    assert.equal(encodeIJson({ a: shared, b: [shared] }, 'meta').toString('utf8'), '{"a":{"x":1},"b":[{"x":1}]}');
  });

  test('refuses values JSON cannot hold, with their path', () => {
    assertEncodeRefused({ n: 10n }, /^meta\.n is a BigInt/);
    assertEncodeRefused({ a: [0, 1, 2, NaN] }, /^meta\.a\[3\] is NaN, which JSON cannot hold$/);
    assertEncodeRefused([Infinity], /^meta\[0\] is Infinity/);
    assertEncodeRefused({ 'a b': { x: -Infinity } }, /^meta\["a b"\]\.x is -Infinity/);
    assertEncodeRefused(() => 1, /^meta is a function, not a JSON value$/);
    assertEncodeRefused(Symbol('s'), /^meta is a symbol, not a JSON value$/);
    assertEncodeRefused({ m: new Map() }, /^meta\.m is a Map, not a plain object/);
    assertEncodeRefused([new (class Point {})()], /^meta\[0\] is a Point, not a plain object/);
    assertEncodeRefused(new Number(1), /^meta is a Number, not a plain object/);
  });

  test('refuses lone surrogates in strings and in member names', () => {
    assertEncodeRefused({ s: 'ok\ud83d' }, /^meta\.s has a string with a lone surrogate U\+D83D/);
    assertEncodeRefused(['\ude00x'], /^meta\[0\] has a string with a lone surrogate U\+DE00/);
    assertEncodeRefused({ k: { '\udbff': 1 } }, /^meta\.k\["\\udbff"\] has a member name with a lone surrogate U\+DBFF/);
    assert.equal(encodeIJson({ '😀': '😀' }, 'meta').toString('utf8'), '{"😀":"😀"}');
  });

  test('refuses integers beyond 2^53-1 that JSON.stringify writes in full, and accepts those it writes with an exponent', () => {
    assertEncodeRefused(2 ** 53, /^meta is 9007199254740992, an integer beyond 2\^53-1/);
    assertEncodeRefused({ id: -(2 ** 53) }, /^meta\.id is -9007199254740992/);
    assertEncodeRefused([1e20], /^meta\[0\] is 100000000000000000000/);
    assert.equal(encodeIJson(Number.MAX_SAFE_INTEGER, 'meta').toString('utf8'), '9007199254740991');
    assert.equal(encodeIJson(1e21, 'meta').toString('utf8'), '1e+21');
    assert.equal(parse(encodeIJson(1e21, 'meta')), 1e21);
  });

  test('names the value as the caller does', () => {
    assertEncodeRefused({ a: NaN }, /^meta\.a /);
    assert.throws(() => encodeIJson({ a: NaN }, 'hello'), /^MuxError: hello\.a is NaN/);
  });
});
