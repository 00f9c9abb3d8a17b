/**
 * Fluent builder for expected wire bytes, written field by field from PROTOCOL.md and
 * independent of src/codec, so tests compare the encoder against the spec rather than
 * against itself:
 *
 *   wire().magic().header({ type: FrameType.OPEN, stream: 1 }).json({ a: 1 }).bytes()
 *
 * A header without `length` is backfilled with the number of bytes appended after it, up
 * to the next header() or bytes() (pg-protocol's buffer-writer does the same).
 */

// PROTOCOL.md section 3: the header's version byte (written here, not imported from src).
const VERSION = 2;

export interface HeaderFields {
  /** Frame type byte (a FrameType, or any number 0..255 for malformed frames). */
  type: number;
  /** 16-bit flags field. Default 0. */
  flags?: number;
  /** The full 32-bit stream id word, reserved bit included. */
  stream: number;
  /** Declared payload length; omitted = the bytes appended after this header. */
  length?: number;
  /** Version byte. Default 1. */
  version?: number;
}

export class FrameBuilder {
  private readonly parts: number[] = [];
  private pendingLengthAt = -1;

  /** The 4-byte preface "TSMX". */
  magic(): this {
    return this.ascii('TSMX');
  }

  /** A 12-byte header: version u8, type u8, flags u16, stream id u32, length u32. */
  header(fields: HeaderFields): this {
    this.backfill();
    this.u8(fields.version ?? VERSION)
      .u8(fields.type)
      .u16(fields.flags ?? 0)
      .u32(fields.stream);
    if (fields.length === undefined) {
      this.pendingLengthAt = this.parts.length;
      this.u32(0);
    } else {
      this.u32(fields.length);
    }
    return this;
  }

  u8(value: number): this {
    checkRange(value, 0xff);
    this.parts.push(value);
    return this;
  }

  u16(value: number): this {
    checkRange(value, 0xffff);
    this.parts.push(value >>> 8, value & 0xff);
    return this;
  }

  u32(value: number): this {
    checkRange(value, 0xffffffff);
    // Division, not >>> 24 on a possibly negative int: the value is a plain unsigned number.
    this.parts.push(Math.floor(value / 0x1000000) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    return this;
  }

  u64(value: bigint): this {
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.parts.push(Number((value >> shift) & 0xffn));
    return this;
  }

  /** Latin-1 text, one byte per character (for magics). */
  ascii(text: string): this {
    for (let i = 0; i < text.length; i++) this.u8(text.charCodeAt(i));
    return this;
  }

  utf8(text: string): this {
    return this.raw(new TextEncoder().encode(text));
  }

  /** `JSON.stringify(value)` as UTF-8. */
  json(value: unknown): this {
    return this.utf8(JSON.stringify(value));
  }

  hex(text: string): this {
    return this.raw(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
  }

  raw(bytes: Uint8Array): this {
    for (const byte of bytes) this.parts.push(byte);
    return this;
  }

  /** The bytes so far, as a fresh Buffer; this fixes a pending backfilled length. */
  bytes(): Buffer {
    this.backfill();
    return Buffer.from(this.parts);
  }

  private backfill(): void {
    if (this.pendingLengthAt < 0) return;
    const at = this.pendingLengthAt;
    this.pendingLengthAt = -1;
    const length = this.parts.length - at - 4;
    const word = new FrameBuilder().u32(length).parts;
    this.parts.splice(at, 4, ...word);
  }
}

/** A new, empty {@link FrameBuilder}. */
export function wire(): FrameBuilder {
  return new FrameBuilder();
}

function checkRange(value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`frame-builder: ${value} does not fit in 0..${max}`);
  }
}
