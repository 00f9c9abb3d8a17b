/**
 * The PROXY protocol header, versions 1 and 2 (HAProxy's proxy-protocol.txt), which a load
 * balancer writes before the client's own bytes to tell the server who the client is.
 *
 * Pure and incremental, as the frame decoder is: {@link ProxyHeaderParser.push} takes the
 * socket's chunks as they come and answers "more", the header with the bytes that followed
 * it, or why the bytes are not a header this side accepts. No sockets, no timers.
 *
 * A header is read once per connection and is small, so the chunks are kept as they are and
 * joined only to look at the first few hundred bytes; a large first read (a header and a TLS
 * ClientHello together) is never copied whole.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import { MuxError } from '../errors';

/** Version 1's text signature, defined by the spec: `PROXY` and a space. */
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** Longest version 1 header, CRLF included: defined by the spec, not an implementation choice. */
export const PROXY_V1_MAX_LENGTH = 107;

/** Version 2's binary signature, defined by the spec: it cannot start any text protocol. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Version 2's fixed part: signature, version and command, family and protocol, u16 length. */
export const PROXY_V2_FIXED_LENGTH = V2_SIGNATURE.length + 1 + 1 + 2;

/** Largest version 2 address block the spec defines (two AF_UNIX paths of 108 bytes each). */
const V2_UNIX_ADDRESSES = 216;

/** The smallest header limit that still takes every header the spec allows without TLVs. */
export const PROXY_MIN_HEADER_LIMIT = PROXY_V2_FIXED_LENGTH + V2_UNIX_ADDRESSES;

/** One end of the proxied connection, as the balancer saw it. */
export interface ProxyEndpoint {
  /** The address in Node's own notation (`192.0.2.1`, `2001:db8::1`, `::ffff:192.0.2.1`). */
  address: string;
  /** TCP port. */
  port: number;
  /** Address family, as `net.Socket#remoteFamily` names it. */
  family: 'IPv4' | 'IPv6';
}

/** A parsed header. */
export interface ProxyHeader {
  /** Protocol version of the header: 1 (text) or 2 (binary). */
  version: 1 | 2;
  /**
   * `PROXY`: relayed for a client, whose address is in {@link source} unless the balancer
   * could not tell it (v1 `UNKNOWN`, v2 AF_UNSPEC or AF_UNIX). `LOCAL` (v2 only): made by the
   * balancer itself, a health check; the socket's own addresses stand.
   */
  command: 'PROXY' | 'LOCAL';
  /** The client; null when the socket's own peer address stands (see {@link command}). */
  source: ProxyEndpoint | null;
  /** The address the client connected to on the balancer; null with {@link source}. */
  destination: ProxyEndpoint | null;
  /** Bytes the header took on the wire. */
  length: number;
}

/** What {@link ProxyHeaderParser.push} answers. */
export type ProxyParseResult =
  { status: 'more' } | { status: 'done'; header: ProxyHeader; rest: Buffer } | { status: 'error'; error: MuxError };

const MORE: ProxyParseResult = Object.freeze({ status: 'more' });

/**
 * Reads one PROXY header from chunks fed in order. After `done` or `error` it is finished:
 * further pushes answer the same error, or throw for a parser that already succeeded.
 */
export class ProxyHeaderParser {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private failure: MuxError | null = null;
  private finished = false;

  /**
   * @param maxBytes largest header accepted, in bytes, TLVs included (version 1 is capped at
   *   {@link PROXY_V1_MAX_LENGTH} by the spec whatever this says).
   */
  constructor(private readonly maxBytes: number) {}

  /** Bytes pushed so far and not yet handed back. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /** Takes the next chunk of the connection and says where the header stands. */
  push(chunk: Buffer): ProxyParseResult {
    if (this.failure) return { status: 'error', error: this.failure };
    if (this.finished) throw new Error('ProxyHeaderParser: the header was already parsed');
    if (chunk.length === 0) return MORE;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    let result: ProxyParseResult;
    try {
      result = this.parse();
    } catch (err) {
      if (!(err instanceof MuxError)) throw err;
      this.failure = err;
      this.chunks.length = 0;
      return { status: 'error', error: err };
    }
    if (result.status === 'done') {
      this.finished = true;
      this.chunks.length = 0;
      this.bytes = 0;
    }
    return result;
  }

