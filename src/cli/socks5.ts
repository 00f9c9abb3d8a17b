/**
 * The server side of a SOCKS5 handshake (RFC 1928), as `tsmux forward -D` needs it: no
 * authentication, CONNECT only, to an IPv4 or IPv6 address or a domain name (resolved by the
 * tsmux server, as `curl --socks5-hostname` asks). The caller opens the connection and answers
 * with `reply`.
 */
import type { Socket } from 'node:net';

/** SOCKS5 reply codes. */
export const enum SocksReply {
  SUCCEEDED = 0,
  GENERAL_FAILURE = 1,
  NOT_ALLOWED = 2,
  NETWORK_UNREACHABLE = 3,
  HOST_UNREACHABLE = 4,
  CONNECTION_REFUSED = 5,
  TTL_EXPIRED = 6,
  COMMAND_NOT_SUPPORTED = 7,
  ADDRESS_TYPE_NOT_SUPPORTED = 8,
}

export class SocksError extends Error {
  override name = 'SocksError';
}

/** What the client asked for, and the bytes it sent after its request (already read). */
export interface SocksRequest {
  host: string;
  port: number;
  rest: Buffer;
}

/** Reads exactly what the handshake needs from `socket`; the socket is paused afterwards. */
export async function readSocksRequest(socket: Socket, timeoutMs = 10_000): Promise<SocksRequest> {
  const reader = new ByteReader(socket, timeoutMs);
  try {
    const [version, methods] = await reader.take(2);
    if (version !== 5) throw new SocksError(`not SOCKS5 (version ${version})`);
    const offered = await reader.take(methods);
    if (!offered.includes(0)) {
      socket.end(Buffer.from([5, 0xff]));
      throw new SocksError('the client offers no method without authentication');
    }
    socket.write(Buffer.from([5, 0]));
    const [, command, , addressType] = await reader.take(4);
    let host: string;
    if (addressType === 1) host = [...(await reader.take(4))].join('.');
    else if (addressType === 4) host = ipv6(await reader.take(16));
    else if (addressType === 3) host = (await reader.take((await reader.take(1))[0])).toString('latin1');
    else {
      reply(socket, SocksReply.ADDRESS_TYPE_NOT_SUPPORTED);
      throw new SocksError(`address type ${addressType} is not supported`);
    }
    const port = (await reader.take(2)).readUInt16BE(0);
    if (command !== 1) {
      reply(socket, SocksReply.COMMAND_NOT_SUPPORTED);
      throw new SocksError(`command ${command} is not supported (only CONNECT)`);
    }
    return { host, port, rest: reader.done() };
  } finally {
    reader.stop();
  }
}

/** Answers the request; a failure also ends the socket. */
export function reply(socket: Socket, code: SocksReply): void {
  const answer = Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
  if (code === SocksReply.SUCCEEDED) socket.write(answer);
  else socket.end(answer);
}

/** The SOCKS reply for a connection that could not be made, from the reason the server gave. */
export function replyFor(reason: string): SocksReply {
  if (/not allowed/i.test(reason)) return SocksReply.NOT_ALLOWED;
  if (/ECONNREFUSED/.test(reason)) return SocksReply.CONNECTION_REFUSED;
  if (/ENOTFOUND|EAI_AGAIN|EHOSTUNREACH/.test(reason)) return SocksReply.HOST_UNREACHABLE;
  if (/ENETUNREACH/.test(reason)) return SocksReply.NETWORK_UNREACHABLE;
  if (/ETIMEDOUT|timed out/i.test(reason)) return SocksReply.TTL_EXPIRED;
  return SocksReply.GENERAL_FAILURE;
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** What a client may send before its handshake is answered. */
const MAX_EARLY_BYTES = 64 * 1024;

/** Reads exact byte counts from a socket without losing what arrives after them. */
class ByteReader {
  private buffered = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    // A handshake is a few hundred bytes; a client may send its first data early, not megabytes.
    if (this.buffered.length > MAX_EARLY_BYTES) this.fail(new SocksError('the client sent too much before the handshake ended'));
    this.waiter?.();
  };
  private readonly onEnd = (): void => this.fail(new SocksError('the client closed the connection during the handshake'));

  constructor(
    private readonly socket: Socket,
    timeoutMs: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onEnd);
    this.timer = setTimeout(() => this.fail(new SocksError('the SOCKS handshake timed out')), timeoutMs);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.waiter?.();
  }

  async take(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = null;
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** What arrived after the handshake; reading stops here. */
  done(): Buffer {
    return this.buffered;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onEnd);
    this.socket.pause();
  }
}
