// I-JSON (RFC 7493) for OPEN meta and HELLO payloads: a peer's bytes are checked in one
// iterative pass before anything is built, so a hostile payload costs time linear in its
// length and a bounded stack, and is refused with a message that says what is wrong.
import type { JsonValue } from '../meta';
import { MuxError, type MuxErrorCode } from '../errors';

/**
 * Deepest nesting of arrays and objects allowed in meta and HELLO: a scalar has depth 0,
 * `[]` and `{}` depth 1, `[[1]]` depth 2. Defined by PROTOCOL.md, not a tunable.
 */
export const MAX_JSON_DEPTH = 32;

/** A value parsed by {@link parseIJson}, with what it costs to keep. */
export interface ParsedJson {
  /** The value, as `JSON.parse` builds it. */
  value: JsonValue;
  /** Estimated bytes of V8 heap the parsed value keeps alive: an upper bound, measured per shape. */
  cost: number;
}

/**
 * Parses UTF-8 `bytes` as one I-JSON value: valid UTF-8 without a byte order mark, RFC 8259
 * syntax, nesting at most {@link MAX_JSON_DEPTH}, no lone surrogate left by a `\uXXXX` escape,
 * no member name twice in one object (compared after unescaping), every number finite as a
 * double and every integer literal (no fraction, no exponent) within ±(2^53-1).
 *
 * The whole input is checked before the value is built; checking takes time linear in its
 * length and never recurses.
 *
 * @param bytes - The payload, as received.
 * @param what - Names the payload in messages: `"meta of stream 5"`, `"HELLO"`.
 * @param code - The code of the error thrown when the payload is refused.
 * @throws MuxError with `code`, naming `what` and, for syntax errors, the byte offset.
 */
export function parseIJson(bytes: Uint8Array, what: string, code: MuxErrorCode): ParsedJson {
  const text = decodeUtf8(bytes, what, code);
  const counts = new JsonScanner(text, what, code).scan();
  // The scan has accepted the text, so the native parser cannot fail and cannot go deep.
  return { value: JSON.parse(text) as JsonValue, cost: heapCost(counts) };
}

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BYTE_ORDER_MARK = 0xfeff;

function decodeUtf8(bytes: Uint8Array, what: string, code: MuxErrorCode): string {
  let text: string;
  try {
    // `fatal` refuses what a lenient decoder would replace with U+FFFD: bad sequences,
    // overlong forms and UTF-8-encoded surrogates.
    text = fatalDecoder.decode(bytes);
  } catch (err) {
    throw new MuxError(code, `${what} is not valid UTF-8`, { cause: err });
  }
  if (text.charCodeAt(0) === BYTE_ORDER_MARK) {
    throw new MuxError(code, `${what} starts with a byte order mark, which I-JSON forbids`);
  }
  return text;
}

// ---- the scan --------------------------------------------------------------------------

/** What the scan saw, for {@link heapCost}. */
interface JsonCounts {
  /** Arrays and objects. */
  containers: number;
  /** Values anywhere, the top-level one included. */
  values: number;
  /** Object members (name + value pairs). */
  members: number;
  /** String values and member names. */
  strings: number;
  /** UTF-16 units between the quotes of every string, doubled for strings with a unit above U+00FF. */
  stringBytes: number;
  /** Numbers that may not be small integers (V8 keeps those as 16-byte heap numbers). */
  heapNumbers: number;
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COLON = 0x3a;
const UPPER_E = 0x45;
const OPEN_BRACKET = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_BRACKET = 0x5d;
const LOWER_A = 0x61;
const LOWER_B = 0x62;
const LOWER_E = 0x65;
const LOWER_F = 0x66;
const LOWER_N = 0x6e;
const LOWER_R = 0x72;
const LOWER_T = 0x74;
const LOWER_U = 0x75;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const HIGH_SURROGATE_FIRST = 0xd800;
const LOW_SURROGATE_FIRST = 0xdc00;
const LOW_SURROGATE_LAST = 0xdfff;
const LATIN1_LAST = 0xff;

// Integer literals of up to 15 digits are below 2^53 and those of up to 9 below 2^30 (a V8
// small integer on every build), so only longer ones need converting to check.
const SAFE_INTEGER_DIGITS = 15;
const SMALL_INTEGER_DIGITS = 9;
/** Below 10^308 every number is finite as a double (the largest is about 1.8 * 10^308). */
const MAX_DOUBLE_DIGITS = 308;

/**
 * One pass over the decoded text that validates the JSON grammar and the I-JSON rules. The open
 * containers live in an explicit stack, so the nesting of the input never becomes recursion.
 * Positions are passed and returned rather than kept in a field: this is the hot loop of every
 * OPEN, and V8 keeps locals in registers.
 */
class JsonScanner {
  /** Nesting of the current position: 0 at the top level, 1 inside the outermost container. */
  private depth = 0;
  /** Per depth from 1: whether the open container is an object (else an array). */
  private readonly isObjectAt: boolean[] = new Array<boolean>(MAX_JSON_DEPTH + 1).fill(false);
  /** Per depth from 1: names seen so far in that object, to refuse duplicates (created at its first member). */
  private readonly namesAt: (Set<string> | undefined)[] = new Array<Set<string> | undefined>(MAX_JSON_DEPTH + 1).fill(undefined);
  private readonly counts: JsonCounts = { containers: 0, values: 0, members: 0, strings: 0, stringBytes: 0, heapNumbers: 0 };

