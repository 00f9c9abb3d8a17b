/**
 * `tsmux serve`: accepts connections; stores every incoming file stream under --dir
 * (temporary file, size and SHA-256 verified, then moved into place) and forwards streams
 * to destinations on the --allow-forward list.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, realpath } from 'node:fs/promises';
import * as path from 'node:path';
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import {
  MuxError,
  MuxServer,
  DEFAULTS,
  SERVER_DEFAULTS,
  util,
  type ClientInfo,
  type JsonValue,
  type MuxConnection,
  type MuxServerOptions,
  type MuxStream,
  type ServerLimits,
} from '../index';
import {
  DEFAULT_PORT,
  formatHostPort,
  parse,
  parseHostPort,
  parsePort,
  parseBytes,
  parsePositiveBytes,
  parsePositiveInteger,
  parseSeconds,
  splitList,
  UsageError,
  withOptionalValue,
  type HostPort,
} from './args';
import { AllowList } from './allow-list';
import { BurstReporter } from './bursts';
import { describeError } from './connect';
import { join } from './join';
import { escapeName } from './escape';
import { checkName, checkTarget, isInside, resolveTarget, UnsafePathError } from './safe-path';
import { strictModesProblem } from './strict-modes';
import { listEntries } from './sync/entries';
import { runReceiver } from './sync/receiver';
import { runSender } from './sync/sender';
import { SYNC_VERSION } from './sync/session';
import type { SyncOutcome } from './sync/outcome';
import { onStopSignals } from './signals';
import { formatBytes, formatDuration } from './summary/format';

/** How long serve tries to reach a forward's destination, and keeps it for the stream. */
const FORWARD_CONNECT_TIMEOUT_MS = 10_000;

/** serve's --max-size when none is given: big enough for disk images, small enough to stop a runaway. */
const DEFAULT_MAX_SIZE = 64 * 1024 ** 3;
/** serve's --min-free when none is given: a full disk breaks more than this transfer. */
const DEFAULT_MIN_FREE = 100 * 1024 ** 2;

/** 0 means no limit. */
function optionalLimit(value: number): number | undefined {
  return value === 0 ? undefined : value;
}

/**
 * File and sync streams one client may have open at once: each holds a file descriptor.
 * Forwards are not counted here (a browser behind a forward opens hundreds of connections);
 * the library's maxStreams bounds all streams together.
 */
const MAX_FILE_STREAMS_PER_CONNECTION = 256;

