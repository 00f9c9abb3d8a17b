/**
 * The PROXY protocol parser (src/codec/proxy-header.ts) against headers built from the spec
 * (test/helpers/proxy-builder.ts): versions 1 and 2, TCP4, TCP6, UNKNOWN, LOCAL, UNSPEC and
 * AF_UNIX, each fed as truly separate chunks split at every offset and a byte at a time, with
 * the bytes after the header handed back intact; malformed and oversize headers refused
 * however they are split.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MuxError } from '../src/index';
import { ProxyHeaderParser, PROXY_MIN_HEADER_LIMIT, type ProxyHeader, type ProxyParseResult } from '../src/codec/proxy-header';
import { ipv4Block, ipv6Block, tlv, v1, v2, V2_SIGNATURE } from './helpers/proxy-builder';

const LIMIT = 4096;
/** What follows a header on the wire: the muxer's magic and the start of a HELLO. */
const AFTER = Buffer.from('TSMX\x02\x00\x00\x00', 'latin1');

/** Feeds `chunks` one by one; returns the first answer that is not `more` (or `more`). */
function feed(chunks: Buffer[], limit = LIMIT): { result: ProxyParseResult; pushes: number } {
  const parser = new ProxyHeaderParser(limit);
  let pushes = 0;
  for (const chunk of chunks) {
    pushes++;
    const result = parser.push(Buffer.from(chunk)); // a copy: no chunk shares memory with the next
    if (result.status !== 'more') return { result, pushes };
  }
  return { result: { status: 'more' }, pushes };
}

/** Every way to cut `bytes` once (0..n), two cuts around each offset, and a byte at a time. */
function splits(bytes: Buffer): Buffer[][] {
  const all: Buffer[][] = [];
  for (let i = 0; i <= bytes.length; i++) all.push([bytes.subarray(0, i), bytes.subarray(i)]);
  for (let i = 1; i < bytes.length - 1; i++) all.push([bytes.subarray(0, i), bytes.subarray(i, i + 1), bytes.subarray(i + 1)]);
  all.push([...bytes].map((byte) => Buffer.from([byte])));
  return all;
}

function assertParsed(bytes: Buffer, expected: Omit<ProxyHeader, 'length'>, headerLength: number): void {
  const wire = Buffer.concat([bytes, AFTER]);
  for (const chunks of splits(wire)) {
    const { result, pushes } = feed(chunks);
    const where = `split ${chunks.map((c) => c.length).join('+')}`;
    assert.equal(result.status, 'done', where);
    if (result.status !== 'done') return;
    assert.deepEqual(result.header, { ...expected, length: headerLength }, where);
    // The answer comes with the chunk that completes the header: what came with it, and only that, is handed back.
    const pushed = chunks.slice(0, pushes).reduce((sum, c) => sum + c.length, 0);
    assert.equal(pushed >= headerLength && pushed - chunks[pushes - 1].length < headerLength, true, where);
    assert.deepEqual(result.rest, wire.subarray(headerLength, pushed), where);
  }
}

function assertRefused(bytes: Buffer, message: RegExp, limit = LIMIT): void {
  for (const chunks of splits(bytes)) {
    const { result } = feed(chunks, limit);
    const where = `split ${chunks.map((c) => c.length).join('+')}`;
    assert.equal(result.status, 'error', where);
    if (result.status !== 'error') return;
    assert.ok(result.error instanceof MuxError, where);
    assert.equal(result.error.code, 'ERR_PROXY_HEADER', where);
    assert.match(result.error.message, message, where);
  }
}

const V4_SOURCE = { address: '192.0.2.7', port: 56324, family: 'IPv4' as const };
const V4_DESTINATION = { address: '198.51.100.1', port: 443, family: 'IPv4' as const };

