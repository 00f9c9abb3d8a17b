/**
 * `tsmux forward --listen [HOST:]PORT --to HOST:PORT --via HOST:PORT`: local port forwarding
 * as `ssh -L`. Each TCP connection accepted on --listen becomes one stream over ONE
 * connection to the `tsmux serve` at --via, which dials --to if its --allow-forward permits.
 */
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import type { MuxClient } from '../index';
import { formatHostPort, parse, parseHostPort, UsageError } from './args';
import { closeClient, connect, describeError } from './connect';
import { join } from './join';
import { onStopSignals } from './signals';

export const FORWARD_HELP = `Usage: tsmux forward --listen [HOST:]PORT --to HOST:PORT --via HOST:PORT [options]

Local port forwarding, like ssh -L: every TCP connection accepted on --listen is carried as
one stream over a single connection to the \`tsmux serve\` at --via, which connects it to
--to (only if --to is on that server's --allow-forward list). Half-closes and errors
propagate both ways.

Options:
  --listen [HOST:]PORT  where to accept connections (host default 127.0.0.1; port 0 = any)
  --to HOST:PORT        destination, as the server sees it
  --via HOST:PORT       the tsmux server
  --token T             token the server's --token expects (or set TSMUX_TOKEN)
  --tls-ca FILE         connect over TLS, trusting this CA / certificate (PEM)
  -h, --help            this help

Prints "listening on HOST:PORT" and one line per refused or failed connection to stdout.
Exit codes: 0 after SIGINT / SIGTERM; 1 cannot connect, authenticate or listen, or the
connection to the server was lost; 2 bad usage.
`;

export async function runForward(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        listen: { type: 'string' },
        to: { type: 'string' },
        via: { type: 'string' },
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
  if (!values.listen || !values.to || !values.via) throw new UsageError('--listen, --to and --via are required');
  const listen = parseHostPort(values.listen, '--listen', '127.0.0.1');
  const to = formatHostPort(parseHostPort(values.to, '--to'));
  const via = parseHostPort(values.via, '--via');
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  let client: MuxClient;
  try {
    client = await connect(via, { token: values.token ?? process.env.TSMUX_TOKEN, tlsCa: values['tls-ca'] });
  } catch (err) {
    process.stderr.write(`tsmux forward: ${describeError(err, via)}\n`);
    return 1;
  }
  const sockets = new Set<net.Socket>();
  const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // join() handles it once the stream is open
    socket.pause();
    client.StreamPool.createStream({ type: 'forward', to }).then(
      (stream) => {
        if (socket.destroyed) {
          stream.destroy();
          return;
        }
        join(stream, socket);
        socket.resume();
      },
      (err: unknown) => {
        log(`connection from ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'} not forwarded: ${describeError(err)}`);
        socket.destroy();
      },
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(listen.port, listen.host, resolve);
    });
  } catch (err) {
    process.stderr.write(`tsmux forward: cannot listen on ${formatHostPort(listen)}: ${(err as Error).message}\n`);
    client.destroy();
    return 1;
  }
  const address = listener.address() as net.AddressInfo;
  log(`listening on ${formatHostPort({ host: address.address, port: address.port })}`);
  log(`forwarding to ${to} via ${formatHostPort(via)}`);

  let stopping = false;
  const code = await new Promise<number>((resolve) => {
    client.on('error', () => {}); // the close below says it
    client.once('close', () => {
      if (stopping) return;
      log('connection to the server lost');
      resolve(1);
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
  listener.close();
  for (const socket of sockets) socket.destroy();
  await closeClient(client, 1000);
  return code;
}
