/**
 * tsmux serve + tsmux send as two real processes: a tree of files (empty, small,
 * multi-megabyte, nested) arrives byte for byte; existing files are refused without
 * --overwrite while the other files go on; a wrong token is refused; TLS works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { hashFile, listFiles, runCli, startServeCli, tempDir } from './helpers/cli';
import { makeSelfSignedCert } from './helpers/certs';
import { startServer, stopServer } from './helpers/mux';
import type { MuxConnection, MuxStream } from '../src/index';

const MIB = 1024 * 1024;

/** A tree to send: `photos/` with nested dirs and sizes from 0 to several MiB. */
function makeTree(root: string): Map<string, string> {
  const files: [string, number][] = [
    ['photos/empty.txt', 0],
    ['photos/one-byte', 1],
    ['photos/small.txt', 1000],
    ['photos/2026/beach.jpg', 3 * MIB + 17],
    ['photos/2026/deep/er/city.jpg', 5 * MIB],
    ['photos/window-sized.bin', 256 * 1024],
  ];
  const hashes = new Map<string, string>();
  for (const [name, size] of files) {
    const file = path.join(root, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, randomBytes(size));
    hashes.set(name, hashFile(file));
  }
  return hashes;
}

test('send: a directory tree and a single file over one connection arrive with identical hashes; a second send is refused per file', async (t) => {
  const work = await tempDir(t, 'send');
  const inbox = path.join(work, 'inbox');
  const expected = makeTree(work);
  writeFileSync(path.join(work, 'single.bin'), randomBytes(2 * MIB));
  expected.set('single.bin', hashFile(path.join(work, 'single.bin')));
  // A link to a file is sent as that file; a link to a directory is skipped (it could loop).
  symlinkSync('../single.bin', path.join(work, 'photos', 'link-to-file'));
  symlinkSync('..', path.join(work, 'photos', 'link-to-dir'));
  expected.set('photos/link-to-file', expected.get('single.bin')!);
  const { port } = await startServeCli(t, ['--dir', inbox]);

  const sent = await runCli(t, ['send', `127.0.0.1:${port}`, 'photos', 'single.bin', '--concurrency', '3'], { cwd: work });
  assert.equal(sent.code, 0, sent.stderr);
  assert.deepEqual(listFiles(inbox), [...expected.keys()].sort());
  for (const [name, hash] of expected) assert.equal(hashFile(path.join(inbox, name)), hash, name);
  // Not a TTY: plain lines, no ANSI escapes; the summary on stdout.
  assert.match(sent.stderr, /^sent photos\/2026\/deep\/er\/city\.jpg 5\.0 MiB in /m);
  assert.match(sent.stderr, /^sent photos\/empty\.txt 0 B in /m);
  assert.doesNotMatch(sent.stderr, /\x1b/);
  assert.match(sent.stdout, /^8 files sent, 12 MiB in .*, 0 failed$/m);
  assert.match(sent.stderr, /^tsmux send: skipping photos\/link-to-dir: symbolic link to a directory$/m);

  // The same again: every file exists now, each is refused with the reason, nothing changes.
  const beach = path.join(work, 'photos/2026/beach.jpg');
  writeFileSync(beach, randomBytes(1000)); // different content: it must not replace the stored one
  const again = await runCli(t, ['send', `127.0.0.1:${port}`, 'photos'], { cwd: work });
  assert.equal(again.code, 1);
  assert.match(again.stdout, /^0 files sent, .*, 7 failed$/m);
  assert.match(again.stdout, /^failed: photos\/2026\/beach\.jpg: .*already exists on the receiver \[ERR_STREAM_REFUSED\]$/m);
  assert.equal(hashFile(path.join(inbox, 'photos/2026/beach.jpg')), expected.get('photos/2026/beach.jpg'));
  assert.deepEqual(listFiles(inbox), [...expected.keys()].sort(), 'no temporary files left behind');
});

