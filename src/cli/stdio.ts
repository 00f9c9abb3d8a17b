/**
 * `tsmux stdio HOST:PORT --via SERVER`: this process's stdin and stdout become one forwarded
 * connection to HOST:PORT, as the server sees it. What `ssh -o ProxyCommand` needs:
 * `ssh -o ProxyCommand='tsmux stdio %h:%p --via server:12345' host`.
 */
import { parseArgs } from 'node:util';
import { formatHostPort, parse, parseHostPort, UsageError } from './args';
import { closeClient, connect, describeError } from './connect';

export const STDIO_HELP = `Usage: tsmux stdio HOST:PORT --via HOST:PORT [options]

Joins stdin and stdout to one connection to HOST:PORT made by the \`tsmux serve\` at --via
(only if HOST:PORT is on that server's --allow-forward list), as ssh's ProxyCommand needs:

  ssh -o ProxyCommand='tsmux stdio %h:%p --via server:12345' user@host

The end of stdin half-closes the connection; the connection's end ends stdout.

Options:
  --via HOST:PORT       the tsmux server
  --token T             token the server's --token expects (or set TSMUX_TOKEN)
  --tls-ca FILE         connect over TLS, trusting this CA / certificate (PEM)
  -h, --help            this help

Errors go to stderr (stdout carries only the connection's bytes).
Exit codes: 0 the connection ended; 1 cannot connect, or the connection failed; 2 bad usage.
`;

export async function runStdio(argv: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        via: { type: 'string' },
        token: { type: 'string' },
        'tls-ca': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    process.stdout.write(STDIO_HELP);
    return 0;
  }
  if (positionals.length !== 1 || !values.via) throw new UsageError('expected HOST:PORT and --via');
  const to = formatHostPort(parseHostPort(positionals[0], 'HOST:PORT'));
  const via = parseHostPort(values.via, '--via');
  let client;
  try {
    client = await connect(via, { token: values.token ?? process.env.TSMUX_TOKEN, tlsCa: values['tls-ca'] });
  } catch (err) {
    process.stderr.write(`tsmux stdio: ${describeError(err, via)}\n`);
    return 1;
  }
  client.on('error', () => {});
  try {
    const stream = await client.StreamPool.createStream({ type: 'forward', to });
    const finished = new Promise<number>((resolve) => {
      let failed: Error | undefined;
      stream.on('error', (err) => (failed = err));
      stream.once('close', () => {
        if (failed) process.stderr.write(`tsmux stdio: ${describeError(failed)}\n`);
        resolve(failed ? 1 : 0);
      });
    });
    process.stdin.pipe(stream); // stdin's end half-closes the connection
    stream.pipe(process.stdout); // the connection's end ends stdout
    const code = await finished;
    process.stdin.unpipe(stream);
    process.stdin.destroy();
    await closeClient(client, 1000);
    return code;
  } catch (err) {
    process.stderr.write(`tsmux stdio: ${describeError(err, via)}\n`);
    client.destroy();
    return 1;
  }
}
