/** The command line's pure parts: HOST:PORT parsing, sizes, durations, the summary. */
import { describe, test } from 'node:test';
import * as net from 'node:net';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { parseArgs } from 'node:util';
import {
  DEFAULT_PORT,
  formatHostPort,
  parse,
  parseBytes,
  parseHostPort,
  parsePositiveInteger,
  parseSeconds,
  splitList,
  UsageError,
} from '../src/cli/args';
import { BurstReporter, MAX_KINDS } from '../src/cli/bursts';
import { join } from '../src/cli/join';
import { Progress } from '../src/cli/progress';
import { withTimeout } from './helpers/async';
import { formatBytes, formatDuration, formatRate, formatSignificant, formatSummary } from '../src/cli/summary/format';

test('parseHostPort: host:port, [ipv6]:port, a bare port with a default host', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:80', 'x'), { host: '127.0.0.1', port: 80 });
  assert.deepEqual(parseHostPort('Example.ORG:65535', 'x'), { host: 'example.org', port: 65535 });
  assert.deepEqual(parseHostPort('[::1]:0', 'x'), { host: '::1', port: 0 });
  assert.deepEqual(parseHostPort('8080', 'x', '127.0.0.1'), { host: '127.0.0.1', port: 8080 });
  for (const bad of ['8080', 'host', 'host:', ':80', 'host:65536', 'host:-1', 'host:8o', '::1:80', 'a:b:80', '[::1]', '[host]:80']) {
    assert.throws(() => parseHostPort(bad, '--to'), UsageError, bad);
  }
  assert.equal(formatHostPort({ host: '::1', port: 5 }), '[::1]:5');
  assert.equal(formatHostPort(parseHostPort('LOCALHOST:7', 'x')), 'localhost:7');
});

describe('parse: parseArgs errors in our words', () => {
  const options = {
    token: { type: 'string', short: 't' },
    list: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  } as const;
  const run = (args: string[], allowPositionals = true) => parse(() => parseArgs({ args, options, allowPositionals }));
  const refused = (args: string[], message: string, allowPositionals = true): void => {
    assert.throws(
      () => run(args, allowPositionals),
      (err: unknown) => err instanceof UsageError && err.message === message,
      `${args.join(' ')} → ${message}`,
    );
  };

  test('an unknown option, long, short, with a value, in a group, with a quote in its name', () => {
    refused(['--frobnicate'], 'unknown option --frobnicate');
    refused(['--frobnicate=1'], 'unknown option --frobnicate');
    refused(['-x'], 'unknown option -x');
    refused(['-hx'], 'unknown option -x');
    refused(["--it's"], "unknown option --it's");
  });

  test('a missing value names the long option; a value that looks like an option gets a hint', () => {
    refused(['--token'], 'option --token needs a value');
    refused(['-t'], 'option --token needs a value');
    refused(['--list'], 'option --list needs a value');
    refused(['--token', '--help'], 'option --token needs a value (one starting with - is written --token=-VALUE)');
    refused(['-t', '-h'], 'option --token needs a value (one starting with - is written --token=-VALUE)');
    assert.equal(run(['--token=-x']).values.token, '-x');
  });

  test('a value for a flag, and a positional where none is taken', () => {
    refused(['--help=yes'], 'option --help takes no value');
    refused(['extra'], 'unexpected argument "extra"', false);
    refused(['--', "it's 'quoted'"], "unexpected argument \"it's 'quoted'\"", false);
  });

  test('other errors are bugs, not bad command lines, and pass through unchanged', () => {
    const bug = new TypeError('options.token.type must be a string');
    assert.throws(
      () =>
        parse(() => {
          throw bug;
        }),
      (err: unknown) => err === bug,
    );
    assert.throws(
      () => parse(() => parseArgs({ args: [], options: { x: { type: 'number' as 'string' } } })),
      (err: unknown) => !(err instanceof UsageError),
    );
  });
});