test('send: with --overwrite the server replaces files; a missing local file fails only itself', async (t) => {
  const work = await tempDir(t, 'overwrite');
  const inbox = path.join(work, 'inbox');
  mkdirSync(inbox);
  writeFileSync(path.join(inbox, 'a.txt'), 'old');
  writeFileSync(path.join(work, 'a.txt'), 'new content');
  const { port } = await startServeCli(t, ['--dir', inbox, '--overwrite']);
  const result = await runCli(t, ['send', `127.0.0.1:${port}`, 'a.txt', 'does-not-exist'], { cwd: work });
  assert.equal(result.code, 1);
  assert.equal(readFileSync(path.join(inbox, 'a.txt'), 'utf8'), 'new content');
  assert.match(result.stdout, /^1 file sent, .*, 1 failed$/m);
  assert.match(result.stdout, /^failed: does-not-exist: /m);
});

test('send: a wrong or missing token is refused with ERR_AUTH_FAILED and nothing is stored', async (t) => {
  const work = await tempDir(t, 'token');
  const inbox = path.join(work, 'inbox');
  writeFileSync(path.join(work, 'secret.txt'), 'x');
  const { port, proc } = await startServeCli(t, ['--dir', inbox, '--token', 'correct horse']);
  for (const token of [['--token', 'wrong'], []]) {
    const result = await runCli(t, ['send', `127.0.0.1:${port}`, 'secret.txt', ...token], { cwd: work, env: { TSMUX_TOKEN: '' } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /authentication failed.*ERR_AUTH_FAILED/);
  }
  assert.deepEqual(listFiles(inbox), []);
  await proc.waitFor(/rejected client 127\.0\.0\.1: .*ERR_AUTH_FAILED/);
  const ok = await runCli(t, ['send', `127.0.0.1:${port}`, 'secret.txt', '--token', 'correct horse'], { cwd: work });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(listFiles(inbox), ['secret.txt']);
});

test('send: cannot connect → a clear message and exit code 1', async (t) => {
  const work = await tempDir(t, 'noconnect');
  writeFileSync(path.join(work, 'a.txt'), 'x');
  const { port, proc } = await startServeCli(t, ['--dir', path.join(work, 'inbox')]);
  proc.child.kill('SIGKILL');
  await proc.exited();
  const result = await runCli(t, ['send', `127.0.0.1:${port}`, 'a.txt'], { cwd: work });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
});

test('send and serve over TLS (--tls-cert/--tls-key, --tls-ca)', { skip: !existsSync('/usr/bin/openssl') && 'no openssl' }, async (t) => {
  const work = await tempDir(t, 'tls');
  makeSelfSignedCert(work, 'tls'); // tls.key, tls.crt
  writeFileSync(path.join(work, 'over-tls.bin'), randomBytes(100_000));
  const inbox = path.join(work, 'inbox');
  const { port } = await startServeCli(t, ['--dir', inbox, '--tls-cert', 'tls.crt', '--tls-key', 'tls.key'], { cwd: work });
  const ok = await runCli(t, ['send', `127.0.0.1:${port}`, 'over-tls.bin', '--tls-ca', 'tls.crt'], { cwd: work });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(hashFile(path.join(inbox, 'over-tls.bin')), hashFile(path.join(work, 'over-tls.bin')));
  // Plain TCP to a TLS server fails cleanly.
  const plain = await runCli(t, ['send', `127.0.0.1:${port}`, 'over-tls.bin'], { cwd: work });
  assert.equal(plain.code, 1);
});

test('send: a server that takes a file and never confirms it fails that file after --status-timeout, exit 1', async (t) => {
  const work = await tempDir(t, 'unconfirmed');
  writeFileSync(path.join(work, 'a.bin'), randomBytes(100_000));
  // Not tsmux serve: a server that reads every byte and never sends the status line.
  const { server, port } = await startServer();
  t.after(() => stopServer(server));
  let received = 0;
  let ended = false;
  server.on('connection', (con: MuxConnection) => {
    con.on('stream', (stream: MuxStream) => {
      stream.on('error', () => {});
      stream.on('data', (chunk: Buffer) => (received += chunk.length));
      stream.on('end', () => (ended = true));
    });
  });
  const result = await runCli(t, ['send', `127.0.0.1:${port}`, 'a.bin', '--status-timeout', '0.5'], { cwd: work });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /^0 files sent, .*, 1 failed$/m);
  assert.match(
    result.stdout,
    /^failed: a\.bin: receiver sent no status within 0\.5 s of the last byte; it may or may not have stored the file \[ERR_STATUS_TIMEOUT\]$/m,
  );
  assert.equal(received, 13 + 100_000 + 32, 'the whole transfer reached the server');
  assert.equal(ended, true);
});