  constructor(
    private readonly text: string,
    private readonly what: string,
    private readonly code: MuxErrorCode,
  ) {}

  scan(): JsonCounts {
    const text = this.text;
    let pos = 0;
    for (;;) {
      // At the start of a value.
      pos = skipWhitespace(text, pos);
      this.counts.values++;
      const c = text.charCodeAt(pos);
      if (c === OPEN_BRACKET || c === OPEN_BRACE) {
        const isObject = c === OPEN_BRACE;
        this.openContainer(isObject);
        pos = skipWhitespace(text, pos + 1);
        if (text.charCodeAt(pos) !== (isObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
          if (isObject) pos = this.scanMemberName(pos);
          continue; // to its first value
        }
        pos++;
        this.depth--;
      } else if (c === QUOTE) {
        pos = this.scanString(pos);
      } else if (c === MINUS || isDigit(c)) {
        pos = this.scanNumber(pos, c);
      } else {
        pos = this.scanLiteral(pos, c);
      }
      pos = this.moveToNextValue(pos);
      if (this.depth === 0) break;
    }
    pos = skipWhitespace(text, pos);
    if (pos < text.length) throw this.unexpected(pos, 'expected nothing more after the value');
    return this.counts;
  }

  private openContainer(isObject: boolean): void {
    if (this.depth === MAX_JSON_DEPTH) throw this.refuse(`is nested deeper than ${MAX_JSON_DEPTH} levels`);
    this.depth++;
    this.isObjectAt[this.depth] = isObject;
    this.namesAt[this.depth] = undefined;
    this.counts.containers++;
  }

  /**
   * After a complete value ending at `pos`: closes the containers that end there. Returns the
   * position of the next value (past a comma, and in an object past the member name), or once
   * the top-level value is complete (depth 0) the position after it.
   */
  private moveToNextValue(pos: number): number {
    const text = this.text;
    while (this.depth > 0) {
      pos = skipWhitespace(text, pos);
      const isObject = this.isObjectAt[this.depth];
      const c = text.charCodeAt(pos);
      if (c === COMMA) return isObject ? this.scanMemberName(pos + 1) : pos + 1;
      const close = isObject ? CLOSE_BRACE : CLOSE_BRACKET;
      if (c !== close) throw this.unexpected(pos, `expected ',' or '${String.fromCharCode(close)}'`);
      pos++;
      this.depth--;
    }
    return pos;
  }

  /** Scans `"name" :` from `pos`, records the name in the innermost object and returns the position after the colon. */
  private scanMemberName(pos: number): number {
    const text = this.text;
    pos = skipWhitespace(text, pos);
    if (text.charCodeAt(pos) !== QUOTE) throw this.unexpected(pos, 'expected a member name in double quotes');
    const end = this.scanString(pos);
    let name = text.slice(pos + 1, end - 1);
    // The string is valid by now, so JSON.parse only unescapes it.
    if (name.includes('\\')) name = JSON.parse(text.slice(pos, end)) as string;
    const names = this.namesAt[this.depth] ?? (this.namesAt[this.depth] = new Set());
    const known = names.size;
    names.add(name); // one hash lookup instead of has() then add(): wide objects are hashed per name
    if (names.size === known) throw this.refuse(`has a duplicate member ${quote(name)}`);
    this.counts.members++;
    pos = skipWhitespace(text, end);
    if (text.charCodeAt(pos) !== COLON) throw this.unexpected(pos, "expected ':' after the member name");
    return pos + 1;
  }

  private scanLiteral(pos: number, c: number): number {
    const literal = c === LOWER_T ? 'true' : c === LOWER_F ? 'false' : c === LOWER_N ? 'null' : undefined;
    if (literal === undefined) throw this.unexpected(pos, 'expected a value');
    if (!this.text.startsWith(literal, pos)) throw this.syntaxError(`expected ${literal}`, pos);
    return pos + literal.length;
  }

  /** Scans the string whose opening quote is at `pos`; returns the position after its closing quote. */
  private scanString(pos: number): number {
    const text = this.text;
    const start = pos;
    let unitBits = 0;
    pos++;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        const unit = this.escapedUnit(pos);
        unitBits |= unit;
        pos += text.charCodeAt(pos + 1) !== LOWER_U ? 2 : isHighSurrogate(unit) ? 12 : 6;
      } else if (c >= SPACE) {
        unitBits |= c;
        pos++;
      } else if (pos >= text.length) {
        throw this.syntaxError('unterminated string starting', start);
      } else {
        throw this.syntaxError(`control character ${codePointName(c)} must be escaped in a string`, pos);
      }
    }
    this.counts.strings++;
    this.counts.stringBytes += (pos - start - 1) * (unitBits > LATIN1_LAST ? 2 : 1);
    return pos + 1;
  }