test('parseHostPort with a default port: a bare HOST or [IPv6], the port still allowed', () => {
  const withPort = { defaultPort: DEFAULT_PORT };
  assert.equal(DEFAULT_PORT, 12345);
  assert.deepEqual(parseHostPort('Example.ORG', 'x', withPort), { host: 'example.org', port: 12345 });
  assert.deepEqual(parseHostPort('127.0.0.1', 'x', withPort), { host: '127.0.0.1', port: 12345 });
  assert.deepEqual(parseHostPort('localhost:99', 'x', withPort), { host: 'localhost', port: 99 });
  assert.deepEqual(parseHostPort('[::1]', 'x', withPort), { host: '::1', port: 12345 });
  assert.deepEqual(parseHostPort('[::1]:99', 'x', withPort), { host: '::1', port: 99 });
  assert.deepEqual(parseHostPort('[FE80::1%eth0]', 'x', withPort), { host: 'fe80::1%eth0', port: 12345 });
  assert.deepEqual(parseHostPort('[::ffff:1.2.3.4]:0', 'x', withPort), { host: '::ffff:1.2.3.4', port: 0 });
  // Both defaults, as a listen address could use: a number is the port, a name the host.
  const both = { defaultHost: '127.0.0.1', defaultPort: 7 };
  assert.deepEqual(parseHostPort('8080', 'x', both), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseHostPort('h', 'x', both), { host: 'h', port: 7 });
  assert.deepEqual(parseHostPort('8080', 'x', { defaultHost: '::' }), { host: '::', port: 8080 });
  // Without brackets the last group of an IPv6 address could be the port: refused, not guessed.
  for (const bad of [
    '::1',
    '::1:80',
    'fe80::1',
    'a:b:80',
    '[::1]:',
    '[::1]:x',
    '[::1]x',
    '[::1',
    '::1]',
    '[]',
    '[host]',
    '[host]:80',
    '[1.2.3.4]:80',
  ]) {
    assert.throws(
      () => parseHostPort(bad, '--to', withPort),
      /^UsageError: --to: .*IPv6 as \[ADDR\] or \[ADDR\]:PORT|is not a port number/,
      bad,
    );
  }
  // A bare number lacks its host (`send 8080 file`); blanks and stray brackets are no host.
  for (const bad of ['', '8080', ':80', 'host:', 'host:65536', 'a b', ' host', 'ho]st', 'ho[st:80']) {
    assert.throws(() => parseHostPort(bad, 'HOST[:PORT]', withPort), UsageError, bad);
  }
  assert.throws(() => parseHostPort('8080', 'HOST', withPort), /^UsageError: HOST: expected HOST\[:PORT\], got "8080"$/);
  assert.throws(() => parseHostPort('h', '--to'), /^UsageError: --to: expected HOST:PORT, got "h"$/);
  assert.throws(() => parseHostPort('[::1]', '--to'), /^UsageError: --to: expected HOST:PORT \(IPv6 as \[ADDR\]:PORT\), got "\[::1\]"$/);
});

test('numbers and lists', () => {
  assert.equal(parsePositiveInteger(undefined, 'x', 8), 8);
  assert.equal(parsePositiveInteger('3', 'x', 8), 3);
  for (const bad of ['0', '-1', '1.5', 'x', '']) assert.throws(() => parsePositiveInteger(bad, 'x', 8), UsageError);
  assert.equal(parseSeconds('2.5', 'x', 1), 2.5);
  assert.throws(() => parseSeconds('soon', 'x', 1), UsageError);
  // Beyond 2^31-1 ms a Node timer fires at once: such a --grace would abort transfers at once.
  assert.equal(parseSeconds('2147483', 'x', 1), 2147483);
  assert.throws(() => parseSeconds('3000000', 'x', 1), /at most 2147483 seconds/);
  assert.equal(parseBytes(undefined, 'x'), undefined);
  assert.equal(parseBytes('1048576', 'x'), 1048576);
  assert.equal(parseBytes('2K', 'x'), 2048);
  assert.equal(parseBytes('512M', 'x'), 512 * 1024 * 1024);
  assert.equal(parseBytes('4GiB', 'x'), 4 * 1024 ** 3);
  for (const bad of ['', 'x', '-1', '1Q', '1e3']) assert.throws(() => parseBytes(bad, 'x'), UsageError, bad);
  assert.deepEqual(splitList(['a:1,b:2', ' c:3 ', '']), ['a:1', 'b:2', 'c:3']);
});

