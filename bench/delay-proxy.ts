/**
 * A TCP proxy that delays every chunk by a fixed time in each direction: a long, fat link
 * on loopback. Runs in its own process. Bytes in flight per direction are capped (like the
 * kernel's TCP buffers on a real path), so raw TCP and the muxer face the same pipe.
 *
 *   node --import tsx bench/delay-proxy.ts <targetPort> <delayMs> <maxInFlightBytes>
 */
import * as net from 'node:net';

const [targetPort, delayMs, maxInFlight] = process.argv.slice(2).map(Number) as [number, number, number];

function relay(from: net.Socket, to: net.Socket): void {
  let inFlight = 0;
  from.on('data', (chunk: Buffer) => {
    inFlight += chunk.length;
    if (inFlight >= maxInFlight) from.pause();
    setTimeout(() => {
      inFlight -= chunk.length;
      if (!to.destroyed) to.write(chunk);
      if (inFlight < maxInFlight && from.isPaused()) from.resume();
    }, delayMs);
  });
  // Half-closes travel with the same delay, behind the data; only errors cut at once.
  from.on('end', () => setTimeout(() => to.end(), delayMs));
  from.on('error', () => to.destroy());
}

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
  upstream.setNoDelay(true);
  relay(client, upstream);
  relay(upstream, client);
});
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
process.on('disconnect', () => process.exit(0));