describe('PROXY protocol version 1', () => {
  test('parses TCP4 at every split offset and a byte at a time, handing back the bytes after it', () => {
    const header = v1('TCP4 192.0.2.7 198.51.100.1 56324 443');
    assertParsed(header, { version: 1, command: 'PROXY', source: V4_SOURCE, destination: V4_DESTINATION }, header.length);
  });

  test('parses TCP6, giving addresses in the notation Node gives a socket', () => {
    const header = v1('TCP6 2001:DB8:0:0:0:0:0:7 ::FFFF:198.51.100.1 65535 0');
    assertParsed(
      header,
      {
        version: 1,
        command: 'PROXY',
        source: { address: '2001:db8::7', port: 65535, family: 'IPv6' },
        destination: { address: '::ffff:198.51.100.1', port: 0, family: 'IPv6' },
      },
      header.length,
    );
  });

  test('parses UNKNOWN, with or without addresses after it, as "keep the socket\'s address"', () => {
    for (const header of [v1('UNKNOWN'), v1('UNKNOWN ffff:f::1 ffff:f::2 65535 65535')]) {
      assertParsed(header, { version: 1, command: 'PROXY', source: null, destination: null }, header.length);
    }
  });

  test('takes the longest header the spec allows (107 bytes) and refuses one byte more', () => {
    const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const longest = v1(`UNKNOWN ${full} ${full} 65535 65535`);
    assert.equal(longest.length, 107);
    assertParsed(longest, { version: 1, command: 'PROXY', source: null, destination: null }, 107);
    assertRefused(v1(`UNKNOWN ${full} ${full} 65535 655350`), /no CRLF within 107 bytes/);
  });

  test('refuses a line without CRLF once 107 bytes have come, without waiting for more', () => {
    const { result, pushes } = feed([Buffer.from(`PROXY TCP4 ${'1'.repeat(101)}`), Buffer.from('more')]);
    assert.equal(result.status, 'error');
    assert.equal(pushes, 1);
  });

  const malformed: [string, Buffer, RegExp][] = [
    ['an unknown protocol', v1('TCP5 192.0.2.7 198.51.100.1 1 2'), /expected TCP4, TCP6 or UNKNOWN/],
    ['a missing field', v1('TCP4 192.0.2.7 198.51.100.1 1'), /expected 6 fields/],
    ['an extra field', v1('TCP4 192.0.2.7 198.51.100.1 1 2 3'), /expected 6 fields/],
    ['two spaces', v1('TCP4  192.0.2.7 198.51.100.1 1 2'), /expected 6 fields/],
    ['an IPv4 octet over 255', v1('TCP4 256.0.2.7 198.51.100.1 1 2'), /not an IPv4 address/],
    ['an IPv4 octet with a leading zero', v1('TCP4 192.0.2.07 198.51.100.1 1 2'), /not an IPv4 address/],
    ['an IPv6 address under TCP4', v1('TCP4 ::1 198.51.100.1 1 2'), /not an IPv4 address/],
    ['an IPv4 address under TCP6', v1('TCP6 ::1 198.51.100.1 1 2'), /not an IPv6 address/],
    ['an IPv6 zone', v1('TCP6 fe80::1%eth0 ::1 1 2'), /not an IPv6 address/],
    ['a port over 65535', v1('TCP4 192.0.2.7 198.51.100.1 65536 2'), /"65536" is not a port/],
    ['a port with a leading zero', v1('TCP4 192.0.2.7 198.51.100.1 080 2'), /"080" is not a port/],
    ['a negative port', v1('TCP4 192.0.2.7 198.51.100.1 -1 2'), /"-1" is not a port/],
    ['an empty protocol', v1(''), /expected TCP4, TCP6 or UNKNOWN, got ""/],
    ['a lower-case signature', Buffer.from('proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n'), /expected a PROXY protocol header/],
    ['CR without LF', Buffer.from('PROXY UNKNOWN\rX\n'), /CR not followed by LF/],
    ['LF alone', Buffer.from('PROXY UNKNOWN\n'), /byte 0x0a in the line/],
    ['a byte outside printable ASCII', Buffer.from('PROXY UNKNOWN \xe9\r\n', 'latin1'), /byte 0xe9 in the line/],
    ['a NUL byte', Buffer.from('PROXY TCP4 192.0.2.7\x00 198.51.100.1 1 2\r\n', 'latin1'), /byte 0x00/],
  ];
  for (const [what, bytes, message] of malformed) {
    test(`refuses ${what}, however the bytes are split`, () => assertRefused(bytes, message));
  }
});