test('formatBytes: binary units, 3 significant digits, the unit going up before a fourth digit', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [-0, '0 B'],
    [0.001, '0.001 B'],
    [0.5, '0.5 B'],
    [333.33333333333337, '333 B'],
    [512, '512 B'],
    [999.4, '999 B'],
    [999.5, '0.976 KiB'], // would round to 1000 B
    [1000, '0.977 KiB'],
    [1023, '0.999 KiB'],
    [1023.9, '1 KiB'],
    [1536, '1.5 KiB'],
    [5 * 1024 * 1024, '5 MiB'],
    [1.2345 * 1024 * 1024, '1.23 MiB'],
    [123.45 * 1024 * 1024, '123 MiB'],
    [3 * 1024 ** 3, '3 GiB'],
    [Number.MAX_SAFE_INTEGER, '8 PiB'],
    [1e21, '867 EiB'],
    [1e25, '8670000 EiB'], // past the largest unit: still 3 digits, and no exponent
    [Number.MAX_VALUE, '1.56e+290 EiB'],
    [1e-7, '1.00e-7 B'],
    [-1536, '-1.5 KiB'],
    [NaN, '?'],
    [Infinity, '?'],
    [-Infinity, '?'],
  ];
  for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, String(bytes));
});

test('formatRate: 3 significant digits, `-` without elapsed time or a finite rate', () => {
  assert.equal(formatRate(1000, 3), '333 B/s');
  assert.equal(formatRate(10 * 1024 * 1024, 2), '5 MiB/s');
  assert.equal(formatRate(1.2345 * 1024 * 1024, 1), '1.23 MiB/s');
  assert.equal(formatRate(1, 1000), '0.001 B/s');
  assert.equal(formatRate(0, 1), '0 B/s');
  for (const [bytes, seconds] of [
    [10, 0],
    [0, 0],
    [10, -1],
    [10, NaN],
    [NaN, 1],
    [Infinity, 1],
    [1, 1e-320], // a rate that overflows to infinity
  ]) {
    assert.equal(formatRate(bytes, seconds), '-', `${bytes} / ${seconds}`);
  }
});

test('formatDuration: 3 significant digits below a minute, then whole minutes and hours', () => {
  const cases: [number, string][] = [
    [0, '0 s'],
    [0.001, '0.001 s'],
    [0.25, '0.25 s'],
    [0.5, '0.5 s'],
    [12.345, '12.3 s'],
    [42, '42 s'],
    [59.94, '59.9 s'],
    [59.96, '1 min 0 s'], // rounds to 60.0: a minute
    [119.6, '2 min 0 s'], // not `1 min 60 s`
    [125, '2 min 5 s'],
    [3599.4, '59 min 59 s'],
    [3599.6, '1 h 0 min'],
    [3 * 3600 + 60, '3 h 1 min'],
    [1e6, '277 h 47 min'],
    [-1, '?'],
    [NaN, '?'],
    [Infinity, '?'],
  ];
  for (const [seconds, text] of cases) assert.equal(formatDuration(seconds), text, String(seconds));
  assert.equal(formatSignificant(2 / 3), '0.667');
  assert.equal(formatSignificant(-1234.5), '-1230');
});

