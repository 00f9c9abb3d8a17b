// Over a WebSocket: any Duplex can carry a connection, and `ws`'s createWebSocketStream
// turns a WebSocket into one. Useful where only HTTP(S) gets through (proxies, browsers'
// gateways). `ws` is a devDependency of this project, not a dependency of the library:
// install it in your own project with `npm install ws`.
import { WebSocketServer, WebSocket, createWebSocketStream } from 'ws';
import { wrap } from 'tcp-stream-muxer';

// The server side: every WebSocket becomes a muxer connection in the 'server' role.
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('connection', (ws) => {
  const con = wrap(createWebSocketStream(ws), { role: 'server' });
  con.on('stream', (stream) => {
    stream.end(`hello ${stream.meta.name}, from stream ${stream.id} over a WebSocket`);
    stream.resume(); // nothing to read; let the client's end() through
  });
});
await new Promise((resolve) => wss.once('listening', resolve));

// The client side: the same, in the 'client' role. Streams may be opened at once; they
// wait for the WebSocket to open and the muxer handshake to finish.
const ws = new WebSocket(`ws://127.0.0.1:${wss.address().port}`);
const con = wrap(createWebSocketStream(ws), { role: 'client' });

const names = ['ada', 'grace', 'linus'];
const replies = await Promise.all(
  names.map(async (name) => {
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