describe('PROXY protocol version 2', () => {
  test('parses TCP4 with TLVs at every split offset and a byte at a time; the TLVs are skipped', () => {
    const body = Buffer.concat([
      ipv4Block('192.0.2.7', '198.51.100.1', 56324, 443),
      tlv(0x05, Buffer.from('unique-id-1234')), // PP2_TYPE_UNIQUE_ID
      tlv(0x04, Buffer.alloc(0)), // PP2_TYPE_NOOP
    ]);
    const header = v2({ body });
    assertParsed(header, { version: 2, command: 'PROXY', source: V4_SOURCE, destination: V4_DESTINATION }, header.length);
  });

  test('parses TCP6, giving addresses in the notation Node gives a socket', () => {
    const header = v2({
      familyProtocol: 0x21,
      body: ipv6Block('20010db8000000000000000000000007', '00000000000000000000ffffc6336401', 1, 65535),
    });
    assertParsed(
      header,
      {
        version: 2,
        command: 'PROXY',
        source: { address: '2001:db8::7', port: 1, family: 'IPv6' },
        destination: { address: '::ffff:198.51.100.1', port: 65535, family: 'IPv6' },
      },
      header.length,
    );
  });

  test('parses LOCAL (a health check) as "keep the socket\'s address", skipping any addresses it carries', () => {
    for (const header of [
      v2({ command: 0, familyProtocol: 0x00 }),
      v2({ command: 0, familyProtocol: 0x11, body: ipv4Block('192.0.2.7', '198.51.100.1', 1, 2) }),
    ]) {
      assertParsed(header, { version: 2, command: 'LOCAL', source: null, destination: null }, header.length);
    }
  });

  test('parses AF_UNSPEC and AF_UNIX as "keep the socket\'s address"', () => {
    for (const header of [v2({ familyProtocol: 0x00 }), v2({ familyProtocol: 0x31, body: Buffer.alloc(216, 0x61) })]) {
      assertParsed(header, { version: 2, command: 'PROXY', source: null, destination: null }, header.length);
    }
  });

  test('refuses a header whose declared length is over the limit as soon as its fixed part arrives', () => {
    const header = v2({ body: Buffer.alloc(12), length: 300 });
    const { result, pushes } = feed([header.subarray(0, 16), header.subarray(16)], 256);
    assert.equal(result.status, 'error');
    assert.equal(pushes, 1, 'refused before the body came');
    assertRefused(v2({ body: Buffer.alloc(LIMIT) }), /version 2 header of 4112 bytes is over the limit of 4096/);
    // At the limit exactly it is taken.
    const atLimit = v2({
      body: Buffer.concat([ipv4Block('192.0.2.7', '198.51.100.1', 56324, 443), Buffer.alloc(PROXY_MIN_HEADER_LIMIT - 28)]),
    });
    assert.equal(atLimit.length, PROXY_MIN_HEADER_LIMIT);
    assert.equal(feed([atLimit], PROXY_MIN_HEADER_LIMIT).result.status, 'done');
  });

  const malformed: [string, Buffer, RegExp][] = [
    ['version 1 in the version nibble', v2({ version: 1 }), /version 2 signature with version 1/],
    ['version 3 in the version nibble', v2({ version: 3 }), /version 2 signature with version 3/],
    ['an unknown command', v2({ command: 2 }), /unknown command 2/],
    ['an unknown address family', v2({ familyProtocol: 0x41 }), /unknown address family 4/],
    ['an unknown transport protocol', v2({ familyProtocol: 0x13 }), /unknown transport protocol 3/],
    ['UDP over IPv4', v2({ familyProtocol: 0x12, body: ipv4Block('192.0.2.7', '198.51.100.1', 1, 2) }), /datagram transport/],
    ['UDP over IPv6', v2({ familyProtocol: 0x22, body: Buffer.alloc(36) }), /datagram transport/],
    ['TCP4 with a short address block', v2({ body: Buffer.alloc(8) }), /8 bytes of addresses, 12 needed for IPv4/],
    [
      'TCP6 with an IPv4-sized address block',
      v2({ familyProtocol: 0x21, body: Buffer.alloc(12) }),
      /12 bytes of addresses, 36 needed for IPv6/,
    ],
    [
      'a signature wrong in its last byte',
      Buffer.concat([V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0b]), Buffer.alloc(4)]),
      /expected a PROXY protocol header/,
    ],
  ];
  for (const [what, bytes, message] of malformed) {
    test(`refuses ${what}, however the bytes are split`, () => assertRefused(bytes, message));
  }
});

