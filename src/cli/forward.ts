/**
 * `tsmux forward -L [BIND:]PORT:HOST:HOSTPORT... --via HOST:PORT` (or `--listen/--to` pairs):
 * local port forwarding as `ssh -L`, several forwards in one process. Each TCP connection
 * accepted on a listening port becomes one stream over ONE connection to the `tsmux serve`
 * at --via, which dials the destination if its --allow-forward permits.
 */
import * as net from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { RECONNECT_DEFAULTS, type MuxClient } from '../index';
import { formatHostPort, parse, parseHostPort, parsePort, parseSeconds, UsageError, type HostPort } from './args';
import { BurstReporter } from './bursts';
import { escapeName } from './escape';
import { closeClient, connect, describeError } from './connect';
import { join } from './join';
import { readSocksRequest, reply, replyFor, SocksReply } from './socks5';
import { onStopSignals } from './signals';

export const FORWARD_HELP = `Usage: tsmux forward -L [BIND:]PORT:HOST:HOSTPORT... --via HOST:PORT [options]
       tsmux forward --listen [HOST:]PORT --to HOST:PORT [--listen ... --to ...] --via HOST:PORT

Local port forwarding, like ssh -L: every TCP connection accepted on a listening port is
carried as one stream over a single connection to the \`tsmux serve\` at --via, which
connects it to the destination (only if it is on that server's --allow-forward list).
Half-closes and errors propagate both ways. Several forwards share the one connection.

Options:
  -L [BIND:]PORT:HOST:HOSTPORT  a forward, as ssh's -L (BIND default 127.0.0.1; PORT 0 = any);
                        repeatable
  -R [BIND:]PORT:HOST:HOSTPORT  a reverse forward, as ssh's -R: the server listens on
                        [BIND:]PORT (if its --allow-reverse permits; BIND default 127.0.0.1)
                        and each connection there is made here to HOST:HOSTPORT; repeatable
  -D [BIND:]PORT        a SOCKS5 server, as ssh's -D (CONNECT to IPv4, IPv6 or names, which
                        the server resolves); each target must be on serve's --allow-forward;
                        repeatable
  --listen [HOST:]PORT  where to accept connections (host default 127.0.0.1; port 0 = any);
                        repeatable, each with the --to that follows it
  --to HOST:PORT        destination, as the server sees it
  --via HOST:PORT       the tsmux server
  --retry-max N         reconnect attempts in a row before giving up (default: no limit;
                        0 = exit when the connection to the server is lost)
  --retry-delay-max S   longest wait between attempts, in seconds (default 30)
  --wait S              how long a connection accepted while the link is down waits for it
                        before it is closed, in seconds (default 30; 0 = no limit)
  --token T             token the server's --token expects (or set TSMUX_TOKEN)
  --tls-ca FILE         connect over TLS, trusting this CA / certificate (PEM)
  -h, --help            this help

Prints "listening on HOST:PORT" per forward, and refused or failed connections to stdout:
the first of a kind at once, the rest of a burst as one line a second.
Exit codes: 0 after SIGINT / SIGTERM; 1 cannot connect, authenticate or listen, or the
connection to the server was lost; 2 bad usage.
`;

