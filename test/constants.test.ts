// Pins the wire vocabulary: every value here is on the wire, so changing one is a protocol
// change (PROTOCOL.md sections 3, 5 and 11) and must show up as a failing test.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Flag,
  FrameType,
  HEADER_LENGTH,
  KNOWN_FLAGS,
  MAGIC,
  MAX_CONTROL_PAYLOAD,
  MAX_STREAM_ID,
  MAX_WINDOW,
  PING_PAYLOAD_LENGTH,
  PROTOCOL_VERSION,
  WINDOW_UPDATE_PAYLOAD_LENGTH,
  WireErrorCode,
} from '../src/protocol/constants';
import * as api from '../src/index';

/** The name -> value pairs of a numeric TypeScript enum (its reverse mappings left out). */
function members(enumObject: Record<string, string | number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(enumObject)) if (typeof value === 'number') out[key] = value;
  return out;
}

describe('wire constants', () => {
  test('the protocol version is 2', () => {
    assert.equal(PROTOCOL_VERSION, 2);
  });

  test('the magic preface is the four ASCII bytes "TSMX"', () => {
    assert.ok(Buffer.isBuffer(MAGIC));
    assert.deepEqual([...MAGIC], [0x54, 0x53, 0x4d, 0x58]);
    assert.equal(MAGIC.toString('latin1'), 'TSMX');
  });

  test('a frame header is 12 bytes', () => {
    assert.equal(HEADER_LENGTH, 12);
  });

  test('frame types have exactly the values of the spec', () => {
    assert.deepEqual(members(FrameType), {
      DATA: 0x0,
      WINDOW_UPDATE: 0x1,
      PING: 0x2,
      GO_AWAY: 0x3,
      OPEN: 0x4,
      ACCEPT: 0x5,
      REFUSE: 0x6,
      RESET: 0x7,
      HELLO: 0x8,
    });
  });

  test('flags are single bits FIN = 0x1 and ACK = 0x2, and nothing else is known', () => {
    assert.deepEqual(members(Flag), { FIN: 0x1, ACK: 0x2 });
    assert.equal(KNOWN_FLAGS, 0x3);
  });

  test('wire error codes have exactly the values of the spec', () => {
    assert.deepEqual(members(WireErrorCode), {
      NORMAL: 0,
      PROTOCOL_ERROR: 1,
      FLOW_CONTROL_ERROR: 2,
      FRAME_TOO_LARGE: 3,
      STREAM_LIMIT: 4,
      REFUSED: 5,
      CANCEL: 6,
      INTERNAL_ERROR: 7,
      GOING_AWAY: 8,
      META_TOO_LARGE: 9,
      AUTH_FAILED: 10,
      KEEPALIVE_TIMEOUT: 11,
      IDLE_TIMEOUT: 12,
      OPEN_TIMEOUT: 13,
      ENHANCE_YOUR_CALM: 14,
      OVERLOADED: 15,
    });
  });

  test('stream ids and windows are limited to 31 bits', () => {
    assert.equal(MAX_STREAM_ID, 0x7fffffff);
    assert.equal(MAX_WINDOW, 2 ** 31 - 1);
  });

  test('fixed payload sizes are 8 for PING, 4 for WINDOW_UPDATE and at most 1028 for code-and-reason frames', () => {
    assert.equal(PING_PAYLOAD_LENGTH, 8);
    assert.equal(WINDOW_UPDATE_PAYLOAD_LENGTH, 4);
    assert.equal(MAX_CONTROL_PAYLOAD, 4 + 1024);
  });

  test('the package entry point exports the same wire enums', () => {
    assert.equal(api.PROTOCOL_VERSION, PROTOCOL_VERSION);
    assert.equal(api.FrameType, FrameType);
    assert.equal(api.Flag, Flag);
    assert.equal(api.WireErrorCode, WireErrorCode);
  });
});
