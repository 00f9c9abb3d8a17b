/**
 * ChunkQueue: exact takes from a FIFO of chunks, checked against one concatenated buffer.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ChunkQueue } from '../src/codec/chunks';

describe('ChunkQueue', () => {
  test('takes give back exactly the pushed bytes in order, whatever the chunk and take sizes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 100 }),
        (chunks, takes) => {
          const queue = new ChunkQueue();
          for (const chunk of chunks) queue.push(Buffer.from(chunk));
          const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
          let offset = 0;
          for (const wanted of takes) {
            const n = Math.min(wanted, queue.bytes);
            if (n === 0) break;
            assert.deepEqual(queue.take(n), all.subarray(offset, offset + n));
            offset += n;
            assert.equal(queue.bytes, all.length - offset);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a take that spans thousands of small chunks is right even when the queue compacts midway', () => {
    const queue = new ChunkQueue();
    const chunks = Array.from({ length: 5000 }, (_, i) => Buffer.alloc(64, i % 251));
    for (const chunk of chunks) queue.push(chunk);
    const all = Buffer.concat(chunks);
    // Take 100 single chunks first, so the head is deep in the array, then one big take
    // that crosses the point where the queue drops its consumed slots.
    let offset = 0;
    for (let i = 0; i < 100; i++) {
      assert.deepEqual(queue.take(64), all.subarray(offset, offset + 64));
      offset += 64;
    }
    const big = 64 * 3000 + 17;
    assert.deepEqual(queue.take(big), all.subarray(offset, offset + big));
    offset += big;
    assert.deepEqual(queue.take(queue.bytes), all.subarray(offset));
    assert.equal(queue.bytes, 0);
    assert.equal(queue.headLength, 0);
  });

  test('a take within the head chunk is a view, not a copy', () => {
    const queue = new ChunkQueue();
    const chunk = Buffer.from('abcdefgh');
    queue.push(chunk);
    const part = queue.take(3);
    assert.equal(part.buffer, chunk.buffer);
    assert.equal(part.toString(), 'abc');
    assert.equal(queue.headLength, 5);
  });

  test('bytes that straddle chunks go into the scratch buffer when it is large enough, else into a new one', () => {
    const queue = new ChunkQueue();
    for (const text of ['abc', 'def', 'ghi', 'jkl']) queue.push(Buffer.from(text));
    const scratch = Buffer.alloc(8, 0x2e);

    const within = queue.take(2, scratch);
    assert.notEqual(within.buffer, scratch.buffer, 'inside the head chunk: still a view of it');
    assert.equal(within.toString(), 'ab');

    const straddling = queue.take(5, scratch);
    assert.equal(straddling.buffer, scratch.buffer, 'copied into the scratch buffer');
    assert.equal(straddling.toString(), 'cdefg');
    assert.equal(scratch.toString(), 'cdefg...', 'only the first 5 bytes of it were written');

    const tooBig = queue.take(5, Buffer.alloc(4));
    assert.equal(tooBig.toString(), 'hijkl', 'a scratch buffer too small is not used');
    assert.equal(queue.bytes, 0);
  });
});