export async function runForward(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        local: { type: 'string', short: 'L', multiple: true },
        dynamic: { type: 'string', short: 'D', multiple: true },
        remote: { type: 'string', short: 'R', multiple: true },
        listen: { type: 'string', multiple: true },
        to: { type: 'string', multiple: true },
        via: { type: 'string' },
        'retry-max': { type: 'string' },
        'retry-delay-max': { type: 'string' },
        wait: { type: 'string' },
        token: { type: 'string' },
        'tls-ca': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(FORWARD_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const listens = values.listen ?? [];
  const tos = values.to ?? [];
  if (listens.length !== tos.length) throw new UsageError('every --listen needs its --to (and every --to its --listen)');
  const forwards: Forward[] = [
    ...(values.local ?? []).map(parseLocalForward),
    ...listens.map((listen, i) => ({
      listen: parseHostPort(listen, '--listen', '127.0.0.1'),
      to: formatHostPort(parseHostPort(tos[i], '--to')),
    })),
  ];
  const socks = (values.dynamic ?? []).map(parseDynamicForward);
  // -R has -L's syntax, read the other way: serve listens on [BIND:]PORT, we connect to HOST:HOSTPORT.
  const reverses = (values.remote ?? []).map(parseLocalForward);
  if ((forwards.length === 0 && socks.length === 0 && reverses.length === 0) || !values.via) {
    throw new UsageError('-L, -R or -D (or --listen and --to) and --via are required');
  }
  const via = parseHostPort(values.via, '--via');
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const failures = new BurstReporter(log);
  const retryMax = values['retry-max'] === undefined ? Infinity : parseNonNegativeInteger(values['retry-max'], '--retry-max');
  const retryDelayMax = parseSeconds(values['retry-delay-max'], '--retry-delay-max', 30) * 1000;
  // A link that heals: the ports stay open while the client dials again, and connections
  // accepted meanwhile wait for the new link (up to --wait, the library's openTimeout).
  const openTimeout = parseSeconds(values.wait, '--wait', 30) * 1000;
  const reconnect = retryMax === 0 ? false : { maxAttempts: retryMax, maxDelay: Math.max(retryDelayMax, RECONNECT_DEFAULTS.initialDelay) };

  let client: MuxClient;
  try {
    client = await connect(via, { token: values.token ?? process.env.TSMUX_TOKEN, tlsCa: values['tls-ca'], reconnect, openTimeout });
  } catch (err) {
    process.stderr.write(`tsmux forward: ${describeError(err, via)}\n`);
    return 1;
  }
  const sockets = new Set<net.Socket>();
  const listeners: net.Server[] = [];
  /** Listens on `listen` and hands every accepted socket (tracked, errors muted) to `handle`. */
  const listenOn = async (listen: HostPort, what: string, handle: (socket: net.Socket) => void): Promise<boolean> => {
    const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {}); // join() handles it once the stream is open
      handle(socket);
    });
    listeners.push(listener);
    try {
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(listen.port, listen.host, resolve);
      });
    } catch (err) {
      process.stderr.write(`tsmux forward: cannot listen on ${formatHostPort(listen)}: ${(err as Error).message}\n`);
      return false;
    }
    const address = listener.address() as net.AddressInfo;
    log(`listening on ${formatHostPort({ host: address.address, port: address.port })}`);
    log(`${what} via ${formatHostPort(via)}`);
    return true;
  };
  /**
   * Opens a forward to `to` for `socket` and joins them; `opened` runs first (a SOCKS reply),
   * `refused` instead when the server says no (with its reason).
   */
  const forwardSocket = (socket: net.Socket, to: string, opened?: (stream: Duplex) => void, refused?: (reason: string) => void): void => {
    socket.pause();
    client.StreamPool.createStream({ type: 'forward', to }).then(
      (stream) => {
        // The server resets a stream whose destination fails later, with the reason.
        stream.once('error', (err: Error) => failures.note(`connection to ${to} failed: ${describeError(err)}`));
        if (socket.destroyed) {
          stream.destroy();
          return;
        }
        opened?.(stream);
        join(stream, socket);
        socket.resume();
      },
      (err: unknown) => {
        const reason = describeError(err);
        failures.note(`connection to ${to} not forwarded: ${reason}`);
        if (refused) refused(reason);
        else socket.destroy();
      },
    );
  };
  // -L: each connection becomes a forward to its destination; -D: a SOCKS5 server per
  // address, each CONNECT a forward to what the client asked.
  const listening = [
    ...forwards.map(
      ({ listen, to }) =>
        () =>
          listenOn(listen, `forwarding to ${to}`, (socket) => forwardSocket(socket, to)),
    ),
    ...socks.map((listen) => () => listenOn(listen, 'SOCKS5', (socket) => void socksConnect(socket))),
  ];
  for (const start of listening) {
    if (!(await start())) {
      for (const open of listeners) open.close();
      client.destroy();
      return 1;
    }
  }

  async function socksConnect(socket: net.Socket): Promise<void> {
    let request;
    try {
      request = await readSocksRequest(socket);
    } catch (err) {
      failures.note(`SOCKS client ${socket.remoteAddress ?? '?'}: ${(err as Error).message}`);
      socket.destroy();
      return;
    }
    const { rest } = request;
    forwardSocket(
      socket,
      formatHostPort({ host: request.host.toLowerCase(), port: request.port }),
      (stream) => {
        reply(socket, SocksReply.SUCCEEDED);
        if (rest.length > 0) stream.write(rest);
      },
      (reason) => reply(socket, replyFor(reason)),
    );
  }

  // -R: serve listens for us; each connection it takes arrives as a stream we connect here.
  const reverseTargets = new Map<string, string>();
  client.on('stream', (stream) => {
    const meta = stream.meta as { type?: unknown; listen?: unknown } | null;
    const to = typeof meta?.listen === 'string' ? reverseTargets.get(meta.listen) : undefined;
    if (meta?.type !== 'reverse' || to === undefined) return void stream.destroy();
    stream.on('error', () => {});
    const target = parseHostPort(to, 'the reverse target');
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('error', (err) => {
      failures.note(`reverse connection to ${to} failed: ${err.message}`);
      stream.destroy(new Error(`cannot connect to ${to}: ${err.message}`));
    });
    socket.once('connect', () => join(stream, socket));
  });
  const registerReverses = async (): Promise<boolean> => {
    for (const { listen, to } of reverses) {
      try {
        const control = await client.StreamPool.createStream({ type: 'reverse-listen', bind: listen.host, port: listen.port });
        control.on('error', () => {});
        const where = (JSON.parse(await firstLine(control)) as { listening: string }).listening;
        // serve ends it when it shuts down gracefully: our end lets the stream close cleanly.
        control.once('end', () => control.end());
        reverseTargets.set(where, to);
        log(`the server listens on ${where} for ${to} (reverse)`);
      } catch (err) {
        log(`reverse forward ${formatHostPort(listen)} -> ${to} refused: ${describeError(err)}`);
        return false;
      }
    }
    return true;
  };
  if (!(await registerReverses())) {
    for (const open of listeners) open.close();
    client.destroy();
    return 1;
  }
  // A new link has none of the old one's reverse listeners: ask again.
  client.on('reconnect', () => {
    reverseTargets.clear();
    void registerReverses();
  });

  let stopping = false;
  const code = await new Promise<number>((resolve) => {
    client.on('error', () => {}); // the close below says it
    // A graceful shutdown of serve (GO_AWAY) reads differently from a crash.
    let goAway: string | undefined;
    client.once('goaway', (code, reason) => {
      goAway = reason || `code ${code}`;
      log(`the server is going away (${escapeName(goAway)}): connections in flight may finish, new ones are refused`);
    });
    client.once('close', (hadError) => {
      if (stopping) return;
      log(goAway !== undefined && !hadError ? 'the server closed the connection after going away' : 'connection to the server lost');
      resolve(1);
    });
    // Said once per change of state, not per attempt or per connection.
    let linkUp = true;
    client.on('reconnecting', (info) => {
      if (!linkUp) return;
      linkUp = false;
      if (goAway !== undefined && !info.error) log('the server closed the connection after going away; reconnecting, ports stay open');
      else log(`connection to the server lost (${info.error ? describeError(info.error) : 'closed'}); reconnecting, ports stay open`);
      goAway = undefined;
    });
    client.on('reconnect', () => {
      linkUp = true;
      log(`connection to the server ${formatHostPort(via)} re-established`);
    });
    const remove = onStopSignals(
      () => {
        stopping = true;
        remove();
        resolve(0);
      },
      () => {},
    );
  });
  for (const listener of listeners) listener.close();
  failures.flush();
  for (const socket of sockets) socket.destroy();
  await closeClient(client, 1000);
  return code;
}

