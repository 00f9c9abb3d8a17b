#!/usr/bin/env node
/**
 * `tsmux`: the command line of tcp-stream-muxer, built on the library's public API only.
 * Dispatches to one file per command; usage errors print one line and exit 2.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { UsageError } from './args';
import { runDemo } from './demo';
import { runForward } from './forward';
import { runGet } from './get';
import { runSend } from './send';
import { runServe } from './serve';
import { runStdio } from './stdio';

export const MAIN_HELP = `Usage: tsmux <command> [options]

Many files and TCP connections over one tcp-stream-muxer connection.

Commands:
  serve     accept connections; store received files, forward allowed ports
  send      send files and directories (skips unchanged ones, resumes cut ones)
  get       download files and directories from a server's --export
  forward   local port forwarding through a server (like ssh -L)
  stdio     stdin/stdout as one forwarded connection (for ssh's ProxyCommand)
  demo      a server and a client in one process: files and chat at once

Run \`tsmux <command> --help\` for its options. \`tsmux --version\` prints the version.
`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  serve: runServe,
  send: runSend,
  get: runGet,
  forward: runForward,
  stdio: runStdio,
  demo: runDemo,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(MAIN_HELP);
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(MAIN_HELP);
    return 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  // Own properties only: `tsmux toString` is an unknown command, not Object.prototype's.
  const run = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!run) {
    process.stderr.write(`tsmux: unknown command "${name}"\n\n${MAIN_HELP}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      // One line that names the mistake and where the usage is: the full usage after every
      // typo buried the message under thirty lines of options.
      process.stderr.write(`tsmux ${name}: ${err.message} (see tsmux ${name} --help)\n`);
      return 2;
    }
    throw err;
  }
}

/** The package's version, from the package.json above this file (src/ or dist/cjs/). */
function version(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tcp-stream-muxer') return pkg.version ?? '?';
    } catch {
      // not here; look further up
    }
  }
  return '?';
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => exit(code),
    (err: unknown) => {
      process.stderr.write(`tsmux: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      exit(1);
    },
  );
}

/** Exits once stdout and stderr are flushed (they may be pipes). */
function exit(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
