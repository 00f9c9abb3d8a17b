/**
 * The tsmux binary itself: --help on every command, usage errors (exit 2), --version, the
 * demo that `npm start` runs, and the library core staying free of the CLI's dependency.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, runCli } from './helpers/cli';

const ROOT = path.resolve(__dirname, '..');

test('--help on every command prints its usage and exits 0', async (t) => {
  for (const command of ['serve', 'send', 'get', 'forward', 'stdio', 'demo']) {
    for (const flag of ['--help', '-h']) {
      const result = await runCli(t, [command, flag]);
      assert.equal(result.code, 0, `${command} ${flag}`);
      assert.match(result.stdout, new RegExp(`^Usage: tsmux ${command}`), command);
      assert.match(result.stdout, /Exit code/);
    }
  }
  const main = await runCli(t, ['--help']);
  assert.equal(main.code, 0);
  assert.match(main.stdout, /^Usage: tsmux <command>/);
  for (const command of ['serve', 'send', 'get', 'forward', 'stdio', 'demo']) assert.match(main.stdout, new RegExp(`^  ${command} `, 'm'));
});

test('bad usage exits 2 with one line on stderr: the reason and where the usage is', async (t) => {
  const cases: [string[], RegExp][] = [
    [['send'], /expected HOST:PORT \(or HOST\) and at least one FILE/],
    [['send', 'no:host:here', 'a'], /expected HOST\[:PORT\]/],
    [['send', '127.0.0.1:1', 'a', '--concurrency', '0'], /--concurrency: expected a positive integer/],
    [['send', '127.0.0.1:1', 'a', '--frobnicate'], /unknown option --frobnicate/],
    [['send', '127.0.0.1:1', 'a', '-x'], /unknown option -x/],
    [['send', '127.0.0.1:1', 'a', '--token'], /option --token needs a value/],
    [
      ['send', '127.0.0.1:1', 'a', '--token', '--progress', 'none'],
      /option --token needs a value \(one starting with - is written --token=-VALUE\)/,
    ],
    [['send', '127.0.0.1:1', 'a', '--help=yes'], /option --help takes no value/],
    [['send', '127.0.0.1:1', 'a', '--status-timeout', 'soon'], /--status-timeout: expected a number of seconds/],
    [['serve', 'extra'], /unexpected argument "extra"/],
    [['serve', '--port', 'http'], /--port: "http" is not a port number/],
    [['serve', '--tls-cert', 'x'], /--tls-cert and --tls-key go together/],
    [['serve', '--allow-forward', 'nope'], /--allow-forward: expected HOST:PORT/],
    [['forward', '--listen', '1'], /every --listen needs its --to/],
    [['forward', '-L', '1:h:2'], /-L, -R or -D \(or --listen and --to\) and --via are required/],
    [['demo', '--rate', 'fast'], /--rate/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(t, args);
    const what = args.join(' ');
    assert.equal(result.code, 2, what);
    // Exactly one line: the usage itself is one --help away.
    assert.match(result.stderr, new RegExp(`^tsmux ${args[0]}: [^\\n]* \\(see tsmux ${args[0]} --help\\)\\n$`), what);
    assert.match(result.stderr, message, what);
    assert.equal(result.stdout, '', what);
  }
  for (const [args, message] of [
    [[], /^Usage: tsmux <command>/],
    [['frobnicate'], /^tsmux: unknown command "frobnicate"\n\nUsage: tsmux <command>/],
    [['toString'], /^tsmux: unknown command "toString"/],
  ] as [string[], RegExp][]) {
    const result = await runCli(t, args);
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, message, args.join(' '));
  }
});

test('serve on a port in use: a clear message and exit code 1', async (t) => {
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.after(() => busy.close());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsmux-busy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const result = await runCli(t, ['serve', '--port', String((busy.address() as net.AddressInfo).port), '--dir', dir]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^tsmux serve: .*EADDRINUSE/m);
});

test('--version prints the package version; the bin is executable with a node shebang', async (t) => {
  const result = await runCli(t, ['--version']);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
    bin: Record<string, string>;
    scripts: Record<string, string>;
  };
  assert.equal(result.stdout.trim(), pkg.version);
  assert.equal(path.resolve(ROOT, pkg.bin.tsmux), CLI);
  assert.ok(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n'));
  assert.ok((statSync(CLI).mode & 0o111) !== 0, 'executable');
  assert.equal(pkg.scripts.start, 'node dist/cjs/cli/main.js demo');
});

test('demo: files and a chat stream at once, every hash verified, exit 0', async (t) => {
  const result = await runCli(t, ['demo', '--rate', '0'], { ms: 30_000 });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /^7 files sent, 49 MiB in .*, 0 failed$/m);
  assert.match(result.stdout, /^verified: 7 of 7 files, SHA-256 identical; chat: 6 of 6 messages/m);
  assert.match(result.stderr, /^chat < server: got "bye!"/m);
  assert.match(result.stderr, /^sent demo\/video\.bin 24 MiB in /m);
  assert.doesNotMatch(result.stdout + result.stderr, /problem:|\x1b/);
});

test('the library core does not load the CLI dependency (cli-progress)', () => {
  const loaded = execFileSync(
    process.execPath,
    [
      '-e',
      "require('./dist/cjs/index.js'); process.stdout.write(String(Object.keys(require.cache).filter((k) => /cli-progress|[\\\\/]cli[\\\\/]/.test(k)).length))",
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(loaded, '0');
});