  /**
   * The connection ended after `bufferedBytes` bytes: the error to report (a missing header,
   * or one cut short).
   */
  endedEarly(): MuxError {
    return this.bytes === 0
      ? headerError('the connection closed before its PROXY protocol header')
      : headerError(`the connection closed after ${this.bytes} bytes of a PROXY protocol header`);
  }

  private parse(): ProxyParseResult {
    const probe = this.peek(Math.min(this.bytes, PROXY_V2_FIXED_LENGTH));
    if (probe[0] === V2_SIGNATURE[0]) return this.parseV2(probe);
    if (probe[0] === V1_PREFIX[0]) return this.parseV1();
    throw headerError('expected a PROXY protocol header (version 1 or 2), got other bytes');
  }

  private parseV1(): ProxyParseResult {
    const seen = this.peek(Math.min(this.bytes, PROXY_V1_MAX_LENGTH));
    const prefix = Math.min(seen.length, V1_PREFIX.length);
    if (!seen.subarray(0, prefix).equals(V1_PREFIX.subarray(0, prefix))) {
      throw headerError('expected a PROXY protocol header (version 1 or 2), got other bytes');
    }
    for (let i = 0; i < seen.length; i++) {
      const byte = seen[i];
      if (byte === 0x0d) {
        if (i + 1 === seen.length) break; // the LF may be in the next chunk
        if (seen[i + 1] !== 0x0a) throw headerError('version 1 header: CR not followed by LF');
        const length = i + 2;
        const header = parseV1Line(seen.toString('latin1', 0, i), length);
        return { status: 'done', header, rest: this.rest(length) };
      }
      // Printable ASCII only: the line is for logs, and nothing else may hide in it.
      if (byte < 0x20 || byte > 0x7e) throw headerError(`version 1 header: byte 0x${byte.toString(16).padStart(2, '0')} in the line`);
    }
    if (seen.length >= PROXY_V1_MAX_LENGTH) throw headerError(`version 1 header: no CRLF within ${PROXY_V1_MAX_LENGTH} bytes`);
    return MORE;
  }

  private parseV2(probe: Buffer): ProxyParseResult {
    const signature = Math.min(probe.length, V2_SIGNATURE.length);
    if (!probe.subarray(0, signature).equals(V2_SIGNATURE.subarray(0, signature))) {
      throw headerError('expected a PROXY protocol header (version 1 or 2), got other bytes');
    }
    if (probe.length < PROXY_V2_FIXED_LENGTH) return MORE;
    const versionCommand = probe[12];
    if (versionCommand >> 4 !== 2) throw headerError(`version 2 signature with version ${versionCommand >> 4}`);
    const command = versionCommand & 0x0f;
    if (command > 1) throw headerError(`version 2 header: unknown command ${command}`);
    const familyProtocol = probe[13];
    const family = familyProtocol >> 4;
    const protocol = familyProtocol & 0x0f;
    if (family > 3) throw headerError(`version 2 header: unknown address family ${family}`);
    if (protocol > 2) throw headerError(`version 2 header: unknown transport protocol ${protocol}`);
    const length = PROXY_V2_FIXED_LENGTH + probe.readUInt16BE(14);
    // Checked on the declared length, before a byte of the body is held.
    if (length > this.maxBytes) throw headerError(`version 2 header of ${length} bytes is over the limit of ${this.maxBytes}`);
    if (this.bytes < length) return MORE;
    const whole = this.peek(length);
    const header =
      command === 0
        ? { version: 2 as const, command: 'LOCAL' as const, source: null, destination: null, length }
        : parseV2Addresses(whole.subarray(PROXY_V2_FIXED_LENGTH), family, protocol, length);
    return { status: 'done', header, rest: this.rest(length) };
  }