export const SERVE_HELP = `Usage: tsmux serve [options]

Accepts tsmux connections. \`tsmux send\` stores trees under --dir as rsync -a would: file
modes, modification times, empty directories and symbolic links kept; files already there
unchanged are skipped; an interrupted file is kept as a partial file and continued by the next
send. Every file is written to a partial file beside its target, checked (size and SHA-256),
then moved into place. Names from the peer are untrusted: absolute names, ".." segments,
backslashes, control characters, over-long names, symbolic links on the way (or links whose
target leaves --dir) are refused, as are existing files that differ unless --overwrite.
With --export DIR, \`tsmux get\` downloads from DIR.

serve refuses to start when --dir, a directory in it or above it can be written by another
user (as sshd's StrictModes), since such a user could redirect received files.

Options:
  --port N                   TCP port (default 12345; 0 = any free port)
  --host ADDR                interface to listen on (default 127.0.0.1)
  --dir DIR                  where received files go (default ./inbox; created if missing)
  --overwrite                replace existing files that differ
  --export DIR               let clients download from DIR with \`tsmux get\` (default: none)
  --allow-shared-dir         receive even into a directory other users can write to
  --token T                  require clients to present this token (or set TSMUX_TOKEN)
  --tls-cert FILE            serve over TLS with this certificate (PEM) ...
  --tls-key FILE             ... and this private key (PEM)
  --allow-reverse BIND:PORT  let clients have serve listen here for them (tsmux forward -R;
                             comma-separated, repeatable; BIND:* or a range allowed too)
  --allow-forward HOST:PORT  let clients forward to these destinations (comma-separated,
                             repeatable): HOST:PORT, HOST:* (any port), or an address range
                             such as 10.0.0.0/8:443 or [fd00::]/8:*; nothing otherwise
  --proxy-protocol [CIDR,...]
                             behind a load balancer: every connection starts with a PROXY
                             protocol header (v1 or v2; HAProxy send-proxy-v2, nginx
                             proxy_protocol on), and the client's address is taken from it;
                             alone, believed from any peer (for a port only the balancer can
                             reach); with addresses or ranges (comma-separated, repeatable),
                             only from those, and any other peer is refused
  --grace SECONDS            on SIGINT / SIGTERM, stop listening at once (a balancer's health
                             check then fails), tell every client to go (they reconnect
                             elsewhere), and give in-flight transfers this long to finish
                             before they are aborted and their partial files deleted (default 10)
  --max-size BYTES           refuse files larger than this (e.g. 512M, 4G; default 64G;
                             0 = no limit)
  --min-free BYTES           refuse a file that would leave less free disk space than this
                             (default 100M; 0 = no check)
  --stall SECONDS            abort a transfer that moves no byte for this long, counted from
                             the stream's accept (default 60)
  --max-connections N        clients connected at once; more are turned away (default 16384)
  --max-streams N            streams (forwarded connections included) one client may have
                             open at once (default 16384)
  --max-file-streams N       file transfers one client may have open at once (default 256)
  --max-handshakes N         clients still in their handshake at once (default 1024)
  --max-memory BYTES         what all clients together may make the server hold (unread data,
                             streams, metas); past it new connections and streams are refused
                             (e.g. 256M; default 512M)
  -h, --help                 this help

Prints "listening on HOST:PORT" and one line per file or forward to stdout; errors to stderr.
Exit codes: 0 after a shutdown by SIGINT / SIGTERM; 1 cannot listen or read --tls-*;
2 bad usage.
`;

export interface ServeOptions {
  port: number;
  host: string;
  dir: string;
  token?: string | undefined;
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** `host:port` destinations a client may forward to. */
  allowForward?: string[];
  /** `bind:port` (or `bind:*`, or a range) where clients may ask serve to listen for them (-R). */
  allowReverse?: string[];
  overwrite?: boolean;
  /** Milliseconds in-flight transfers get after shutdown() before they are aborted. */
  graceMs?: number;
  /** Largest file accepted, in bytes (default: no limit). */
  maxSize?: number | undefined;
  /** Refuse a file that would leave less free disk space than this (default: no check). */
  minFree?: number | undefined;
  /** Where `tsmux get` may download from (default: nowhere). */
  exportDir?: string | undefined;
  /** Skip the StrictModes check of --dir. */
  allowSharedDir?: boolean;
  /** File and sync streams one client may have open at once (default 256). */
  maxFileStreams?: number;
  /** Streams of every kind one client may have open at once (default: the library's). */
  maxStreams?: number;
  /** A transfer that moves no byte for this many milliseconds, counted from its accept, is aborted (default 60 s). */
  stallMs?: number;
  /** Server-wide limits (the library's SERVER_DEFAULTS where absent). */
  limits?: Partial<ServerLimits>;
  /** Read a PROXY protocol header first on every connection: the library's `proxyProtocol`. */
  proxyProtocol?: MuxServerOptions['proxyProtocol'];
  log: (line: string) => void;
  /** More stream types, such as the demo's chat. */
  extra?: { type: string; handle(stream: MuxStream, con: MuxConnection): void };
}

export interface ServeHandle {
  address: HostPort;
  /** The realpath of the receiving directory. */
  root: string;
  server: MuxServer;
  /** Stops accepting, lets transfers finish within the grace time, aborts the rest. */
  shutdown(): Promise<void>;
  /** Aborts every transfer now (their partial files are deleted) and cuts the connections. */
  abort(): Promise<void>;
}

