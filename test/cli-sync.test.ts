/**
 * What users of scp -p and rsync -a expect of `tsmux send` and `tsmux get`, with serve and the
 * client as real processes: modes (a 600 file never arrives readable by others), mtimes, empty
 * directories and links kept; links that leave the tree refused; downloads from --export with
 * the same checks, also against a hostile server; names that could disguise themselves
 * escaped in every line; a receiving directory others can write to refused (StrictModes);
 * files the server confirmed before Ctrl-C counted as sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { MuxServer, type MuxConnection, type MuxStream } from '../src/index';
import { escapeName } from '../src/cli/escape';
import { strictModesProblem } from '../src/cli/strict-modes';
import { parseRemotePath, parseTarget } from '../src/cli/sync/session';
import { header, jsonMessage, Kind, fileEnd, fileStart, readMessages } from '../src/cli/sync/wire';
import { FaultProxy } from './helpers/fault-proxy';
import { waitFor } from './helpers/async';
import { hashFile, listFiles, runCli, spawnCli, startServeCli, tempDir } from './helpers/cli';

const MIB = 1024 * 1024;
const MTIME = new Date('2024-02-29T12:34:56.789Z');

/** A tree with every kind of entry: modes 600/755/644, an empty directory, links in and out. */
function makeTree(root: string): void {
  mkdirSync(path.join(root, 'tree/empty'), { recursive: true });
  mkdirSync(path.join(root, 'tree/sub'), { recursive: true });
  writeFileSync(path.join(root, 'tree/secret.key'), randomBytes(100));
  chmodSync(path.join(root, 'tree/secret.key'), 0o600);
  writeFileSync(path.join(root, 'tree/run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(path.join(root, 'tree/run.sh'), 0o755);
  writeFileSync(path.join(root, 'tree/sub/data.bin'), randomBytes(2 * MIB));
  chmodSync(path.join(root, 'tree/sub/data.bin'), 0o644);
  symlinkSync('../secret.key', path.join(root, 'tree/sub/link-in'));
  for (const file of ['tree/secret.key', 'tree/run.sh', 'tree/sub/data.bin']) utimesSync(path.join(root, file), MTIME, MTIME);
}

function assertSameTree(from: string, to: string): void {
  assert.deepEqual(listFiles(to), ['tree/run.sh', 'tree/secret.key', 'tree/sub/data.bin', 'tree/sub/link-in']);
  for (const [file, mode] of [
    ['tree/secret.key', 0o600],
    ['tree/run.sh', 0o755],
    ['tree/sub/data.bin', 0o644],
  ] as const) {
    const info = statSync(path.join(to, file));
    assert.equal(info.mode & 0o777, mode, `${file} keeps its mode`);
    assert.equal(Math.round(info.mtimeMs), MTIME.getTime(), `${file} keeps its mtime`);
    assert.equal(hashFile(path.join(to, file)), hashFile(path.join(from, file)), file);
  }
  assert.ok(statSync(path.join(to, 'tree/empty')).isDirectory(), 'the empty directory is there');
  assert.ok(lstatSync(path.join(to, 'tree/sub/link-in')).isSymbolicLink());
  assert.equal(readlinkSync(path.join(to, 'tree/sub/link-in')), '../secret.key');
}

test('send keeps modes, mtimes, empty directories and links; a link leaving the tree is refused', async (t) => {
  const work = await tempDir(t, 'meta');
  makeTree(work);
  symlinkSync('../../../etc/passwd', path.join(work, 'tree/link-out'));
  const inbox = path.join(work, 'inbox');
  const { port, proc } = await startServeCli(t, ['--dir', inbox]);
  const sent = await runCli(t, ['send', `127.0.0.1:${port}`, 'tree'], { cwd: work });
  assert.equal(sent.code, 1, 'one entry failed');
  assert.match(sent.stdout, /^failed: tree\/link-out: the link's target \.\.\/\.\.\/\.\.\/etc\/passwd leaves the receiving directory$/m);
  assertSameTree(work, inbox);
  assert.equal(existsSync(path.join(inbox, 'tree/link-out')), false);
  await proc.waitFor(/refused tree\/link-out/);
});

test('get downloads from --export with modes, mtimes, directories and links; again, nothing moves', async (t) => {
  const work = await tempDir(t, 'get');
  makeTree(work);
  const { port } = await startServeCli(t, ['--dir', path.join(work, 'inbox'), '--export', work]);
  const local = path.join(work, 'downloads');
  const got = await runCli(t, ['get', `127.0.0.1:${port}:tree`, local], { cwd: work });
  assert.equal(got.code, 0, got.stdout + got.stderr);
  assert.match(got.stdout, /^3 files received, .*, 0 unchanged, 0 failed$/m);
  assertSameTree(work, local);
  const again = await runCli(t, ['get', `127.0.0.1:${port}:tree`, local, '--json'], { cwd: work });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const summary = JSON.parse(again.stdout) as { files: number; unchanged: number; wireBytes: number };
  assert.deepEqual([summary.files, summary.unchanged, summary.wireBytes], [0, 3, 0]);
  // A path outside --export, a missing one, and a server without --export.
  const outside = await runCli(t, ['get', `127.0.0.1:${port}:../etc`, local], { cwd: work });
  assert.equal(outside.code, 1);
  const missing = await runCli(t, ['get', `127.0.0.1:${port}:nope`, local], { cwd: work });
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /^failed: nope: the sender cannot send it: /m);
  const { port: closed } = await startServeCli(t, ['--dir', path.join(work, 'inbox2')]);
  const refused = await runCli(t, ['get', `127.0.0.1:${closed}:tree`, local], { cwd: work });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /does not export files/);
});

test('get from a hostile server: traversal, absolute names, links out and files through links are refused; nothing lands outside', async (t) => {
  const work = await tempDir(t, 'hostile-get');
  const local = path.join(work, 'downloads');
  // Not tsmux serve: a server whose sync sender lists whatever it likes, then sends data for it.
  const server = new MuxServer(0, { host: '127.0.0.1' });
  t.after(() => server.destroy());
  await new Promise((resolve) => server.once('listening', resolve));
  const evil = [
    { n: '../escaped.txt', t: 'f', s: 4, m: 0, p: 0o644 },
    { n: '/tmp/absolute.txt', t: 'f', s: 4, m: 0, p: 0o644 },
    { n: 'a/../../escaped2.txt', t: 'f', s: 4, m: 0, p: 0o644 },
    { n: 'up', t: 'l', l: '../..', m: 0, p: 0o777 },
    { n: 'up/through-link.txt', t: 'f', s: 4, m: 0, p: 0o644 },
    { n: 'abs', t: 'l', l: '/etc', m: 0, p: 0o777 },
    { n: 'ok.txt', t: 'f', s: 4, m: 0, p: 0o644 },
    { n: 'gpj\u202e.exe', t: 'f', s: 4, m: 0, p: 0o644 },
  ];
  server.on('connection', (con: MuxConnection) => {
    con.on('stream', (stream: MuxStream) => {
      stream.on('error', () => {});
      void (async () => {
        stream.write(jsonMessage(Kind.ENTRIES, evil));
        stream.write(header(Kind.ENTRIES_END, 0));
        for await (const message of readMessages(stream)) {
          if (message.kind !== Kind.PLAN) continue;
          // Data for every entry, asked for or not: the client must take only what it asked for.
          const plan = JSON.parse(message.payload.toString()) as { a: string }[];
          plan.forEach((decision, index) => {
            if (decision.a !== 'w') return;
            const body = Buffer.from('evil');
            stream.write(
              Buffer.concat([
                fileStart(index, 0),
                header(Kind.DATA, 4),
                body,
                fileEnd(index, createHash('sha256').update(body).digest(), false),
              ]),
            );
          });
          stream.write(Buffer.concat([header(Kind.FINISH, 1), Buffer.alloc(1)]));
          stream.end();
        }
      })().catch(() => stream.destroy());
    });
  });
  const got = await runCli(t, ['get', `127.0.0.1:${server.port}:x`, local], { cwd: work });
  assert.equal(got.code, 1, got.stdout + got.stderr);
  assert.deepEqual(listFiles(work).sort(), ['downloads/gpj\u202e.exe', 'downloads/ok.txt'], 'only the two plain names arrived');
  for (const name of ['../escaped.txt', '/tmp/absolute.txt', 'a/../../escaped2.txt', 'up', 'up/through-link.txt', 'abs']) {
    assert.match(got.stdout, new RegExp(`^failed: ${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `, 'm'), name);
  }
  assert.equal(existsSync('/tmp/absolute.txt'), false);
  assert.equal(existsSync(path.join(work, 'escaped.txt')), false);
  assert.doesNotMatch(got.stdout, /\u202e/, 'the override character is never printed raw');
});

test('names with bidirectional overrides and line separators are escaped in serve and send output', async (t) => {
  const work = await tempDir(t, 'bidi');
  const name = 'received \u202egpj.exe and\u2028more';
  writeFileSync(path.join(work, name), 'x');
  const { port, proc } = await startServeCli(t, ['--dir', path.join(work, 'inbox'), '--allow-shared-dir']);
  const sent = await runCli(t, ['send', `127.0.0.1:${port}`, name, '--progress', 'plain'], { cwd: work });
  assert.equal(sent.code, 0, sent.stderr);
  assert.ok(existsSync(path.join(work, 'inbox', name)), 'stored under its real name');
  const printed = escapeName(name);
  assert.equal(printed, 'received \\u{202e}gpj.exe and\\u{2028}more');
  assert.ok(sent.stderr.includes(`sent ${printed}`), sent.stderr);
  for (const output of [sent.stdout, sent.stderr, proc.stdout]) assert.doesNotMatch(output, /[\u202e\u2028]/);
});

test('serve refuses a receiving directory that other users can write to, unless --allow-shared-dir', async (t) => {
  const work = await tempDir(t, 'strict');
  const inbox = path.join(work, 'inbox');
  mkdirSync(path.join(inbox, 'deep'), { recursive: true });
  chmodSync(path.join(inbox, 'deep'), 0o777);
  assert.match((await strictModesProblem(inbox))!, /deep is writable by other users \(mode 777\)/);
  const refused = await runCli(t, ['serve', '--port', '0', '--dir', inbox]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing to receive into .*deep is writable by other users/);
  chmodSync(path.join(inbox, 'deep'), 0o755);
  chmodSync(inbox, 0o775);
  assert.match((await strictModesProblem(inbox))!, /inbox is writable by other users \(mode 775\)/);
  chmodSync(inbox, 0o755);
  assert.equal(await strictModesProblem(inbox), null);
  chmodSync(inbox, 0o777);
  const { port } = await startServeCli(t, ['--dir', inbox, '--allow-shared-dir']);
  assert.ok(port > 0);
});

test('Ctrl-C: files the server confirmed are counted as sent, and a second send skips them', async (t) => {
  const work = await tempDir(t, 'ctrl-c');
  mkdirSync(path.join(work, 'tree'));
  for (let i = 0; i < 20; i++) writeFileSync(path.join(work, 'tree', `a${String(i).padStart(2, '0')}.txt`), randomBytes(1000));
  writeFileSync(path.join(work, 'tree', 'zz-big.bin'), randomBytes(6 * MIB)); // sent last
  const inbox = path.join(work, 'inbox');
  const { port, proc: serve } = await startServeCli(t, ['--dir', inbox]);
  const proxy = await FaultProxy.start(port, { fault: { kind: 'stall', afterBytes: 3 * MIB, ms: 10_000 }, directions: ['up'] });
  t.after(() => proxy.close());
  const send = spawnCli(t, ['send', `127.0.0.1:${proxy.port}`, 'tree', '--progress', 'none'], { cwd: work });
  await waitFor(() => listFiles(inbox).filter((file) => file.endsWith('.txt')).length === 20, 10_000, 'the small files stored');
  send.child.kill('SIGINT');
  const exit = await send.exited();
  assert.equal(exit.code, 130);
  assert.match(send.stdout, /^20 files sent, .*, 0 failed.*\(interrupted by SIGINT\)$/m);
  const port2 = /listening on [^:]+:(\d+)/.exec(serve.stdout)![1];
  const again = await runCli(t, ['send', `127.0.0.1:${port2}`, 'tree', '--json'], { cwd: work });
  assert.equal(again.code, 0, again.stdout);
  const summary = JSON.parse(again.stdout) as { files: number; unchanged: number };
  assert.deepEqual([summary.files, summary.unchanged], [1, 20]);
});

test('a partial file of another version of a file is removed when the file is sent; one of this version resumes', async (t) => {
  const work = await tempDir(t, 'stale');
  writeFileSync(path.join(work, 'data.bin'), randomBytes(3 * MIB));
  const info = statSync(path.join(work, 'data.bin'));
  const inbox = path.join(work, 'inbox');
  mkdirSync(inbox);
  const stale = path.join(inbox, `.data.bin.tsmux-${2 * MIB}-12345.part`);
  writeFileSync(stale, randomBytes(2 * MIB));
  // A kept prefix of this very version (the first 2 MiB, as an interrupted run leaves it).
  const current = path.join(inbox, `.data.bin.tsmux-${info.size}-${Math.round(info.mtimeMs)}.part`);
  writeFileSync(current, readFileSync(path.join(work, 'data.bin')).subarray(0, 2 * MIB));
  const { port } = await startServeCli(t, ['--dir', inbox]);
  const sent = await runCli(t, ['send', `127.0.0.1:${port}`, 'data.bin', '--json'], { cwd: work });
  assert.equal(sent.code, 0, sent.stdout + sent.stderr);
  assert.equal((JSON.parse(sent.stdout) as { wireBytes: number }).wireBytes, 1 * MIB, 'only the rest after the kept prefix');
  assert.equal(hashFile(path.join(inbox, 'data.bin')), hashFile(path.join(work, 'data.bin')));
  assert.deepEqual(listFiles(inbox), ['data.bin'], 'both partial files are gone');
});

test('2,000 files: no warning on stderr, and the summary prints rates with 3 significant digits', { timeout: 60_000 }, async (t) => {
  const work = await tempDir(t, 'many');
  mkdirSync(path.join(work, 'many'));
  for (let i = 0; i < 2000; i++) writeFileSync(path.join(work, 'many', `f${i}`), randomBytes(1 + (i % 2000)));
  const { port } = await startServeCli(t, ['--dir', path.join(work, 'inbox')]);
  const sent = await runCli(t, ['send', `127.0.0.1:${port}`, 'many', '--progress', 'none'], { cwd: work, ms: 50_000 });
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(sent.stderr, '', 'nothing on stderr: no MaxListenersExceededWarning');
  const rate = /\(([\d.]+) [KMG]?i?B\/s\)/.exec(sent.stdout);
  assert.ok(rate, sent.stdout);
  assert.ok(rate[1].replace('.', '').replace(/^0+/, '').length <= 3, `3 significant digits: ${rate[1]}`);
  assert.equal(listFiles(path.join(work, 'inbox')).length, 2000);
});

test('targets and remote paths parse with the default port, IPv6 brackets and explicit ports', () => {
  assert.deepEqual(parseTarget('example.org'), { host: 'example.org', port: 12345 });
  assert.deepEqual(parseTarget('example.org:99'), { host: 'example.org', port: 99 });
  assert.deepEqual(parseTarget('[::1]'), { host: '::1', port: 12345 });
  assert.deepEqual(parseTarget('[::1]:7'), { host: '::1', port: 7 });
  assert.throws(() => parseTarget('a:b:c'), /expected HOST\[:PORT\]/);
  assert.deepEqual(parseRemotePath('host:photos/a.jpg'), { target: { host: 'host', port: 12345 }, path: 'photos/a.jpg' });
  assert.deepEqual(parseRemotePath('host:4000:photos'), { target: { host: 'host', port: 4000 }, path: 'photos' });
  assert.deepEqual(parseRemotePath('[::1]:4000:.'), { target: { host: '::1', port: 4000 }, path: '.' });
  assert.deepEqual(parseRemotePath('[::1]:x'), { target: { host: '::1', port: 12345 }, path: 'x' });
  assert.throws(() => parseRemotePath('nocolon'), /expected HOST:PATH/);
});

test('escapeName shows control, format and separator characters as escapes and leaves the rest', () => {
  assert.equal(escapeName('plain/name.txt'), 'plain/name.txt');
  assert.equal(escapeName('ünïcödé 名前'), 'ünïcödé 名前');
  assert.equal(escapeName('a\u202eb\u2066c\u200fd\u2029e\u0007f'), 'a\\u{202e}b\\u{2066}c\\u{200f}d\\u{2029}e\\u{7}f');
  assert.equal(escapeName('back\\slash'), 'back\\\\slash');
});

test('get from a server that sends more than a file announced: the run stops, nothing is stored, nothing is buffered past the size', async (t) => {
  const work = await tempDir(t, 'overlong');
  const local = path.join(work, 'downloads');
  const server = new MuxServer(0, { host: '127.0.0.1' });
  t.after(() => server.destroy());
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (con: MuxConnection) => {
    con.on('stream', (stream: MuxStream) => {
      stream.on('error', () => {});
      void (async () => {
        stream.write(jsonMessage(Kind.ENTRIES, [{ n: 'claims-4.txt', t: 'f', s: 4, m: 0, p: 0o644 }]));
        stream.write(header(Kind.ENTRIES_END, 0));
        for await (const message of readMessages(stream)) {
          if (message.kind !== Kind.PLAN) continue;
          const body = randomBytes(1024 * 1024); // far more than the 4 bytes announced
          stream.write(Buffer.concat([fileStart(0, 0), header(Kind.DATA, body.length), body]));
        }
      })().catch(() => stream.destroy());
    });
  });
  const got = await runCli(t, ['get', `127.0.0.1:${server.port}:x`, local], { cwd: work });
  assert.equal(got.code, 1, got.stdout + got.stderr);
  assert.match(got.stdout, /protocol error: more data than the file announced/);
  assert.deepEqual(listFiles(local), []);
});
