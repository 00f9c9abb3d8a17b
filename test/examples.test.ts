/**
 * Every script in examples/ (TypeScript) runs as a reader would run it
 * (`npx tsx examples/<name>.ts`), loading the library by its package name through the
 * package's self-reference, exits 0 on its own, and prints what it promises. cluster.ts is a
 * long-running server: test/cluster.test.ts drives it. test/types.test.ts type-checks them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

const DIR = path.join(__dirname, '..', 'examples');

const EXPECTED: Record<string, RegExp[]> = {
  'seed-server-push.ts': [
    /^client got a stream with meta \{"type":"update","file":"xy\.js"\}$/m,
    /^client got data: console\.log\('Hello'\);$/m,
  ],
  'seed-client-push.ts': [
    /^server got a stream with meta \{"type":"update","file":"xy\.js"\}$/m,
    /^server got data: console\.log\('Hello'\);$/m,
  ],
  'request-response.ts': [/^answer: HELLO$/m, /^answer: desserts$/m, /^answer: MANY STREAMS, ONE CONNECTION$/m],
  'pipe-file.ts': [
    /^sent 100%$/m,
    /^server stored source\.bin: 8388608 bytes/m,
    /^file verified by the receiver: 8388608 bytes, identical: true$/m,
  ],
  'tls.ts': [/^(TLS TLSv1\.[23], certificate verified: true|skipped: .*openssl.*)$/m, /^(echo over TLS: secret message|skipped: .*)$/m],
  'websocket.ts': [/^hello ada, from stream 1 over a WebSocket$/m, /^hello grace, from stream 3/m, /^hello linus, from stream 5/m],
  'port-forward.ts': [/^through the tunnel: hello from the target, you asked for \/c$/m, /^3 forwarded connections, 1 tunnel connection/m],
};

function runExample(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Killed after 20 s: an example that does not exit on its own fails here.
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(DIR, file)],
      { cwd: path.join(__dirname, '..'), timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
      },
    );
  });
}

describe('examples/', { concurrency: 2 }, () => {
  test('every example has an expectation here, is short, and loads the library by its package name', () => {
    const files = readdirSync(DIR).filter((file) => file.endsWith('.ts') && file !== 'cluster.ts');
    assert.deepEqual(files.sort(), Object.keys(EXPECTED).sort());
    for (const file of [...files, 'cluster.ts']) {
      const source = readFileSync(path.join(DIR, file), 'utf8');
      assert.ok(source.trimEnd().split('\n').length <= 65, `${file} stays under 65 lines`);
      assert.match(source, /from 'tcp-stream-muxer'/, `${file} uses the package name`);
    }
  });

  for (const [file, patterns] of Object.entries(EXPECTED)) {
    test(`npx tsx examples/${file} exits 0 and prints what it promises`, { timeout: 30_000 }, async () => {
      const { code, stdout, stderr } = await runExample(file);
      assert.equal(code, 0, `exit code (stderr: ${stderr})`);
      for (const pattern of patterns) assert.match(stdout, pattern);
      assert.equal(stderr, '', 'nothing on stderr');
    });
  }
});