  /**
   * Checks the escape at `pos` (a backslash) and returns the UTF-16 unit it stands for (for a
   * surrogate pair, the high half). A high surrogate must be followed at once by a `\u` low one.
   */
  private escapedUnit(pos: number): number {
    const text = this.text;
    const kind = text.charCodeAt(pos + 1);
    switch (kind) {
      case QUOTE:
      case BACKSLASH:
      case SLASH:
      case LOWER_B:
      case LOWER_F:
      case LOWER_N:
      case LOWER_R:
      case LOWER_T:
        return kind;
      case LOWER_U:
        break;
      default:
        if (pos + 1 >= text.length) throw this.syntaxError('unexpected end of input in a string', pos + 1);
        throw this.syntaxError(`invalid escape ${quote(text.slice(pos, pos + 2))}`, pos);
    }
    const unit = hexUnit(text, pos + 2);
    if (unit < 0) throw this.syntaxError('invalid \\u escape (expected 4 hex digits)', pos);
    if (unit < HIGH_SURROGATE_FIRST || unit > LOW_SURROGATE_LAST) return unit;
    const low = text.charCodeAt(pos + 6) === BACKSLASH && text.charCodeAt(pos + 7) === LOWER_U ? hexUnit(text, pos + 8) : -1;
    if (isHighSurrogate(unit) && low >= LOW_SURROGATE_FIRST && low <= LOW_SURROGATE_LAST) return unit;
    throw this.refuseAt(`has a lone surrogate ${text.slice(pos, pos + 6)} (I-JSON strings hold whole characters)`, pos);
  }

