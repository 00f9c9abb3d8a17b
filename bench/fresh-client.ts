/**
 * The client of the fresh scenario, in a process of its own started for one repetition:
 * one connection, `warmUp` bytes on it, then `bytes` on one stream in 64 KiB writes, timed
 * from the end of the warm-up. Reports `{ 'MB/s': n }` over IPC and exits.
 *
 *   node --import tsx bench/fresh-client.ts <mux|raw> <port> <warmUpBytes> <bytes>
 *
 * For raw TCP the warm-up and the transfer share one socket ('f' mode of server.ts); for the
 * muxer they are two streams of one connection, as a CLI run would open them.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { writeAll } from './scenarios';
import { connect } from './transports';

const CHUNK = 64 * 1024;
const [implementation, port, warmUp, bytes] = process.argv.slice(2) as [string, string, string, string];

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function reply(stream: Duplex, until: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      if (until(text)) {
        stream.off('data', onData);
        resolve(text);
      }
    };
    stream.on('data', onData);
    stream.once('end', () => resolve(text));
    stream.once('error', reject);
  });
}

async function mux(): Promise<number> {
  const conn = await connect('mux', Number(port));
  const warm = await conn.open('sink');
  const warmed = reply(warm, () => false);
  await writeAll(warm, Number(warmUp), CHUNK);
  warm.end();
  await warmed;
  const start = now();
  const stream = await conn.open('sink');
  const counted = reply(stream, () => false);
  await writeAll(stream, Number(bytes), CHUNK);
  stream.end();
  const count = Number(await counted);
  const ms = now() - start;
  if (count !== Number(bytes)) throw new Error(`server counted ${count} bytes, expected ${bytes}`);
  await conn.close();
  return ms;
}

async function raw(): Promise<number> {
  const socket = net.connect(Number(port), '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const header = Buffer.alloc(5);
  header[0] = 0x66; // 'f'
  header.writeUInt32BE(Number(warmUp), 1);
  socket.write(header);
  const warmed = reply(socket, (text) => text.length > 0);
  await writeAll(socket, Number(warmUp), CHUNK);
  await warmed;
  const start = now();
  const counted = reply(socket, () => false);
  await writeAll(socket, Number(bytes), CHUNK);
  socket.end();
  const count = Number(await counted);
  const ms = now() - start;
  if (count !== Number(warmUp) + Number(bytes))
    throw new Error(`server counted ${count} bytes, expected ${Number(warmUp) + Number(bytes)}`);
  socket.destroy();
  return ms;
}

(implementation === 'mux' ? mux() : raw()).then(
  (ms) => {
    process.send!({ 'MB/s': Number(bytes) / 1e6 / (ms / 1000) }, () => process.exit(0));
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