interface Transfer {
  controller: AbortController;
  job: Promise<void>;
}

type Meta = { [key: string]: JsonValue };

export async function startServe(options: ServeOptions): Promise<ServeHandle> {
  const { log, overwrite = false, graceMs = 10_000, maxSize, minFree, stallMs = 60_000 } = options;
  await mkdir(options.dir, { recursive: true, mode: 0o755 });
  const root = await realpath(options.dir);
  if (!options.allowSharedDir) {
    const problem = await strictModesProblem(root);
    if (problem !== null) {
      throw new Error(
        `refusing to receive into ${root}: ${problem}; another user could redirect received files (fix the permissions, or --allow-shared-dir)`,
      );
    }
  }
  const exportRoot = options.exportDir === undefined ? undefined : await realpath(options.exportDir);
  const syncs = new Set<{ stream: MuxStream; job: Promise<SyncOutcome> }>();
  const allowed = new AllowList(options.allowForward ?? []);
  const allowedReverse = new AllowList(options.allowReverse ?? []);
  /** Listeners of -R forwards, made before their control stream was accepted, by its meta. */
  const reverseListeners = new WeakMap<object, net.Server>();
  /** Connections to destinations made before their stream was accepted, by the stream's meta. */
  const connected = new WeakMap<object, net.Socket>();
  const transfers = new Set<Transfer>();
  const forwardFailures = new BurstReporter(log);
  const abortSyncs = new Set<() => void>();
  const forwards = new Set<net.Socket>();
  /** Per open -R: stops taking connections and ends the control stream once its own have ended. */
  const reverseDrains = new Set<() => void>();
  let closing = false;
  let aborting = false;

  const serverOptions: MuxServerOptions = {
    host: options.host,
    acceptStream: (meta, con) => admit(meta, con),
    ...(options.maxStreams !== undefined ? { maxStreams: options.maxStreams } : {}),
    ...options.limits,
  };
  if (options.token !== undefined) serverOptions.authenticate = tokenCheck(options.token);
  if (options.tls) serverOptions.tls = options.tls;
  if (options.proxyProtocol !== undefined) serverOptions.proxyProtocol = options.proxyProtocol;

  /** Open file and sync streams per connection, against --max-file-streams. */
  const fileStreams = new WeakMap<MuxConnection, number>();
  const maxFileStreams = options.maxFileStreams ?? MAX_FILE_STREAMS_PER_CONNECTION;

  async function admit(value: JsonValue, con: MuxConnection): Promise<true | string> {
    if (closing) return 'the server is shutting down';
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a meta object with a type';
    const meta = value;
    if (meta.type === 'file' || meta.type === 'sync') {
      const open = fileStreams.get(con) ?? 0;
      if (open >= maxFileStreams) return `too many file transfers at once (this server allows ${maxFileStreams} per client)`;
      const verdict = meta.type === 'file' ? await admitFile(meta) : admitSync(meta);
      // Counted from the verdict on: the stream itself arrives a moment later ('stream' below).
      if (verdict === true) fileStreams.set(con, (fileStreams.get(con) ?? 0) + 1);
      return verdict;
    }
    return admitOther(meta);
  }

  /**
   * Connects to a forward's destination before the stream is accepted, so that a destination
   * that cannot be reached refuses the stream with the reason (a SOCKS client gets its error
   * code from it). The socket waits for the stream under the meta object both share.
   */
  function connectFirst(meta: Meta, to: HostPort): Promise<true | string> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: to.host, port: to.port, allowHalfOpen: true });
      const timer = setTimeout(() => socket.destroy(new Error('timed out')), FORWARD_CONNECT_TIMEOUT_MS);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.pause();
        connected.set(meta, socket);
        // A stream that never arrives (its connection died first) must not keep the socket.
        setTimeout(() => {
          if (connected.get(meta) === socket) {
            connected.delete(meta);
            socket.destroy();
          }
        }, FORWARD_CONNECT_TIMEOUT_MS).unref();
        resolve(true);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        const reason = `cannot connect to ${formatHostPort(to)}: ${err.message}`;
        forwardFailures.note(reason);
        resolve(reason);
      });
    });
  }

  async function admitFile(meta: Meta): Promise<true | string> {
    if (typeof meta.size !== 'number' || !Number.isSafeInteger(meta.size) || meta.size < 0) return 'file size missing or invalid';
    if (maxSize !== undefined && meta.size > maxSize) return `file of ${meta.size} bytes is over this server's limit of ${maxSize}`;
    try {
      // Only a check: the directories are made once the transfer starts (receive), so a
      // stream refused here or later, or one that never sends a byte, leaves nothing behind.
      await checkTarget(root, meta.name, { overwrite });
      return true;
    } catch (err) {
      const reason = err instanceof UnsafePathError ? err.message : `cannot store the file: ${(err as Error).message}`;
      log(`refused ${printable(meta.name)}: ${reason}`);
      return reason;
    }
  }

  async function admitOther(meta: Meta): Promise<true | string> {
    if (meta.type === 'reverse-listen') return listenFirst(meta);
    if (meta.type === 'forward') {
      let to: HostPort;
      try {
        if (typeof meta.to !== 'string') throw new TypeError('not a string');
        to = parseHostPort(meta.to, 'to');
      } catch {
        return 'forward destination must be HOST:PORT';
      }
      if (allowed.allows(to.host, to.port)) return connectFirst(meta, to);
      forwardFailures.note(`refused forward to ${printable(meta.to)}: not on --allow-forward`);
      return `forwarding to ${formatHostPort(to)} is not allowed by this server`;
    }
    if (options.extra && meta.type === options.extra.type) return true;
    return `unknown stream type ${printable(meta.type)}`;
  }

  function admitSync(meta: Meta): true | string {
    if (meta.version !== SYNC_VERSION)
      return `sync version ${printable(meta.version)} is not supported (this server speaks ${SYNC_VERSION})`;
    if (meta.direction === 'push') return true;
    if (meta.direction !== 'get') return 'sync direction must be push or get';
    if (exportRoot === undefined) return 'this server does not export files (serve --export DIR)';
    if (!Array.isArray(meta.paths) || meta.paths.length === 0 || meta.paths.length > 1000) return 'get needs 1 to 1000 paths';
    for (const item of meta.paths) {
      if (typeof item !== 'string') return 'get paths must be strings';
      const reason = item === '' || item === '.' ? null : checkName(item);
      if (reason !== null) return `${printable(item)}: ${reason}`;
    }
    return true;
  }

  async function receive(stream: MuxStream, meta: Meta, con: MuxConnection): Promise<void> {
    const name = meta.name as string;
    if (aborting) {
      stream.destroy();
      return;
    }
    const controller = new AbortController();
    const started = Date.now();
    // A sender that stops sending must not hold its stream (and temporary file) for ever. The
    // timer starts at accept: a sender that never sends a byte, not even the header, stalls too.
    let stalled = false;
    const stall = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, stallMs);
    const onProgress = (): void => {
      stall.refresh();
    };
    const expectedSize = meta.size as number; // admit() checked it
    const job = store(stream, name, { signal: controller.signal, overwrite, expectedSize, maxSize, onProgress }).then(
      (result) =>
        log(
          `received ${escapeName(name)} ${formatBytes(result.size)} in ${formatDuration((Date.now() - started) / 1000)} from ${con.remoteAddress ?? '?'}`,
        ),
      (err: unknown) =>
        log(`failed ${escapeName(name)}: ${stalled ? `no data for ${formatDuration(stallMs / 1000)}` : describeError(err)}`),
    );
    void job.finally(() => clearTimeout(stall));
    const transfer: Transfer = { controller, job };
    transfers.add(transfer);
    await job;
    transfers.delete(transfer);
  }

  /** Waits for the transfer to start, makes the file's directories, and receives it. */
  async function store(
    stream: MuxStream,
    name: string,
    options: util.ReceiveFileOptions & { signal: AbortSignal },
  ): Promise<util.FileTransferResult> {
    if (!(await firstBytes(stream, options.signal))) {
      stream.destroy();
      throw options.signal.aborted
        ? new MuxError('ERR_ABORTED', 'file transfer aborted', { cause: options.signal.reason })
        : new MuxError('ERR_FILE_TRANSFER', 'stream ended before the file header');
    }
    let target: string;
    try {
      // Again, and now creating the directories: they may have changed since the stream was accepted.
      target = await resolveTarget(root, name, { overwrite });
    } catch (err) {
      stream.destroy();
      throw err;
    }
    return util.receiveFile(target, stream, options);
  }

  /** A sync stream: receive a tree into --dir (push), or send one from --export (get). */
  async function sync(stream: MuxStream, meta: Meta, con: MuxConnection): Promise<void> {
    if (aborting) {
      stream.destroy();
      return;
    }
    stream.on('error', () => {});
    const started = Date.now();
    const peer = con.remoteAddress ?? '?';
    const controller = new AbortController();
    const job =
      meta.direction === 'get'
        ? serveGet(stream, meta.paths as string[], meta.checksum === true, controller.signal)
        : runReceiver(stream, { root, overwrite, maxSize, minFree, log });
    const entry = { stream, job };
    syncs.add(entry);
    const onAbort = (): void => {
      controller.abort('the server is shutting down');
      if (meta.direction !== 'get') stream.destroy();
    };
    abortSyncs.add(onAbort);
    try {
      const outcome = await job;
      const verb = meta.direction === 'get' ? 'sent to' : 'received from';
      log(
        `sync ${verb} ${peer}: ${outcome.files} files ${formatBytes(outcome.bytes)} (${formatBytes(outcome.wireBytes)} on the wire), ` +
          `${outcome.unchanged} unchanged, ${outcome.failures.length} failed in ${formatDuration((Date.now() - started) / 1000)}` +
          (outcome.interrupted ? ` (${outcome.interrupted})` : ''),
      );
    } finally {
      syncs.delete(entry);
      abortSyncs.delete(onAbort);
    }
  }

  async function serveGet(stream: MuxStream, paths: string[], checksum: boolean, signal: AbortSignal): Promise<SyncOutcome> {
    const sources: { path: string; name: string }[] = [];
    const outside: { name: string; reason: string }[] = [];
    for (const item of paths) {
      const full = item === '' || item === '.' ? exportRoot! : path.join(exportRoot!, item);
      let real: string;
      try {
        real = await realpath(full);
      } catch {
        real = full; // listEntries reports it missing
      }
      if (!isInside(exportRoot!, real)) {
        log(`refused get of ${escapeName(item)}: it leads outside --export`);
        outside.push({ name: item, reason: 'it leads outside the exported directory' });
        continue;
      }
      sources.push({ path: real, name: item === '' || item === '.' ? '' : path.posix.basename(item) });
    }
    const listed = await listEntries(sources);
    // What cannot be sent is listed too, so the client counts it as failed.
    const problems = [...outside, ...listed.problems].map((problem) => ({
      path: '',
      n: problem.name,
      t: 'x' as const,
      e: problem.reason,
      m: 0,
      p: 0,
    }));
    return runSender(stream, [...problems, ...listed.entries], { signal, checksum });
  }

  /**
   * -R: listens where the client asked (if --allow-reverse permits) before accepting its
   * control stream, so a port in use refuses it with the reason.
   */
  function listenFirst(meta: Meta): Promise<true | string> {
    const bind = typeof meta.bind === 'string' ? meta.bind : '';
    const port = meta.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535 || bind === '') {
      return Promise.resolve('a reverse forward needs a bind address and a port');
    }
    if (!allowedReverse.allows(bind, port))
      return Promise.resolve(`listening on ${formatHostPort({ host: bind, port })} is not allowed by this server (--allow-reverse)`);
    return new Promise((resolve) => {
      const listener = net.createServer({ allowHalfOpen: true });
      listener.once('error', (err) => resolve(`cannot listen on ${formatHostPort({ host: bind, port })}: ${err.message}`));
      listener.listen(port, bind, () => {
        reverseListeners.set(meta, listener);
        resolve(true);
      });
    });
  }

  /** The control stream of a -R: while it is open, connections to its port go to the client. */
  function reverseListen(control: MuxStream, meta: Meta, con: MuxConnection): void {
    const listener = reverseListeners.get(meta);
    reverseListeners.delete(meta);
    if (!listener) return void control.destroy();
    const address = listener.address() as net.AddressInfo;
    const where = formatHostPort({ host: address.address, port: address.port });
    const sockets = new Set<net.Socket>();
    control.on('error', () => {});
    control.write(`${JSON.stringify({ listening: where })}\n`);
    control.resume();
    log(`listening on ${where} for ${con.remoteAddress ?? '?'} (reverse forward)`);
    listener.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.pause();
      con.StreamPool.createStream({ type: 'reverse', listen: where }).then(
        (stream) => {
          join(stream, socket);
          socket.resume();
        },
        (err: unknown) => {
          forwardFailures.note(`reverse connection on ${where} not taken by the client: ${describeError(err)}`);
          socket.destroy();
        },
      );
    });
    // Shutting down: the port closes at once (nothing new comes in), the connections on it may
    // finish, and the client sees the control stream end, not break.
    const drain = (): void => {
      listener.close();
      if (sockets.size === 0) control.end();
      else for (const socket of sockets) socket.once('close', () => sockets.size === 0 && control.end());
    };
    reverseDrains.add(drain);
    // The client went away or dropped the forward: the port closes with it.
    control.once('close', () => {
      reverseDrains.delete(drain);
      listener.close();
      for (const socket of sockets) socket.destroy();
      log(`stopped listening on ${where}`);
    });
  }

  function forward(stream: MuxStream, meta: Meta): void {
    if (aborting) {
      stream.destroy();
      return;
    }
    const to = parseHostPort(meta.to as string, 'to'); // admit() checked it
    const socket = connected.get(meta);
    connected.delete(meta);
    if (!socket || socket.destroyed) {
      stream.destroy(new MuxError('ERR_CONNECT_FAILED', `the connection to ${formatHostPort(to)} was lost before the stream arrived`));
      return;
    }
    forwards.add(socket);
    socket.once('error', (err) => forwardFailures.note(`forward to ${formatHostPort(to)}: ${err.message}`));
    join(stream, socket, () => forwards.delete(socket));
    socket.resume();
  }

  const server = new MuxServer(options.port, serverOptions);
  server.on('connection', (con: MuxConnection) => {
    log(`connection from ${con.remoteAddress ?? '?'}:${con.remotePort ?? '?'}`);
    con.on('error', (err: Error) => log(`connection from ${con.remoteAddress ?? '?'}: ${describeError(err)}`));
    con.on('stream', (stream: MuxStream) => {
      const meta = (stream.meta ?? {}) as Meta; // acceptStream admitted only objects
      if (meta.type === 'file' || meta.type === 'sync') stream.once('close', () => fileStreams.set(con, (fileStreams.get(con) ?? 1) - 1));
      if (meta.type === 'file') void receive(stream, meta, con);
      else if (meta.type === 'sync') void sync(stream, meta, con);
      else if (meta.type === 'forward') forward(stream, meta);
      else if (meta.type === 'reverse-listen') reverseListen(stream, meta, con);
      else if (options.extra && meta.type === options.extra.type) options.extra.handle(stream, con);
      else stream.destroy();
    });
  });
  server.on('clientError', (err: MuxError, socket: net.Socket, client: ClientInfo) => {
    // A balancer's TCP health check connects and closes without a byte: nothing was rejected.
    if (socket.bytesRead === 0 && (err.code === 'ERR_PROXY_HEADER' || err.code === 'ERR_HANDSHAKE_FAILED')) return;
    log(`rejected client ${client.remoteAddress ?? '?'}: ${err.message} [${err.code}]`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.on('error', (err: Error) => log(`server error: ${err.message}`));
  const address = server.address() as net.AddressInfo;

  async function abort(): Promise<void> {
    closing = true;
    aborting = true;
    for (const stop of abortSyncs) stop();
    await Promise.allSettled([...syncs].map((entry) => entry.job));
    for (const transfer of transfers) transfer.controller.abort('the server is shutting down');
    for (const socket of forwards) socket.destroy();
    await Promise.allSettled([...transfers].map((transfer) => transfer.job));
    server.destroy();
  }

  async function shutdown(): Promise<void> {
    closing = true;
    // Stop accepting; connections close gracefully once their streams are done (a finished
    // transfer's status must still reach the sender).
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const drain of reverseDrains) drain();
    const inFlight = transfers.size + syncs.size;
    if (inFlight > 0) log(`shutting down: ${inFlight} transfer(s) in flight get ${formatDuration(graceMs / 1000)} to finish`);
    const finished = Promise.allSettled([...[...transfers].map((transfer) => transfer.job), ...[...syncs].map((entry) => entry.job)]);
    await raceTimeout(Promise.all([finished, closed]), graceMs);
    await abort();
    await raceTimeout(closed, 1000);
  }

  return { address: { host: address.address, port: address.port }, root, server, shutdown, abort };
}

/**
 * Resolves `true` once the sender's first bytes have arrived (they stay buffered for the
 * reader), or `false` if the stream ends, closes or `signal` fires before any byte does.
 */
function firstBytes(stream: MuxStream, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (arrived: boolean): void => {
      stream.off('readable', onReadable);
      stream.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      resolve(arrived);
    };
    // 'readable' also fires at the end of a stream that carried nothing.
    const onReadable = (): void => finish(stream.readableLength > 0);
    const onClose = (): void => finish(false);
    const onAbort = (): void => finish(false);
    if (signal.aborted || stream.destroyed) return resolve(false);
    stream.on('readable', onReadable);
    stream.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** `authenticate` for a shared token: constant-time comparison of the SHA-256 digests. */
function tokenCheck(token: string): (hello: JsonValue) => boolean {
  const expected = createHash('sha256').update(token).digest();
  return (hello) => {
    const given =
      typeof hello === 'object' && hello !== null && !Array.isArray(hello) && typeof hello.token === 'string' ? hello.token : '';
    return timingSafeEqual(createHash('sha256').update(given).digest(), expected);
  };
}

/** A peer-supplied value, safe to print: JSON-quoted, with every invisible or reordering character escaped. */
function printable(value: JsonValue | undefined): string {
  return escapeName(JSON.stringify(value ?? null).slice(0, 200));
}

function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.') || host === 'localhost';
}

/** --proxy-protocol: absent, alone (any peer), or with the addresses and ranges to believe. */
function proxyProtocolOption(values: string[] | undefined): true | { trusted: string[] } | undefined {
  if (values === undefined) return undefined;
  const trusted = splitList(values);
  return trusted.length === 0 ? true : { trusted };
}

function raceTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function runServe(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: withOptionalValue(argv, '--proxy-protocol'),
      allowPositionals: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        dir: { type: 'string' },
        overwrite: { type: 'boolean' },
        export: { type: 'string' },
        'allow-shared-dir': { type: 'boolean' },
        'min-free': { type: 'string' },
        token: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'allow-forward': { type: 'string', multiple: true },
        'allow-reverse': { type: 'string', multiple: true },
        grace: { type: 'string' },
        'max-size': { type: 'string' },
        stall: { type: 'string' },
        'max-connections': { type: 'string' },
        'max-streams': { type: 'string' },
        'max-file-streams': { type: 'string' },
        'max-handshakes': { type: 'string' },
        'max-memory': { type: 'string' },
        'proxy-protocol': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined))
    throw new UsageError('--tls-cert and --tls-key go together');
  const allowForward = splitList(values['allow-forward']);
  new AllowList(allowForward); // checks every entry before anything starts
  const allowReverse = splitList(values['allow-reverse']);
  new AllowList(allowReverse);
  const proxyProtocol = proxyProtocolOption(values['proxy-protocol']);
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  let tls: ServeOptions['tls'];
  let handle: ServeHandle;
  try {
    if (values['tls-cert'] !== undefined) tls = { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']!) };
    handle = await startServe({
      port: parsePort(values.port ?? String(DEFAULT_PORT), '--port'),
      host: values.host ?? '127.0.0.1',
      dir: values.dir ?? 'inbox',
      token: values.token ?? process.env.TSMUX_TOKEN,
      tls,
      allowForward,
      allowReverse,
      overwrite: values.overwrite ?? false,
      graceMs: parseSeconds(values.grace, '--grace', 10) * 1000,
      maxSize: optionalLimit(parseBytes(values['max-size'], '--max-size') ?? DEFAULT_MAX_SIZE),
      minFree: optionalLimit(parseBytes(values['min-free'], '--min-free') ?? DEFAULT_MIN_FREE),
      exportDir: values.export,
      allowSharedDir: values['allow-shared-dir'] ?? false,
      maxFileStreams: parsePositiveInteger(values['max-file-streams'], '--max-file-streams', MAX_FILE_STREAMS_PER_CONNECTION),
      maxStreams: parsePositiveInteger(values['max-streams'], '--max-streams', DEFAULTS.maxStreams),
      stallMs: parseSeconds(values.stall, '--stall', 60) * 1000,
      limits: {
        maxConnections: parsePositiveInteger(values['max-connections'], '--max-connections', SERVER_DEFAULTS.maxConnections),
        maxHandshakes: parsePositiveInteger(values['max-handshakes'], '--max-handshakes', SERVER_DEFAULTS.maxHandshakes),
        maxServerMemory: parsePositiveBytes(values['max-memory'], '--max-memory') ?? SERVER_DEFAULTS.maxServerMemory,
      },
      proxyProtocol,
      log,
    });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // The library checks the ranges (one parser, not two); a bad one is a bad command line.
    if (err instanceof MuxError && err.code === 'ERR_INVALID_CONFIG' && err.message.startsWith('option proxyProtocol')) {
      throw new UsageError(err.message.replace(/^option proxyProtocol(\.trusted)?:?/, '--proxy-protocol:'));
    }
    process.stderr.write(`tsmux serve: ${describeError(err)}\n`);
    return 1;
  }
  log(`listening on ${formatHostPort(handle.address)}`);
  const token = values.token ?? process.env.TSMUX_TOKEN;
  if (token === undefined && !isLoopback(handle.address.host)) {
    process.stderr.write('tsmux serve: warning: no --token, so anyone who can reach this port can store files here\n');
  }
  const proxied =
    proxyProtocol === undefined ? '' : `, PROXY protocol from ${proxyProtocol === true ? 'any peer' : proxyProtocol.trusted.join(', ')}`;
  log(`storing files in ${handle.root}${tls ? ', TLS on' : ''}${token !== undefined ? ', token required' : ''}${proxied}`);
  await new Promise<void>((resolve) => {
    const remove = onStopSignals(
      (signal) => {
        log(`${signal}: shutting down`);
        void handle.shutdown().then(() => {
          remove();
          resolve();
        });
      },
      (signal) => {
        log(`${signal} again: aborting every transfer`);
        void handle.abort().then(() => {
          remove();
          resolve();
        });
      },
    );
  });
  log('stopped');
  return 0;
}