  /** The first `n` buffered bytes (n ≤ bytes): a view of the first chunk when it holds them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    for (const chunk of this.chunks) {
      const size = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, size);
      offset += size;
      if (offset === n) break;
    }
    return out;
  }

  /** Everything after the first `n` bytes, as one buffer (a view when it lies in one chunk). */
  private rest(n: number): Buffer {
    let skip = n;
    const after: Buffer[] = [];
    for (const chunk of this.chunks) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      after.push(skip === 0 ? chunk : chunk.subarray(skip));
      skip = 0;
    }
    return after.length === 1 ? after[0] : Buffer.concat(after);
  }
}

/** `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443` (without its CRLF). */
function parseV1Line(line: string, length: number): ProxyHeader {
  const fields = line.split(' ');
  const protocol = fields[1];
  if (protocol === 'UNKNOWN') {
    // The spec: whatever follows UNKNOWN up to the CRLF is to be ignored.
    return { version: 1, command: 'PROXY', source: null, destination: null, length };
  }
  if (protocol !== 'TCP4' && protocol !== 'TCP6') {
    throw headerError(`version 1 header: expected TCP4, TCP6 or UNKNOWN, got "${protocol ?? ''}"`);
  }
  if (fields.length !== 6) throw headerError(`version 1 header: expected 6 fields separated by single spaces, got "${line}"`);
  const family = protocol === 'TCP4' ? 'IPv4' : 'IPv6';
  const source = v1Endpoint(fields[2], fields[4], family);
  const destination = v1Endpoint(fields[3], fields[5], family);
  return { version: 1, command: 'PROXY', source, destination, length };
}

function v1Endpoint(address: string, port: string, family: 'IPv4' | 'IPv6'): ProxyEndpoint {
  if (family === 'IPv4' ? !isIPv4(address) : !isIPv6(address) || address.includes('%')) {
    throw headerError(`version 1 header: "${address}" is not an ${family} address`);
  }
  // Decimal without leading zeros, 0 to 65535, as the spec writes it.
  if (!/^(0|[1-9]\d{0,4})$/.test(port) || Number(port) > 65535) throw headerError(`version 1 header: "${port}" is not a port`);
  return { address: family === 'IPv6' ? canonicalIPv6(address) : address, port: Number(port), family };
}

/** The address block of a v2 PROXY command; `body` is everything after the fixed part. */
function parseV2Addresses(body: Buffer, family: number, protocol: number, length: number): ProxyHeader {
  const unknown: ProxyHeader = { version: 2, command: 'PROXY', source: null, destination: null, length };
  // AF_UNSPEC, or AF_UNIX: no address this side could use; the socket's own stands.
  if (family === 0 || family === 3) return unknown;
  if (protocol !== 1) throw headerError(`version 2 header: a ${protocol === 2 ? 'datagram' : 'unspecified'} transport on a TCP connection`);
  const size = family === 1 ? 4 : 16;
  if (body.length < 2 * size + 4) {
    throw headerError(`version 2 header: ${body.length} bytes of addresses, ${2 * size + 4} needed for ${family === 1 ? 'IPv4' : 'IPv6'}`);
  }
  // What follows the addresses is TLVs (TLS details, ids): nothing this side needs, skipped.
  const ipFamily = family === 1 ? 'IPv4' : 'IPv6';
  const text = family === 1 ? ipv4Text : ipv6Text;
  return {
    ...unknown,
    source: { address: text(body.subarray(0, size)), port: body.readUInt16BE(2 * size), family: ipFamily },
    destination: { address: text(body.subarray(size, 2 * size)), port: body.readUInt16BE(2 * size + 2), family: ipFamily },
  };
}

function ipv4Text(bytes: Buffer): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

/** The notation Node itself gives a socket's IPv6 address (RFC 5952: `::1`, `::ffff:192.0.2.1`). */
function canonicalIPv6(address: string): string {
  return new SocketAddress({ address, family: 'ipv6' }).address;
}

function headerError(message: string): MuxError {
  return new MuxError('ERR_PROXY_HEADER', `PROXY protocol: ${message}`);
}
