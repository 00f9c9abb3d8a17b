/**
 * safe-path: which peer-supplied names the receiver accepts (pure checks, examples and
 * properties) and where resolveTarget puts them (real directories, links inside and out).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { checkName, checkTarget, isInside, MAX_SEGMENT_BYTES, resolveTarget, UnsafePathError } from '../src/cli/safe-path';

test('checkName accepts plain relative POSIX paths', () => {
  for (const name of ['a', 'a.txt', 'photos/2026/a.jpg', '.hidden', 'a..b', '...', 'é/ü 文件.txt', 'x'.repeat(MAX_SEGMENT_BYTES)]) {
    assert.equal(checkName(name), null, name);
  }
});

test('checkName refuses traversal, absolute, empty, odd and over-long names', () => {
  const refused: unknown[] = [
    '',
    '..',
    '.',
    '../x',
    'a/../../x',
    'a/..',
    './x',
    'a/./x',
    '/etc/passwd',
    '//x',
    'a//b',
    'a/',
    '/',
    'a\\b',
    '..\\x',
    'C:\\x',
    'C:/x',
    'x\0y',
    'x\ny',
    'x\ry',
    '\x1b[31m',
    'x\x7f',
    'x\u009b31m', // C1 CSI: some terminals start an escape sequence on it
    '\u0085',
    'x'.repeat(MAX_SEGMENT_BYTES + 1),
    `${'a/'.repeat(600)}x`,
    'é'.repeat(101),
    null,
    undefined,
    42,
    ['a'],
    { name: 'a' },
  ];
  for (const name of refused) assert.notEqual(checkName(name), null, JSON.stringify(name));
});

const segmentChar = fc.constantFrom('a', 'b', '.', '-', '_', ' ', 'é', '/', '\\', '\0', '\n', ':');

test('property: an accepted name is normalized, relative, and joins to a path inside any root', () => {
  fc.assert(
    fc.property(
      fc.array(segmentChar, { maxLength: 40 }).map((chars) => chars.join('')),
      (name) => {
        if (checkName(name) !== null) return;
        assert.equal(path.posix.normalize(name), name);
        assert.ok(!path.posix.isAbsolute(name));
        assert.ok(!name.split('/').includes('..'));
        const root = '/srv/inbox';
        assert.ok(isInside(root, path.resolve(root, name)), name);
        assert.notEqual(path.resolve(root, name), root);
      },
    ),
    { numRuns: 2000 },
  );
});

test('property: any name with a ".." segment is refused', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('a', 'b.txt', '..', '.', 'c'), { minLength: 1, maxLength: 6 }), fc.nat(6), (segments, at) => {
      segments.splice(at % (segments.length + 1), 0, '..');
      assert.notEqual(checkName(segments.join('/')), null);
    }),
  );
});

test('isInside compares whole path segments', () => {
  assert.ok(isInside('/srv/in', '/srv/in'));
  assert.ok(isInside('/srv/in', '/srv/in/a'));
  assert.ok(!isInside('/srv/in', '/srv/inbox/a'));
  assert.ok(!isInside('/srv/in', '/srv'));
  assert.ok(isInside('/', '/anything'));
});

test('resolveTarget creates parents inside root, follows links only while they stay inside', async (t) => {
  const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'tsmux-safe-')));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const root = path.join(work, 'root');
  const outside = path.join(work, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  symlinkSync(outside, path.join(root, 'out'));
  symlinkSync('.', path.join(root, 'self'));
  writeFileSync(path.join(root, 'file'), 'x');

  assert.equal(await resolveTarget(root, 'a/b/c.txt', { overwrite: false }), path.join(root, 'a/b/c.txt'));
  assert.deepEqual(readdirSync(path.join(root, 'a')), ['b'], 'parents created');
  assert.equal(await resolveTarget(root, 'self/self/x', { overwrite: false }), path.join(root, 'x'));
  const refusals: [string, RegExp, boolean][] = [
    ['out/x', /outside/, false],
    ['out/new/x', /outside/, false],
    ['file', /already exists/, false],
    ['file/x', /not a directory/, false],
    ['a', /is a directory/, true],
    ['out', /symbolic link/, true],
    ['../x', /"\.\." segment/, true],
  ];
  for (const [name, reason, overwrite] of refusals) {
    await assert.rejects(resolveTarget(root, name, { overwrite }), (err: unknown) => {
      assert.ok(err instanceof UnsafePathError, `${name}: ${String(err)}`);
      assert.match(err.message, reason, name);
      return true;
    });
  }
  assert.equal(await resolveTarget(root, 'file', { overwrite: true }), path.join(root, 'file'));
  assert.deepEqual(readdirSync(outside), [], 'nothing created outside root');
});

test("checkTarget reaches resolveTarget's verdicts without creating anything", async (t) => {
  const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'tsmux-check-')));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const root = path.join(work, 'root');
  const outside = path.join(work, 'outside');
  mkdirSync(path.join(root, 'have'), { recursive: true });
  mkdirSync(outside);
  symlinkSync(outside, path.join(root, 'out'));
  writeFileSync(path.join(root, 'file'), 'x');
  writeFileSync(path.join(root, 'have', 'old.txt'), 'x');

  for (const name of ['new/deeper/x.txt', 'have/new/x.txt', 'have/x.txt', 'x.txt']) {
    assert.equal(await checkTarget(root, name, { overwrite: false }), path.join(root, name), name);
  }
  assert.deepEqual(readdirSync(root).sort(), ['file', 'have', 'out'], 'no directory created');
  assert.deepEqual(readdirSync(path.join(root, 'have')), ['old.txt'], 'no directory created');
  const refusals: [string, RegExp, boolean][] = [
    ['out/x', /outside/, false],
    ['out/new/x', /outside/, false],
    ['have/old.txt', /already exists/, false],
    ['file/new/x', /not a directory/, false],
    ['have', /is a directory/, true],
    ['out', /symbolic link/, true],
    ['new/../x', /"\.\." segment/, true],
  ];
  for (const [name, reason, overwrite] of refusals) {
    for (const judge of [checkTarget, resolveTarget]) {
      await assert.rejects(judge(root, name, { overwrite }), (err: unknown) => {
        assert.ok(err instanceof UnsafePathError, `${judge.name} ${name}: ${String(err)}`);
        assert.match(err.message, reason, `${judge.name} ${name}`);
        return true;
      });
    }
  }
  assert.deepEqual(readdirSync(root).sort(), ['file', 'have', 'out']);
  assert.deepEqual(readdirSync(outside), []);
});
