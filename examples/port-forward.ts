// Port forwarding: a local TCP port whose every connection travels as one stream over a
// single muxer connection to a remote side, which connects on to the target (here a
// node:http server). Like `ssh -L`, with all forwarded connections sharing one socket.
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { pipeline } from 'node:stream';
import { MuxServer, MuxClient } from 'tcp-stream-muxer';

/** Where a forwarded connection goes: the stream's meta. */
type Target = { host: string; port: number };
const isTarget = (meta: unknown): meta is Target =>
  typeof (meta as Partial<Target> | null)?.host === 'string' && typeof (meta as Partial<Target>).port === 'number';

// The target: a plain HTTP server only the remote side talks to.
const target = http.createServer((req, res) => res.end(`hello from the target, you asked for ${req.url}\n`));

// The remote side: each stream's meta says where to connect; bytes are piped both ways.
const remote = new MuxServer(0, { host: '127.0.0.1', acceptStream: (meta) => isTarget(meta) || 'not a target' });
remote.on('connection', (con) => {
  con.on('stream', (stream) => {
    if (!isTarget(stream.meta)) return stream.destroy();
    const socket = net.connect(stream.meta.port, stream.meta.host);
    pipeline(stream, socket, stream, () => {}); // either side closing ends the other
  });
});

async function main(): Promise<void> {
  await Promise.all([once(target.listen(0, '127.0.0.1'), 'listening'), once(remote, 'listening')]);
  const to: Target = { host: '127.0.0.1', port: (target.address() as net.AddressInfo).port };

  // The local side: one muxer connection; each local TCP connection becomes a stream.
  const tunnel = new MuxClient(remote.port, '127.0.0.1');
  let forwarded = 0;
  const local = net.createServer((socket) => {
    forwarded++;
    const stream = tunnel.StreamPool.createStream(to, () => {}); // writes may start before the accept
    pipeline(socket, stream, socket, () => {});
  });
  await once(local.listen(0, '127.0.0.1'), 'listening');

  // Use it: three HTTP requests to the local port, each on its own TCP connection.
  for (const path of ['/a', '/b', '/c']) {
    const body = await get(`http://127.0.0.1:${(local.address() as net.AddressInfo).port}${path}`);
    process.stdout.write(`through the tunnel: ${body}`);
  }
  console.log(`${forwarded} forwarded connections, 1 tunnel connection, ${tunnel.stats().bytesOut} bytes sent on it`);
  local.close();
  tunnel.close(() => remote.close(() => target.close()));
}

/** A GET on a fresh connection (no keep-alive), resolving with the body. */
function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk)).on('end', () => resolve(body));
    });
    request.on('error', reject);
  });
}
void main();
