// Request/response over streams: one stream per request, like HTTP/2. The meta says what
// is asked; the body goes up, the answer comes back, and many requests run at once on
// one connection without waiting for each other.
import { MuxServer, MuxClient } from 'tcp-stream-muxer';

/** What a request's meta says. */
interface Request {
  op: 'upper' | 'reverse';
}

/** The peer is not trusted: its meta is checked before it is used. */
function isRequest(meta: unknown): meta is Request {
  const op = (meta as Partial<Request> | null)?.op;
  return op === 'upper' || op === 'reverse';
}

// The server: read the whole request body, then answer according to meta.op.
const server = new MuxServer(0, { host: '127.0.0.1', acceptStream: (meta) => isRequest(meta) || 'unknown op' });
server.on('connection', (con) => {
  con.on('stream', async (stream) => {
    // Read until the client's end(). A plain `for await (... of stream)` would destroy the
    // stream when the loop finishes, because its writable side is still open: keep it.
    const chunks: Buffer[] = [];
    for await (const chunk of stream.iterator({ destroyOnReturn: false })) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const upper = isRequest(stream.meta) && stream.meta.op === 'upper';
    stream.end(upper ? body.toUpperCase() : [...body].reverse().join('')); // still open our way
  });
});

server.on('listening', () => {
  const client = new MuxClient(server.port, '127.0.0.1', async () => {
    const requests: [Request['op'], string][] = [
      ['upper', 'hello'],
      ['reverse', 'stressed'],
      ['upper', 'many streams, one connection'],
    ];
    const answers = await Promise.all(
      requests.map(async ([op, body]) => {
        const stream = await client.StreamPool.createStream<Request>({ op });
        stream.end(body);
        let answer = '';
        for await (const chunk of stream) answer += chunk;
        return answer;
      }),
    );
    for (const answer of answers) console.log('answer:', answer);
    console.log('requests in flight at once: 3, connections used: 1');
    client.close();
    server.close();
  });
});