  /**
   * Scans the number that starts with `first` at `pos` and returns the position after it.
   * Refuses one that a double cannot hold: infinite, or an integer literal beyond ±(2^53-1),
   * which other languages would read as a different integer. Kept short for V8 to inline: a
   * fraction or exponent goes to {@link scanFractionAndExponent}.
   */
  private scanNumber(pos: number, first: number): number {
    const text = this.text;
    const start = pos;
    let c = first;
    if (c === MINUS) c = text.charCodeAt(++pos);
    const integerStart = pos;
    const firstDigit = c;
    if (c === DIGIT_0) {
      c = text.charCodeAt(++pos);
      if (isDigit(c)) throw this.syntaxError('number with a leading zero', start);
    } else if (isDigit(c)) {
      do c = text.charCodeAt(++pos);
      while (isDigit(c));
    } else {
      throw this.syntaxError("expected a digit after '-'", pos);
    }
    const integerDigits = pos - integerStart;
    if (c === DOT || c === LOWER_E || c === UPPER_E) return this.scanFractionAndExponent(start, integerDigits, pos);
    const isNegativeZero = start !== integerStart && firstDigit === DIGIT_0;
    if (integerDigits > SMALL_INTEGER_DIGITS || isNegativeZero) this.counts.heapNumbers++;
    if (integerDigits > SAFE_INTEGER_DIGITS) this.checkRoundTrip(start, pos, true);
    return pos;
  }

  /** Scans the fraction and exponent of the number at `start`, from `pos`; returns the position after it. */
  private scanFractionAndExponent(start: number, integerDigits: number, pos: number): number {
    const text = this.text;
    if (text.charCodeAt(pos) === DOT) pos = this.requireDigits(pos + 1, "expected a digit after '.'");
    // The value is below 10^(integerDigits + exponent), so a double holds it while that stays
    // within 10^308; only past that is it converted to check.
    let magnitudeDigits = integerDigits;
    const e = text.charCodeAt(pos);
    if (e === LOWER_E || e === UPPER_E) {
      const sign = text.charCodeAt(pos + 1);
      const exponentStart = sign === PLUS || sign === MINUS ? pos + 2 : pos + 1;
      pos = this.requireDigits(exponentStart, 'expected a digit in the exponent');
      if (sign !== MINUS) magnitudeDigits += pos - exponentStart > 3 ? Infinity : decimalValue(text, exponentStart, pos);
    }
    this.counts.heapNumbers++;
    if (magnitudeDigits > MAX_DOUBLE_DIGITS) this.checkRoundTrip(start, pos, false);
    return pos;
  }

  private checkRoundTrip(start: number, end: number, isIntegerLiteral: boolean): void {
    const literal = this.text.slice(start, end);
    const value = Number(literal);
    if (!Number.isFinite(value) || (isIntegerLiteral && Math.abs(value) > Number.MAX_SAFE_INTEGER)) {
      throw this.refuse(`has a number that does not survive a round trip: ${cut(literal)}`);
    }
  }

  private requireDigits(pos: number, expected: string): number {
    if (!isDigit(this.text.charCodeAt(pos))) throw this.syntaxError(expected, pos);
    return skipDigits(this.text, pos + 1);
  }

  // ---- errors ----------------------------------------------------------------------------

  private refuse(problem: string): MuxError {
    return new MuxError(this.code, `${this.what} ${problem}`);
  }

  private refuseAt(problem: string, at: number): MuxError {
    return this.refuse(`${problem} at offset ${utf8Length(this.text, at)}`);
  }

  private syntaxError(problem: string, at: number): MuxError {
    return this.refuseAt(`is not valid JSON: ${problem}`, at);
  }

  /** The character at `at` is not what the grammar allows there. */
  private unexpected(at: number, expected: string): MuxError {
    const found = at < this.text.length ? `character ${characterName(this.text.codePointAt(at)!)}` : 'end of input';
    return this.refuse(`is not valid JSON: unexpected ${found} at offset ${utf8Length(this.text, at)}, ${expected}`);
  }
}

function skipWhitespace(text: string, pos: number): number {
  for (;;) {
    const c = text.charCodeAt(pos);
    if (c > SPACE || (c !== SPACE && c !== LF && c !== CR && c !== TAB)) return pos;
    pos++;
  }
}

function isDigit(c: number): boolean {
  return c >= DIGIT_0 && c <= DIGIT_9;
}

/** The value of the decimal digits from `start` to `end` (a few: the caller keeps it exact). */
function decimalValue(text: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) value = value * 10 + (text.charCodeAt(i) - DIGIT_0);
  return value;
}

function skipDigits(text: string, pos: number): number {
  while (isDigit(text.charCodeAt(pos))) pos++;
  return pos;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= HIGH_SURROGATE_FIRST && unit < LOW_SURROGATE_FIRST;
}