interface Forward {
  listen: HostPort;
  /** `host:port` as the server sees it. */
  to: string;
}

/** Resolves with the first line a stream carries. */
function firstLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer | string): void => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end < 0) return;
      stream.off('data', onData);
      resolve(text.slice(0, end));
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error('the server ended the reverse forward')));
    stream.once('error', reject);
  });
}

/** ssh's `-D [BIND:]PORT`: where the SOCKS5 server listens (BIND default 127.0.0.1). */
export function parseDynamicForward(spec: string): HostPort {
  const match = /^(?:(\[[^\]]+\]|[^:[\]]+):)?(\d+)$/.exec(spec);
  if (!match) throw new UsageError(`-D: expected [BIND:]PORT, got "${spec}"`);
  return { host: match[1] === undefined ? '127.0.0.1' : match[1].replace(/^\[(.*)\]$/, '$1'), port: parsePort(match[2], '-D') };
}

/** ssh's `-L [BIND:]PORT:HOST:HOSTPORT`, with IPv6 addresses in brackets. */
export function parseLocalForward(spec: string): Forward {
  const part = '(\\[[^\\]]+\\]|[^:[\\]]+)';
  const match = new RegExp(`^(?:${part}:)?(\\d+):${part}:(\\d+)$`).exec(spec);
  if (!match) throw new UsageError(`-L: expected [BIND:]PORT:HOST:HOSTPORT, got "${spec}"`);
  const [, bind, port, host, hostPort] = match;
  const unbracket = (text: string): string => text.replace(/^\[(.*)\]$/, '$1');
  return {
    listen: { host: bind === undefined ? '127.0.0.1' : unbracket(bind), port: parsePort(port, '-L') },
    to: formatHostPort({ host: unbracket(host).toLowerCase(), port: parsePort(hostPort, '-L') }),
  };
}

/** 0 or a positive integer option. */
function parseNonNegativeInteger(text: string, what: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${what}: expected a whole number, got "${text}"`);
  return Number(text);
}
