// TLS: the same API with a `tls` option on each side. A self-signed certificate for
// 127.0.0.1 is made with the openssl CLI into a temporary directory (skipped, with a
// message, where openssl is missing); the client trusts exactly that certificate.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { MuxServer, MuxClient } from 'tcp-stream-muxer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-tls-'));
try {
  const make = 'req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1';
  const args = [...make.split(' '), '-addext', 'subjectAltName=IP:127.0.0.1'];
  execFileSync('openssl', [...args, '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
} catch (err) {
  console.log(`skipped: cannot make a certificate with openssl (${(err as Error).message})`);
  process.exit(0);
}
const key = fs.readFileSync(path.join(dir, 'key.pem'));
const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
fs.rmSync(dir, { recursive: true, force: true });

// The server: `tls` takes tls.createServer options. Echo every stream back.
const server = new MuxServer(0, { host: '127.0.0.1', tls: { key, cert } });
server.on('connection', (con) => con.on('stream', (stream) => stream.pipe(stream)));

server.on('listening', () => {
  // The client: `tls` takes tls.connect options; the certificate is verified by default.
  const client = new MuxClient(server.port, '127.0.0.1', { tls: { ca: cert } }, async () => {
    const socket = client.transportSocket;
    if (socket instanceof tls.TLSSocket) console.log(`TLS ${socket.getProtocol()}, certificate verified: ${socket.authorized}`);
    const stream = await client.StreamPool.createStream({ type: 'echo' });
    stream.end('secret message');
    let echo = '';
    for await (const chunk of stream) echo += chunk;
    console.log('echo over TLS:', echo);
    client.close();
    server.close();
  });
});
