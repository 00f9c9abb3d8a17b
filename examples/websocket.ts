// Over a WebSocket: any Duplex can carry a connection, and `ws`'s createWebSocketStream
// turns a WebSocket into one. Useful where only HTTP(S) gets through (proxies, browsers'
// gateways). `ws` is a devDependency of this project, not a dependency of the library:
// install it in your own project with `npm install ws` (and `@types/ws` for TypeScript).
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket, createWebSocketStream } from 'ws';
import { wrap } from 'tcp-stream-muxer';

async function main(): Promise<void> {
  // The server side: every WebSocket becomes a muxer connection in the 'server' role.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws) => {
    const con = wrap(createWebSocketStream(ws), { role: 'server' });
    con.on('stream', (stream) => {
      const name = (stream.meta as { name?: unknown } | null)?.name;
      stream.end(`hello ${String(name)}, from stream ${stream.id} over a WebSocket`);
      stream.resume(); // nothing to read; let the client's end() through
    });
  });
  await once(wss, 'listening');

  // The client side: the same, in the 'client' role. Streams may be opened at once; they
  // wait for the WebSocket to open and the muxer handshake to finish.
  const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const con = wrap(createWebSocketStream(ws), { role: 'client' });

  const replies = await Promise.all(
    ['ada', 'grace', 'linus'].map(async (name) => {
      const stream = await con.StreamPool.createStream({ name });
      stream.end();
      let reply = '';
      for await (const chunk of stream) reply += chunk;
      return reply;
    }),
  );
  for (const reply of replies) console.log(reply);

  // Graceful close: GO_AWAY, then the WebSocket closes; then stop the server.
  con.close(() => wss.close());
}
void main();