/** The UTF-16 unit written as four hex digits at `pos`, or -1 if they are not four hex digits. */
function hexUnit(text: string, pos: number): number {
  let unit = 0;
  for (let i = pos; i < pos + 4; i++) {
    const digit = hexDigitValue(text.charCodeAt(i));
    if (digit < 0) return -1;
    unit = unit * 16 + digit;
  }
  return unit;
}

function hexDigitValue(c: number): number {
  if (c >= DIGIT_0 && c <= DIGIT_9) return c - DIGIT_0;
  const lower = c | 0x20; // an ASCII letter differs from its lower case only in this bit
  if (lower >= LOWER_A && lower <= LOWER_F) return lower - LOWER_A + 10;
  return -1;
}

/** Byte offset in the UTF-8 input of the character at `at` in the decoded text. */
function utf8Length(text: string, at: number): number {
  return Buffer.byteLength(text.slice(0, at), 'utf8');
}

// ---- heap cost ---------------------------------------------------------------------------

// What a parsed value keeps alive, from V8's object layouts on 64-bit Node 20 (no pointer
// compression): a slot of 8 bytes per array element or member value; an array 32 bytes plus a
// 16-byte elements header, an empty `{}` 56 (charged 64 per container); a string 16 bytes plus
// its characters, one byte each or two if any is above U+00FF, rounded up to 8 (charged 24 plus
// the characters); a number that is not a small integer 16 (or 8 in an array of numbers only).
// The member term is the one that surprises: an object whose names come in an order not seen
// before gets new hidden classes (maps and descriptor arrays), 70-120 bytes per member, and an
// array-index name such as "1000000000" a number dictionary of ~200 bytes. A peer chooses its
// names, so every member is charged 96.
//
//   cost = 1.25 * (8 * values + 64 * containers + 96 * members + 24 * strings
//                  + string characters (x2 in a string with one above U+00FF) + 16 * numbers
//                  that may not be small integers)
//
// Measured with `node --expose-gc` on Node 20.20 (V8 11.3), x64: heapUsed after gc() with
// thousands of parsed copies kept, divided by the number of copies; each copy has names and
// strings of its own, so copies share no hidden classes or internalized strings. 64 KiB
// inputs except the first three rows.
//
//   shape                                             bytes   measured    formula  ratio
//   {"type":"file","name":"a/b.txt","size":123}          46         81        667    8.2
//   the same, names never seen before                    55        347        689    2.0
//   HELLO settings with a hello token                   112        121       1242   10.3
//   one ASCII string                                  65536      65454      81958   1.25
//   one string, one character above U+00FF            65536     129195     163870   1.27
//   one string of U+20AC                              65534      41573      54658   1.31
//   short strings ["0a","0b",...]                     65530     227846     351303   1.54
//   short strings with a character above U+00FF       65533     209200     317150   1.52
//   small integers [0,1,...]                          65535     252778     327760   1.30
//   doubles [0.5,1.5,...]                             65533     122913     491580   4.0
//   doubles among nulls [1.5,null,...]                65534     232882     291360   1.25
//   -0 among nulls                                    65532     254779     327760   1.29
//   empty arrays [[],[],...]                          65536     864567    1966140   2.3
//   empty objects [{},{},...]                         65536    1383803    1966140   1.42
//   arrays of one [[0],[0],...]                       65533    1025640    1638390   1.60
//   small objects [{"a":1},...]                       65529     303439    2058079   6.8
//   small objects, a new name each                    65528     911485    1322748   1.45
//   small objects, a new name each, a double value    65524     866927    1235243   1.42
//   objects with an array-index name {"1000000000":0} 65536     798153    1012028   1.27
//   objects of 20 new names                           65305     357966     910295   2.5
//   objects of 2000 new names                         49785     275408     682495   2.5
//   one object of 6078 names                          65527     495987    1016490   2.0
//   depth 32, arrays                                  65473    1778996    2864490   1.61
//   depth 32, objects with new names                  65341     903335    1626814   1.80
//
// The 25% covers what layouts leave out (allocator and page overhead, other V8 versions): the
// formula is at least 1.25 times the measured heap of every shape. An ordinary meta is charged
// as if its names were new, a few hundred bytes.
const SLOT_BYTES = 8;
const CONTAINER_BYTES = 64;
const MEMBER_BYTES = 96;
const STRING_HEADER_BYTES = 24;
const HEAP_NUMBER_BYTES = 16;
/** Margin over the layouts above for what they leave out. */
const HEADROOM = 1.25;

