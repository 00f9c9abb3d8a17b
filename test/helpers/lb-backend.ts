/**
 * One backend of test/haproxy.test.ts, in its own process:
 *
 *   node --import tsx test/helpers/lb-backend.ts NAME
 *
 * A MuxServer on an ephemeral loopback port that believes PROXY headers from 127.0.0.1 only.
 * It prints one JSON line per event to stdout: `{ listening: port }`, `{ done: id, sha256,
 * bytes }` for every job stream it finished, `{ exiting: true }`. Streams:
 * - `{ type: 'whoami' }`: answered with `{ backend, remoteAddress, remotePort }` of the connection;
 * - `{ type: 'job', id }`: echoed, and its bytes hashed.
 * On SIGTERM it does what a rolling restart needs: `server.close()` (listener closed first,
 * GO_AWAY on every connection, streams in flight finish), then exits 0.
 */
import { createHash } from 'node:crypto';
import { MuxServer, type JsonValue, type MuxConnection, type MuxStream } from '../../src/index';

const NAME = process.argv[2] ?? 'backend';

function say(event: Record<string, JsonValue>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const server = new MuxServer(0, {
  host: '127.0.0.1',
  proxyProtocol: { trusted: ['127.0.0.1'] },
  closeTimeout: 10_000,
});
server.on('listening', () => say({ listening: server.port }));
// A balancer's TCP health check connects and closes without a byte: a clientError each time.
server.on('clientError', () => {});
server.on('connection', (con: MuxConnection) => {
  con.on('error', (err) => process.stderr.write(`${NAME}: connection from ${con.remoteAddress}: ${err.message}\n`));
  con.on('stream', (stream: MuxStream) => {
    const meta = stream.meta as { type?: string; id?: string } | null;
    stream.on('error', (err) => process.stderr.write(`${NAME}: stream ${JSON.stringify(meta)}: ${err.message}\n`));
    if (meta?.type === 'whoami') {
      stream.resume();
      stream.end(JSON.stringify({ backend: NAME, remoteAddress: con.remoteAddress ?? null, remotePort: con.remotePort ?? null }));
      return;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      stream.write(chunk);
    });
    stream.on('end', () => {
      stream.end(() => say({ done: String(meta?.id), sha256: hash.digest('hex'), bytes }));
    });
  });
});

process.once('SIGTERM', () => {
  server.close(() => {
    say({ exiting: true });
    process.exit(0);
  });
});
