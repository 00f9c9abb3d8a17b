/**
 * Joins a mux stream and a TCP socket both ways, as port forwarding needs: bytes flow each
 * way with backpressure (pipe), a half-close (FIN) on one side ends the other's writable side
 * only, and an error or an abrupt close on one side destroys the other (a stream reset
 * becomes a TCP reset and vice versa).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Both sockets must allow half-open connections (`allowHalfOpen: true`). */
export function join(stream: Duplex, socket: Socket, onClosed?: () => void): void {
  // A stream can be reset between its ACCEPT and the moment it is joined (both arrive in one
  // read, and the open's promise settles after): its 'close' is gone by then, so the socket
  // must be torn down here, or it would wait for ever.
  if (stream.destroyed) resetSocket(socket);
  else if (socket.destroyed) stream.destroy();
  // In a bulk transfer one read of the link delivers the end of a frame and the start of the
  // next: both go out as one write (one syscall and one wake-up of the reader, not two). Small
  // chunks (requests and responses) are written at once, as the cork would only cost them.
  stream.on('data', (chunk: Buffer) => {
    if (chunk.length >= CORK_MIN_BYTES && socket.writableCorked === 0) {
      socket.cork();
      process.nextTick(uncorkSocket, socket);
    }
  });
  socket.pipe(stream);
  stream.pipe(socket);
  socket.on('error', () => stream.destroy());
  stream.on('error', () => resetSocket(socket));
  // An abrupt close (no FIN seen, nothing ended our writable side) tears the other side down.
  socket.on('close', () => {
    if (!stream.destroyed && !stream.writableEnded) stream.destroy();
  });
  stream.on('close', () => {
    if (!socket.destroyed && !socket.writableEnded) resetSocket(socket);
  });
  let open = 0;
  const closed = (): void => {
    if (--open === 0) onClosed?.();
  };
  for (const side of [socket, stream]) {
    if (side.closed) continue;
    open++;
    side.once('close', closed);
  }
  if (open === 0) process.nextTick(() => onClosed?.());
}

const CORK_MIN_BYTES = 16 * 1024;

function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  // Node 18.3+: close with RST so the TCP peer learns it was an error, not an end.
  if (typeof socket.resetAndDestroy === 'function' && socket.readyState !== 'opening') socket.resetAndDestroy();
  else socket.destroy();
}

function uncorkSocket(socket: Socket): void {
  socket.uncork();
}