/** Upper bound of the V8 heap a value with these counts keeps alive, in bytes (table above). */
function heapCost(counts: JsonCounts): number {
  const layoutBytes =
    SLOT_BYTES * counts.values +
    CONTAINER_BYTES * counts.containers +
    MEMBER_BYTES * counts.members +
    STRING_HEADER_BYTES * counts.strings +
    counts.stringBytes +
    HEAP_NUMBER_BYTES * counts.heapNumbers;
  return Math.ceil(HEADROOM * layoutBytes);
}

// ---- encoding --------------------------------------------------------------------------

/**
 * Encodes `value` (an application's meta or hello) as compact UTF-8 JSON, after checking that
 * a peer will accept it under the rules of {@link parseIJson}: only null, booleans, finite
 * numbers, strings, arrays and plain objects; nesting at most {@link MAX_JSON_DEPTH}; no lone
 * surrogate in a string or member name; no integer written without an exponent beyond
 * ±(2^53-1) (JSON.stringify writes integers below 1e21 in full); no cycles.
 *
 * Otherwise it behaves as `JSON.stringify`, whose output it equals for every value it accepts:
 * `toJSON()` is honoured (a Date becomes its ISO string); object members whose value is
 * `undefined`, a function or a symbol are left out, and such array elements become `null`;
 * `undefined` at the top level means `null`.
 *
 * @param value - What the application passed.
 * @param what - Names the value in messages and paths: `"meta"` gives `meta.files[3]`.
 * @throws MuxError `ERR_INVALID_META` naming the problem and its path.
 */
export function encodeIJson(value: unknown, what: string): Buffer {
  const json = new JsonEncoder(what).encode(value);
  return Buffer.from(json, 'utf8');
}

// A lone surrogate is a `Cs` code point: in a `u` regex a well-formed pair is one astral code
// point, so only halves without their partner match.
const LONE_SURROGATE = /\p{Cs}/u;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
/** JSON.stringify writes integers from here on with an exponent, which parseIJson accepts. */
const EXPONENT_FROM = 1e21;

/** What JSON.stringify leaves out of an object and turns into null in an array. */
function isSkipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

/**
 * Writes JSON as JSON.stringify does, checking each value on the way. It recurses on the
 * application's value, never deeper than MAX_JSON_DEPTH + 1 frames: the depth is checked first.
 */
class JsonEncoder {
  /** The containers being written, outermost first, to find cycles and name them. */
  private readonly ancestors: object[] = [];
  private readonly ancestorPaths: string[] = [];

  constructor(private readonly what: string) {}

  /** The JSON of a whole meta or hello; `undefined` there (given, or from toJSON) stands for null. */
  encode(value: unknown): string {
    const json = this.applyToJson(value, '');
    return this.encodeValue(json === undefined ? null : json, this.what);
  }

  /** Returns the JSON of `value` at `path`; a value JSON.stringify skips is refused here. */
  private encodeValue(value: unknown, path: string): string {
    if (value === null) return 'null';
    switch (typeof value) {
      case 'boolean':
        return value ? 'true' : 'false';
      case 'number':
        return this.encodeNumber(value, path);
      case 'string':
        this.checkWellFormed(value, path);
        return JSON.stringify(value);
      case 'object':
        return Array.isArray(value) ? this.encodeArray(value, path) : this.encodeObject(value, path);
      case 'bigint':
        throw this.refuse(path, 'is a BigInt, which JSON cannot hold (convert it to a string)');
      default:
        throw this.refuse(path, `is ${describeType(value)}, not a JSON value`);
    }
  }

  private encodeNumber(value: number, path: string): string {
    if (!Number.isFinite(value)) throw this.refuse(path, `is ${value}, which JSON cannot hold`);
    if (Number.isInteger(value) && Math.abs(value) > Number.MAX_SAFE_INTEGER && Math.abs(value) < EXPONENT_FROM) {
      throw this.refuse(path, `is ${value}, an integer beyond 2^53-1 that a peer cannot read back exactly (send it as a string)`);
    }
    return JSON.stringify(value);
  }