test('formatSummary: counts, throughput, failures, interruption', () => {
  assert.equal(
    formatSummary({ verb: 'sent', files: 1, bytes: 2048, seconds: 2, failures: [] }),
    '1 file sent, 2 KiB in 2 s (1 KiB/s), 0 failed\n',
  );
  // The example: a third of a kibibyte per second, not 333.33333333333337 B/s.
  assert.equal(
    formatSummary({ verb: 'sent', files: 2, bytes: 1000, seconds: 3, failures: [] }),
    '2 files sent, 0.977 KiB in 3 s (333 B/s), 0 failed\n',
  );
  assert.equal(
    formatSummary({
      verb: 'sent',
      files: 3,
      bytes: 0,
      seconds: 1,
      failures: [{ name: 'a', reason: 'nope' }],
      notStarted: 4,
      interrupted: 'interrupted by SIGINT',
    }),
    '3 files sent, 0 B in 1 s (0 B/s), 1 failed, 4 not started (interrupted by SIGINT)\nfailed: a: nope\n',
  );
});

test('Progress in plain mode writes one line per file and no ANSI escapes', () => {
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const progress = new Progress({ out, mode: 'plain', verb: 'sent', totalBytes: 3000, totalFiles: 2 });
  const a = progress.begin('a.txt', 1000);
  const b = progress.begin('dir/b.txt', 2000);
  a.update(500);
  a.update(1000);
  a.done();
  b.update(10);
  b.fail('peer refused the stream');
  progress.log('hello');
  progress.stop();
  progress.log('after stop is dropped');
  assert.match(text, /^sent a\.txt 0\.977 KiB in [\d.]+ s\nfailed dir\/b\.txt: peer refused the stream\nhello\n$/);
  assert.doesNotMatch(text, /\x1b/);
});

test('Progress in bars mode draws through cli-progress onto a TTY-like stream', () => {
  const out = Object.assign(new PassThrough(), {
    isTTY: true,
    columns: 100,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    clearScreenDown: () => true,
  });
  let text = '';
  out.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const progress = new Progress({ out: out, verb: 'sent', totalBytes: 100, totalFiles: 1 });
  assert.equal(progress.mode, 'bars');
  const file = progress.begin('photos/a.jpg', 100);
  file.update(50);
  file.done();
  progress.stop();
  assert.match(text, /sent photos\/a\.jpg 100 B in/);
  assert.match(text, /total .* 100% 100 B\/100 B/);
});

describe('join', () => {
  test(
    'a stream already reset when it is joined (ACCEPT and RESET in one read) still tears the socket down',
    { timeout: 10_000 },
    async (t) => {
      const server = net.createServer({ allowHalfOpen: true });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      t.after(() => server.close());
      const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
      const outside = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      outside.on('error', () => {});
      const inside = await accepted;
      const stream = new PassThrough();
      stream.destroy();
      await new Promise((resolve) => setImmediate(resolve)); // its 'close' has fired
      let joinedClosed = false;
      join(stream, inside, () => {
        joinedClosed = true;
      });
      await withTimeout(new Promise((resolve) => outside.once('close', resolve)), 5000, 'the far end to see the socket go');
      await withTimeout(
        new Promise<void>((resolve) => {
          const check = (): void => (joinedClosed ? resolve() : void setTimeout(check, 10));
          check();
        }),
        5000,
        'onClosed',
      );
    },
  );
});

describe('BurstReporter', () => {
  test('the first of a kind at once, its repeats as one line; kinds past MAX_KINDS only counted', () => {
    const lines: string[] = [];
    const bursts = new BurstReporter((line) => lines.push(line), 60_000);
    for (let i = 0; i < 5; i++) bursts.note('refused');
    for (let i = 0; i < 10_000; i++) bursts.note(`reset: peer reason ${i}`);
    assert.equal(lines.length, MAX_KINDS, 'one line per kind, up to the cap');
    bursts.flush();
    assert.deepEqual(lines.slice(MAX_KINDS), [
      'refused (4 more like it within 60 s)',
      `(${10_000 - (MAX_KINDS - 1)} more messages of other kinds within 60 s)`,
    ]);
    bursts.note('refused');
    assert.equal(lines.at(-1), 'refused', 'a new burst starts after a flush');
    bursts.flush();
  });
});
