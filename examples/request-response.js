// Request/response over streams: one stream per request, like HTTP/2. The meta says what
// is asked; the body goes up, the answer comes back, and many requests run at once on
// one connection without waiting for each other.
'use strict';
const { MuxServer, MuxClient } = require('tcp-stream-muxer');

// The server: read the whole request body, then answer according to meta.op.
const server = new MuxServer(0, { host: '127.0.0.1' });
server.on('connection', (con) => {
  con.on('stream', async (stream) => {
    // Read until the client's end(). A plain `for await (... of stream)` would destroy the
    // stream when the loop finishes, because its writable side is still open: keep it.
    const chunks = [];
    for await (const chunk of stream.iterator({ destroyOnReturn: false })) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString();
    const answer = stream.meta.op === 'upper' ? body.toUpperCase() : [...body].reverse().join('');
    stream.end(answer); // the stream is still open our way after the client's half-close
  });
});

/** One request: open a stream, send the body, half-close, read the whole answer. */
async function request(client, op, body) {
  const stream = await client.StreamPool.createStream({ op });
  stream.end(body);
  let answer = '';
  for await (const chunk of stream) answer += chunk;
  return answer;
}

server.on('listening', () => {
  const client = new MuxClient(server.address().port, '127.0.0.1', async () => {
    const answers = await Promise.all([
      request(client, 'upper', 'hello'),
      request(client, 'reverse', 'stressed'),
      request(client, 'upper', 'many streams, one connection'),
    ]);
    for (const answer of answers) console.log('answer:', answer);
    console.log('requests in flight at once: 3, connections used: 1');
    client.close();
    server.close();
  });
});