  private encodeArray(array: readonly unknown[], path: string): string {
    this.enter(array, path);
    const parts: string[] = [];
    for (let i = 0; i < array.length; i++) {
      const element = this.applyToJson(array[i], String(i));
      parts.push(isSkipped(element) ? 'null' : this.encodeValue(element, `${path}[${i}]`));
    }
    this.leave();
    return `[${parts.join(',')}]`;
  }

  private encodeObject(object: object, path: string): string {
    const prototype = Object.getPrototypeOf(object) as object | null;
    // Plain: made by `{}` or Object.create(null), in this realm or another (a vm context).
    if (prototype !== null && Object.getPrototypeOf(prototype) !== null) {
      throw this.refuse(path, `is ${describeType(object)}, not a plain object (give it a toJSON() method or convert it)`);
    }
    this.enter(object, path);
    const parts: string[] = [];
    const record = object as Record<string, unknown>;
    for (const name of Object.keys(record)) {
      const member = this.applyToJson(record[name], name);
      if (isSkipped(member)) continue;
      const memberPath = childPath(path, name);
      this.checkWellFormed(name, memberPath, 'member name');
      parts.push(`${JSON.stringify(name)}:${this.encodeValue(member, memberPath)}`);
    }
    this.leave();
    return `{${parts.join(',')}}`;
  }

  /** As JSON.stringify: an object (or BigInt) with a toJSON method is replaced by its result. */
  private applyToJson(value: unknown, key: string): unknown {
    if ((typeof value !== 'object' || value === null) && typeof value !== 'bigint') return value;
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    return typeof toJSON === 'function' ? (toJSON as (key: string) => unknown).call(value, key) : value;
  }

  private enter(container: object, path: string): void {
    const cycleStart = this.ancestors.indexOf(container);
    if (cycleStart >= 0) throw this.refuse(path, `refers back to ${this.ancestorPaths[cycleStart]} (a cycle)`);
    if (this.ancestors.length === MAX_JSON_DEPTH) throw this.refuse(path, `is nested deeper than ${MAX_JSON_DEPTH} levels`);
    this.ancestors.push(container);
    this.ancestorPaths.push(path);
  }

  private leave(): void {
    this.ancestors.pop();
    this.ancestorPaths.pop();
  }

  private checkWellFormed(text: string, path: string, kind = 'string'): void {
    const match = LONE_SURROGATE.exec(text);
    if (match)
      throw this.refuse(path, `has a ${kind} with a lone surrogate ${codePointName(match[0].charCodeAt(0))}, which I-JSON forbids`);
  }

  private refuse(path: string, problem: string): MuxError {
    return new MuxError('ERR_INVALID_META', `${path} ${problem}`);
  }
}

function childPath(path: string, name: string): string {
  return IDENTIFIER.test(name) ? `${path}.${name}` : `${path}[${quote(name)}]`;
}

function describeType(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value !== 'object' || value === null) return String(value);
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  if (typeof name !== 'string' || name === '') return 'an object of a class';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

// ---- message helpers ---------------------------------------------------------------------

/** Longest peer-supplied text quoted in a message, in UTF-16 units. */
const QUOTE_LIMIT = 40;

/** `text` cut to {@link QUOTE_LIMIT}, with an ellipsis when cut. */
function cut(text: string): string {
  return text.length > QUOTE_LIMIT ? `${text.slice(0, QUOTE_LIMIT)}...` : text;
}

/** `text` as a short JSON string: control characters escaped, so it cannot upset a terminal. */
function quote(text: string): string {
  if (text.length <= QUOTE_LIMIT) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, QUOTE_LIMIT)).slice(0, -1)}..."`;
}

function codePointName(codePoint: number): string {
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** A character for a message: printable ASCII in quotes, anything else as U+XXXX. */
function characterName(codePoint: number): string {
  if (codePoint <= SPACE || codePoint >= 0x7f) return codePointName(codePoint);
  const character = String.fromCharCode(codePoint);
  return character === "'" ? `"'"` : `'${character}'`;
}
