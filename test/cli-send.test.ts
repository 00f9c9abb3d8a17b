/**
 * tsmux serve + tsmux send as two real processes: a tree of files (empty, small,
 * multi-megabyte, nested, links) arrives byte for byte; the same tree again moves nothing;
 * changed files are refused without --overwrite while the others go on; a wrong token is
 * refused; TLS works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
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

test('send: a tree and a single file arrive with identical hashes, links as links; the same send again moves nothing; a changed file is refused without --overwrite', async (t) => {
  const work = await tempDir(t, 'send');
  const inbox = path.join(work, 'inbox');
  const expected = makeTree(work);
  writeFileSync(path.join(work, 'single.bin'), randomBytes(2 * MIB));
  expected.set('single.bin', hashFile(path.join(work, 'single.bin')));
  // Links travel as links (as rsync -a), whether they point at a file or a directory.
  symlinkSync('../single.bin', path.join(work, 'photos', 'link-to-file'));
  symlinkSync('..', path.join(work, 'photos', 'link-to-dir'));
  const { port } = await startServeCli(t, ['--dir', inbox]);

  const sent = await runCli(t, ['send', `127.0.0.1:${port}`, 'photos', 'single.bin'], { cwd: work });
  assert.equal(sent.code, 0, sent.stderr + sent.stdout);
  assert.deepEqual(listFiles(inbox), [...expected.keys(), 'photos/link-to-dir', 'photos/link-to-file'].sort());
  for (const [name, hash] of expected) assert.equal(hashFile(path.join(inbox, name)), hash, name);
  assert.equal(readlinkSync(path.join(inbox, 'photos/link-to-file')), '../single.bin');
  assert.equal(readlinkSync(path.join(inbox, 'photos/link-to-dir')), '..');
  // Not a TTY: plain lines, no ANSI escapes; the summary on stdout.
  assert.match(sent.stderr, /^sent photos\/2026\/deep\/er\/city\.jpg 5 MiB in /m);
  assert.match(sent.stderr, /^sent photos\/empty\.txt 0 B in /m);
  assert.doesNotMatch(sent.stderr, /\x1b/);
  assert.match(sent.stdout, /^7 files sent, 10\.3 MiB in .*, 0 unchanged, 0 failed$/m);

  // The same again: everything is there, unchanged; no file byte moves, exit 0.
  const again = await runCli(t, ['send', `127.0.0.1:${port}`, 'photos', 'single.bin', '--json'], { cwd: work });
  assert.equal(again.code, 0, again.stderr + again.stdout);
  const summary = JSON.parse(again.stdout) as { files: number; unchanged: number; wireBytes: number; failed: number };
  assert.deepEqual([summary.files, summary.unchanged, summary.wireBytes, summary.failed], [0, 7, 0, 0]);

  // A file changed here: without --overwrite the server keeps its own and says why.
  const beach = path.join(work, 'photos/2026/beach.jpg');
  writeFileSync(beach, randomBytes(1000));
  const changed = await runCli(t, ['send', `127.0.0.1:${port}`, 'photos'], { cwd: work });
  assert.equal(changed.code, 1);
  assert.match(changed.stdout, /^0 files sent, .*, 5 unchanged, 1 failed$/m);
  assert.match(
    changed.stdout,
    /^failed: photos\/2026\/beach\.jpg: .*already exists on the receiver and differs \(--overwrite replaces it\)$/m,
  );
  assert.equal(hashFile(path.join(inbox, 'photos/2026/beach.jpg')), expected.get('photos/2026/beach.jpg'));
  assert.deepEqual(
    listFiles(inbox),
    [...expected.keys(), 'photos/link-to-dir', 'photos/link-to-file'].sort(),
    'no partial files left behind',
  );
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
  assert.match(result.stdout, /^1 file sent, .*, 0 unchanged, 1 failed$/m);
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

test('send: a server that takes the files and never confirms them fails them after --status-timeout, exit 1', async (t) => {
  const work = await tempDir(t, 'unconfirmed');
  writeFileSync(path.join(work, 'a.bin'), randomBytes(100_000));
  // Not tsmux serve: a server that reads every byte and never answers.
  const { server, port } = await startServer();
  t.after(() => stopServer(server));
  let received = 0;
  server.on('connection', (con: MuxConnection) => {
    con.on('stream', (stream: MuxStream) => {
      stream.on('error', () => {});
      stream.on('data', (chunk: Buffer) => (received += chunk.length));
    });
  });
  const result = await runCli(t, ['send', `127.0.0.1:${port}`, 'a.bin', '--status-timeout', '0.5'], { cwd: work });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /^0 files sent, .*\(the receiver did not answer the list of files within 0\.5 s\)$/m);
  assert.ok(received > 0, 'the list of files reached the server');
});
