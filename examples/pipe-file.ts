// Piping a file over a stream with util.sendFile / util.receiveFile: the receiver writes
// to a temporary file and renames it into place only if length and SHA-256 match, and
// the sender's promise resolves once the receiver has confirmed that.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MuxServer, MuxClient, util } from 'tcp-stream-muxer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-pipe-'));
const source = path.join(dir, 'source.bin');
const target = path.join(dir, 'received.bin');
fs.writeFileSync(source, crypto.randomBytes(8 * 1024 * 1024)); // 8 MiB of something

// The server stores every file a client sends it, under a name of its choosing.
const server = new MuxServer(0, { host: '127.0.0.1' });
server.on('connection', (con) => {
  con.on('stream', async (stream) => {
    const { size, sha256 } = await util.receiveFile(target, stream);
    const name = (stream.meta as { name?: unknown } | null)?.name; // the peer's meta: JSON, unchecked
    console.log(`server stored ${String(name)}: ${size} bytes, sha256 ${sha256.slice(0, 16)}...`);
  });
});

server.on('listening', () => {
  const client = new MuxClient(server.port, '127.0.0.1', async () => {
    const stream = await client.StreamPool.createStream({ name: 'source.bin' });
    let last = 0;
    const result = await util.sendFile(source, stream, {
      onProgress(bytes, total) {
        const percent = Math.floor((bytes / total) * 4) * 25; // report every quarter
        if (percent > last) console.log(`sent ${(last = percent)}%`);
      },
    });
    const same = fs.readFileSync(target).equals(fs.readFileSync(source));
    console.log(`file verified by the receiver: ${result.size} bytes, identical: ${same}`);
    client.close();
    server.close(() => fs.rmSync(dir, { recursive: true, force: true }));
  });
});
