import * as net from 'node:net';
import { encodeFrame } from '../../src/codec/encode';
import { DEFAULTS } from '../../src/index';
import { FrameType, HEADER_LENGTH, MAGIC } from '../../src/protocol/constants';
import { encodeSettings } from '../../src/protocol/hello';
import { HOST } from './mux';
import { withTimeout } from './async';

/** A plain socket to `port` on loopback, once connected. */
export async function rawSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, HOST);
  socket.on('error', () => {}); // a reset by the server is an expected outcome here
  await withTimeout(new Promise<void>((resolve) => socket.once('connect', () => resolve())), 5000, 'a raw connection');
  return socket;
}

/** Resolves when `socket` has closed (bounded), with every byte it received. */
export function closedWithBytes(socket: net.Socket, ms = 5000): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => parts.push(chunk));
  return withTimeout(
    new Promise<Buffer>((resolve) => {
      if (socket.closed) resolve(Buffer.concat(parts));
      else socket.once('close', () => resolve(Buffer.concat(parts)));
    }),
    ms,
    'the raw socket to be closed by the server',
  );
}

/**
 * A hand-driven muxer client: sends the magic and a valid HELLO, waits for the server's
 * HELLO, then hands the socket over so a test can send whatever frames it likes.
 */
export async function handshakenRawPeer(port: number): Promise<net.Socket> {
  const socket = await rawSocket(port);
  const settings = {
    initialWindow: DEFAULTS.initialWindow,
    connectionWindow: DEFAULTS.connectionWindow,
    maxFrameSize: DEFAULTS.maxFrameSize,
    maxStreams: DEFAULTS.maxStreams,
    maxMetaBytes: DEFAULTS.maxMetaBytes,
    hello: null,
  };
  socket.write(Buffer.concat([MAGIC, encodeFrame(FrameType.HELLO, 0, 0, encodeSettings(settings))]));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        const headerEnd = MAGIC.length + HEADER_LENGTH;
        if (received.length < headerEnd) return;
        if (received[MAGIC.length + 1] !== FrameType.HELLO) return reject(new Error('server did not answer with HELLO'));
        if (received.length >= headerEnd + received.readUInt32BE(MAGIC.length + 8)) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    }),
    5000,
    "the server's HELLO",
  );
  return socket;
}

export { encodeFrame, FrameType };
