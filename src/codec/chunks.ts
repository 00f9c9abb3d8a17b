/**
 * Removes exactly `n` bytes (at most what `chunks` holds) from the front of a chunk list:
 * a view when they lie in the head chunk, one copy when they straddle chunks. Shared by the
 * decoder (bytes received) and the stream (bytes waiting to be sent), after ws's receiver.
 */
export function takeBytes(chunks: Buffer[], n: number): Buffer {
  const head = chunks[0]!;
  if (n === head.length) return chunks.shift()!;
  if (n < head.length) {
    chunks[0] = head.subarray(n);
    return head.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let offset = 0;
  while (offset < n) {
    const chunk = chunks[0]!;
    const take = Math.min(chunk.length, n - offset);
    out.set(take === chunk.length ? chunk : chunk.subarray(0, take), offset);
    offset += take;
    if (take === chunk.length) chunks.shift();
    else chunks[0] = chunk.subarray(take);
  }
  return out;
}
