/**
 * MuxServer's `proxyProtocol` option: whom to believe a PROXY protocol header from, and
 * reading that header off a freshly accepted socket before anything else (TLS included)
 * sees its bytes. The parsing itself is codec/proxy-header.ts.
 */
import { BlockList, isIP, type Socket } from 'node:net';
import { MuxError } from './errors';
import { ProxyHeaderParser, type ProxyHeader } from './codec/proxy-header';

/** The object form of MuxServer's `proxyProtocol` option. */
export interface ProxyProtocolOptions {
  /**
   * Addresses and CIDR ranges of the balancers whose header is believed: `'127.0.0.1'`,
   * `'10.0.0.0/8'`, `'fd00::/8'`. A connection from anywhere else is refused
   * (`ERR_PROXY_UNTRUSTED`), since its header could claim any client.
   */
  trusted: string[];
}

/** Which peers may send a PROXY header: every one (`proxyProtocol: true`) or those listed. */
export class ProxyTrust {
  private constructor(
    private readonly ranges: BlockList | null,
    /** The option as given, for messages. */
    readonly description: string,
  ) {}

  /**
   * The trust the option asks for, or null when the option is off (absent or `false`).
   * Throws `ERR_INVALID_CONFIG` for anything else than `true`, `false` or `{ trusted }` with
   * at least one valid address or range.
   */
  static from(option: unknown): ProxyTrust | null {
    if (option === undefined || option === false) return null;
    if (option === true) return new ProxyTrust(null, 'any peer');
    const trusted: unknown = typeof option === 'object' && option !== null ? (option as { trusted?: unknown }).trusted : undefined;
    if (!Array.isArray(trusted) || trusted.length === 0) {
      throw new MuxError(
        'ERR_INVALID_CONFIG',
        'option proxyProtocol must be true, false or { trusted: [address or CIDR range, ...] } with at least one entry',
      );
    }
    const ranges = new BlockList();
    for (const entry of trusted as unknown[]) addEntry(ranges, entry);
    return new ProxyTrust(ranges, (trusted as string[]).join(', '));
  }

  /** Whether a peer at `address` may tell us who the client is. */
  allows(address: string | undefined): boolean {
    if (this.ranges === null) return true;
    if (address === undefined) return false;
    const family = isIP(address);
    // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; BlockList maps it to a.b.c.d.
    return family !== 0 && this.ranges.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

function addEntry(ranges: BlockList, entry: unknown): void {
  const invalid = (): MuxError =>
    new MuxError('ERR_INVALID_CONFIG', `option proxyProtocol.trusted: ${JSON.stringify(entry)} is not an IP address or CIDR range`);
  if (typeof entry !== 'string') throw invalid();
  const [address, bits, extra] = entry.trim().split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) throw invalid();
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (bits === undefined) {
    ranges.addAddress(address, type);
    return;
  }
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) throw invalid();
  ranges.addSubnet(address, Number(bits), type);
}

/** What {@link readProxyHeader} reports: the header, or why there is none. */
export type ProxyHeaderCallback = (err: MuxError | null, header: ProxyHeader | null) => void;

const kReader = Symbol('tcp-stream-muxer.proxyReader');

type ReadingSocket = Socket & { [kReader]?: HeaderReader };

/** One socket's header read: its parser, its deadline, and whom to tell. */
interface HeaderReader {
  parser: ProxyHeaderParser;
  timer: NodeJS.Timeout;
  done: ProxyHeaderCallback;
}

/**
 * Reads the PROXY header that must open `socket`, within `timeoutMs`. On success the socket
 * is left paused with the bytes after the header put back in front of its readable side, so
 * whoever takes it next (a muxer connection, a TLS server) reads them first; the caller
 * resumes it. On failure the socket is left as it is, for the caller to destroy.
 */
export function readProxyHeader(socket: Socket, maxBytes: number, timeoutMs: number, done: ProxyHeaderCallback): void {
  const reader: HeaderReader = {
    parser: new ProxyHeaderParser(maxBytes),
    timer: setTimeout(onHeaderTimeout, timeoutMs, socket, timeoutMs),
    done,
  };
  reader.timer.unref();
  (socket as ReadingSocket)[kReader] = reader;
  socket.on('data', socketOnHeaderData);
  socket.on('end', socketOnHeaderEnd);
  socket.on('error', socketOnHeaderError);
  socket.on('close', socketOnHeaderEnd);
}

/** Stops reading the header; returns the reader if it was still reading. */
function finish(socket: ReadingSocket): HeaderReader | undefined {
  const reader = socket[kReader];
  if (!reader) return undefined;
  delete socket[kReader];
  clearTimeout(reader.timer);
  socket.removeListener('data', socketOnHeaderData);
  socket.removeListener('end', socketOnHeaderEnd);
  socket.removeListener('error', socketOnHeaderError);
  socket.removeListener('close', socketOnHeaderEnd);
  return reader;
}

function socketOnHeaderData(this: ReadingSocket, chunk: Buffer): void {
  const result = this[kReader]!.parser.push(chunk);
  if (result.status === 'more') return;
  const reader = finish(this)!;
  if (result.status === 'error') {
    reader.done(result.error, null);
    return;
  }
  // Paused before the rest goes back: removing the 'data' listener alone would let the
  // socket keep flowing, into no listener.
  this.pause();
  if (result.rest.length > 0) this.unshift(result.rest);
  reader.done(null, result.header);
}

function socketOnHeaderEnd(this: ReadingSocket): void {
  const reader = finish(this);
  reader?.done(reader.parser.endedEarly(), null);
}

function socketOnHeaderError(this: ReadingSocket, err: Error): void {
  const reader = finish(this);
  reader?.done(
    new MuxError('ERR_PROXY_HEADER', `PROXY protocol: the connection failed before its header: ${err.message}`, { cause: err }),
    null,
  );
}

function onHeaderTimeout(socket: ReadingSocket, timeoutMs: number): void {
  const reader = finish(socket);
  reader?.done(new MuxError('ERR_HANDSHAKE_TIMEOUT', `no PROXY protocol header within ${timeoutMs} ms`), null);
}
