/**
 * PROXY protocol headers built field by field from HAProxy's proxy-protocol.txt, independent
 * of src/codec/proxy-header.ts, so the tests compare the parser against the spec.
 */

/** The 12-byte version 2 signature (spec section 2.2). */
export const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A version 1 line, CRLF added: `v1('TCP4 192.0.2.1 198.51.100.1 56324 443')`. */
export function v1(fields: string): Buffer {
  return Buffer.from(`PROXY ${fields}\r\n`, 'latin1');
}

export interface V2Fields {
  /** High nibble of byte 13. Default 2. */
  version?: number;
  /** Low nibble of byte 13: 0 LOCAL, 1 PROXY. Default 1. */
  command?: number;
  /** Byte 14: family (high nibble) and transport (low): 0x11 TCP4, 0x21 TCP6, 0x00 UNSPEC, 0x31 UNIX. Default 0x11. */
  familyProtocol?: number;
  /** The address block (and anything after it: TLVs). */
  body?: Buffer;
  /** Declared length; default the body's. */
  length?: number;
}

/** A version 2 header: signature, version/command, family/protocol, u16 length, body. */
export function v2(fields: V2Fields = {}): Buffer {
  const body = fields.body ?? Buffer.alloc(0);
  const fixed = Buffer.alloc(4);
  fixed[0] = ((fields.version ?? 2) << 4) | (fields.command ?? 1);
  fixed[1] = fields.familyProtocol ?? 0x11;
  fixed.writeUInt16BE(fields.length ?? body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

/** The IPv4 address block: source and destination addresses, then their ports. */
export function ipv4Block(source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  const block = Buffer.alloc(12);
  source.split('.').forEach((octet, i) => (block[i] = Number(octet)));
  destination.split('.').forEach((octet, i) => (block[4 + i] = Number(octet)));
  block.writeUInt16BE(sourcePort, 8);
  block.writeUInt16BE(destinationPort, 10);
  return block;
}

/** The IPv6 address block, from 16-byte hex strings. */
export function ipv6Block(sourceHex: string, destinationHex: string, sourcePort: number, destinationPort: number): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sourcePort, 0);
  ports.writeUInt16BE(destinationPort, 2);
  return Buffer.concat([Buffer.from(sourceHex, 'hex'), Buffer.from(destinationHex, 'hex'), ports]);
}

/** One TLV: type byte, u16 length, value. */
export function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}