describe('PROXY protocol: not a header at all', () => {
  const others: [string, Buffer][] = [
    ['a muxer client that skipped the balancer', Buffer.from('TSMX\x02\x01', 'latin1')],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n')],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5])],
  ];
  for (const [what, bytes] of others) {
    test(`refuses ${what} at its first byte`, () => {
      const { result, pushes } = feed([bytes.subarray(0, 1), bytes.subarray(1)]);
      assert.equal(result.status, 'error');
      assert.equal(pushes, 1);
      if (result.status === 'error')
        assert.match(result.error.message, /expected a PROXY protocol header \(version 1 or 2\), got other bytes/);
    });
  }

  test('a parser that failed answers the same error again; one that succeeded throws if fed', () => {
    const failed = new ProxyHeaderParser(LIMIT);
    const first = failed.push(Buffer.from('X'));
    assert.deepEqual(failed.push(Buffer.from('PROXY UNKNOWN\r\n')), first);
    const done = new ProxyHeaderParser(LIMIT);
    assert.equal(done.push(v1('UNKNOWN')).status, 'done');
    assert.throws(() => done.push(Buffer.from('x')), /already parsed/);
  });

  test('says whether a connection that ended brought no header or part of one', () => {
    const none = new ProxyHeaderParser(LIMIT);
    assert.match(none.endedEarly().message, /closed before its PROXY protocol header/);
    const part = new ProxyHeaderParser(LIMIT);
    assert.equal(part.push(Buffer.from('PROXY TC')).status, 'more');
    assert.match(part.endedEarly().message, /closed after 8 bytes of a PROXY protocol header/);
    assert.equal(part.endedEarly().code, 'ERR_PROXY_HEADER');
  });

  test('random bytes and random partitions of valid headers never throw, and agree with one whole push', () => {
    const valid = [
      v1('TCP4 192.0.2.7 198.51.100.1 56324 443'),
      v2({ body: Buffer.concat([ipv4Block('192.0.2.7', '198.51.100.1', 1, 2), tlv(1, Buffer.from('h2'))]) }),
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
          fc
            .constantFrom(...valid)
            .chain((header) => fc.uint8Array({ maxLength: 40 }).map((tail) => Buffer.concat([header, Buffer.from(tail)]))),
        ),
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }),
        (bytes, sizes) => {
          const chunks: Buffer[] = [];
          let at = 0;
          for (const size of sizes) {
            if (at >= bytes.length) break;
            chunks.push(bytes.subarray(at, at + size));
            at += size;
          }
          if (at < bytes.length) chunks.push(bytes.subarray(at));
          const whole = feed([bytes]).result;
          const parts = feed(chunks).result;
          assert.equal(parts.status, whole.status);
          if (whole.status === 'done' && parts.status === 'done') {
            assert.deepEqual(parts.header, whole.header);
            assert.deepEqual(Buffer.concat([parts.rest, ...remaining(chunks, bytes, parts)]), whole.rest);
          }
        },
      ),
      { seed: 15, numRuns: 500 },
    );
  });
});

/** The chunks not yet pushed when `result` came (feed stops at the first answer). */
function remaining(chunks: Buffer[], _bytes: Buffer, result: ProxyParseResult): Buffer[] {
  if (result.status !== 'done') return [];
  let seen = 0;
  for (let i = 0; i < chunks.length; i++) {
    seen += chunks[i].length;
    if (seen >= result.header.length) return chunks.slice(i + 1);
  }
  return [];
}
