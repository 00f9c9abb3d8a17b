/**
 * The clients of the connections scenario, in a process of their own: `count` connections
 * to one server, at most `concurrency` being set up at once, then held idle until the
 * parent says `close`. Reports `{ setupMs }` over IPC once every connection is set up:
 * for the muxer once its handshake is done (the server's HELLO arrived), for http2 once the
 * server's SETTINGS arrived (the same round trip), for raw TCP at `connect`.
 *
 *   node --import tsx bench/connections-client.ts <mux|raw|http2> <port> <count> <concurrency> [keepAliveMs]
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { MuxClient } from '../dist/cjs/index';

const [implementation, port, count, concurrency, keepAlive] = process.argv.slice(2) as [string, string, string, string, string?];
const keepAliveInterval = keepAlive === undefined ? undefined : Number(keepAlive);
const held: { destroy(): void }[] = [];

function connectOne(): Promise<void> {
  return new Promise((resolve, reject) => {
    if (implementation === 'mux') {
      const client = new MuxClient(Number(port), '127.0.0.1', keepAliveInterval === undefined ? {} : { keepAliveInterval });
      client.once('connect', () => resolve());
      client.on('error', reject);
      held.push(client);
    } else if (implementation === 'http2') {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.once('remoteSettings', () => resolve());
      session.on('error', reject);
      if (keepAliveInterval !== undefined) {
        // The keepalive an http2 user writes (node:http2 has none): a PING every interval, spread.
        const ping = (): void => {
          if (!session.destroyed) session.ping(() => {});
        };
        let timer: NodeJS.Timeout = setTimeout(() => {
          ping();
          timer = setInterval(ping, keepAliveInterval).unref();
        }, keepAliveInterval * Math.random()).unref();
        session.once('close', () => clearTimeout(timer));
      }
      held.push(session);
    } else {
      const socket = net.connect(Number(port), '127.0.0.1');
      socket.once('connect', () => resolve());
      socket.on('error', reject);
      held.push(socket);
    }
  });
}

async function main(): Promise<void> {
  const total = Number(count);
  let started = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (started < total) {
      started++;
      await connectOne();
    }
  };
  await Promise.all(Array.from({ length: Number(concurrency) }, worker));
  process.send!({ setupMs: performance.now() - start });
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'close') {
    for (const connection of held) connection.destroy();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
