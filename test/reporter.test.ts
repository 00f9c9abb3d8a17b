/**
 * The reporter of `npm test` (test/reporters/dot-with-counts.mjs): a dot per test, every
 * failure in full, and the closing counts in TAP's form, on a small run of its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPORTER = path.join(__dirname, 'reporters', 'dot-with-counts.mjs');

test('prints a dot per test, the failure in full, and the closing counts; exits 1 on a failure', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsm-reporter-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sample.test.mjs');
  writeFileSync(
    file,
    [
      "import { test } from 'node:test';",
      "import assert from 'node:assert/strict';",
      "test('passes', () => {});",
      "test('fails', () => assert.equal('wanted', 'got something else'));",
      "test('is skipped', { skip: 'not here' }, () => {});",
    ].join('\n'),
  );
  // Without NODE_TEST_CONTEXT, which would make the child report to this runner instead.
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    execFile(process.execPath, ['--test', `--test-reporter=${REPORTER}`, file], { timeout: 20_000, env }, (err, out) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout: out }),
    );
  });
  assert.equal(code, 1, 'a failed test fails the run');
  assert.match(stdout, /^\.X\.$/m, 'one mark per test');
  assert.match(stdout, /✖ fails/, 'the failing test is named');
  assert.match(stdout, /got something else/, 'with its error in full');
  for (const line of ['# tests 3', '# pass 1', '# fail 1', '# skipped 1']) assert.match(stdout, new RegExp(`^${line}$`, 'm'));
  assert.doesNotMatch(stdout, /^ok \d/m, 'no TAP line per test');
  assert.ok(stdout.split('\n').length < 60, `short: ${stdout.split('\n').length} lines`);
});
