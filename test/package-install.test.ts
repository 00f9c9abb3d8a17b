/**
 * The package as users get it: `npm pack` the project once, check what the tarball holds,
 * install it into a fresh project in a temporary directory, and use it there through
 * `require`, through `import`, and from TypeScript (strict, module nodenext, skipLibCheck
 * off) type-checked against the installed declarations only.
 *
 * The pack runs with --ignore-scripts: `npm test`'s pretest has just built dist/, and a
 * rebuild here would rewrite files other tests are loading.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

let work: string;
let tarball: string;
let packedFiles: string[];
let consumer: string;

/** npm, without the settings `npm test` exported for this project leaking into the child. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_(package|lifecycle|config_(prefix|global|local_prefix))/i.test(key)) env[key] = value;
  }
  return env;
}

before(async () => {
  assert.ok(existsSync(path.join(ROOT, 'dist', 'cjs', 'index.js')), 'dist/ is built (npm test builds it in pretest)');
  work = mkdtempSync(path.join(os.tmpdir(), 'tsm-pack-'));
  const packDir = path.join(work, 'pack');
  mkdirSync(packDir);
  const { stdout } = await run(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], {
    cwd: ROOT,
    env: npmEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  const [info] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  tarball = path.join(packDir, info.filename);
  packedFiles = info.files.map((file) => file.path).sort();

  consumer = path.join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '0.0.0', private: true }, null, 2));
  // --prefer-offline: the core has no runtime dependency; any the CLI brings come from the
  // npm cache when they are there, from the registry otherwise.
  await run(NPM, ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd: consumer,
    env: npmEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs a script inside the consumer project; resolves with its stdout. */
async function runInConsumer(file: string, source: string): Promise<string> {
  writeFileSync(path.join(consumer, file), source);
  const { stdout } = await run(process.execPath, [file], { cwd: consumer, timeout: 15_000 });
  return stdout;
}

// One server, one client, one stream: the client sends, the server answers in upper case.
const ROUND_TRIP = `
const server = new MuxServer(0, { host: '127.0.0.1' }, () => {
  server.on('connection', (con) => {
    con.on('stream', (stream) => {
      const parts = [];
      stream.on('data', (chunk) => parts.push(chunk));
      stream.on('end', () => stream.end(Buffer.concat(parts).toString().toUpperCase()));
    });
  });
  const client = new MuxClient(server.address().port, '127.0.0.1', async () => {
    const stream = await client.StreamPool.createStream({ kind: 'shout' });
    stream.end('hello from ' + KIND);
    let reply = '';
    for await (const chunk of stream) reply += chunk;
    console.log(reply, new MuxError('ERR_PROTOCOL', 'x') instanceof Error);
    client.close();
    server.close();
  });
});
`;

describe('the packed tarball', () => {
  test('holds the build, its declarations, the docs, LICENSE, CHANGELOG and package.json', () => {
    for (const file of [
      'package.json',
      'README.md',
      'PROTOCOL.md',
      'LICENSE',
      'CHANGELOG.md',
      'dist/cjs/index.js',
      'dist/cjs/index.d.ts',
      'dist/esm/index.mjs',
      'dist/esm/index.d.mts',
    ]) {
      assert.ok(packedFiles.includes(file), `the tarball contains ${file}`);
    }
  });

  test('holds every file package.json points to: main, types, exports targets and bin', () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    const targets: string[] = [];
    const walk = (value: unknown): void => {
      if (typeof value === 'string') targets.push(value);
      else if (value && typeof value === 'object') Object.values(value).forEach(walk);
    };
    walk([manifest.main, manifest.types, manifest.exports, manifest.bin]);
    assert.ok(targets.length >= 6, targets.join(', '));
    for (const target of targets) {
      const file = path.posix.normalize(target).replace(/^\.\//, '');
      assert.ok(packedFiles.includes(file), `the tarball contains ${target}`);
    }
  });

  test('holds no tests, sources, benchmarks, examples, source maps or build info', () => {
    const unwanted = packedFiles.filter(
      (file) =>
        /^(test|src|bench|examples|scripts|\.ci)\//.test(file) ||
        (/\.[cm]?ts$/.test(file) && !/\.d\.[cm]?ts$/.test(file)) ||
        file.endsWith('.map') ||
        file.endsWith('.tsbuildinfo') ||
        file.endsWith('.tgz'),
    );
    assert.deepEqual(unwanted, []);
    // Only the build (and a CLI launcher, should there be one), the docs and the manifest.
    assert.ok(
      packedFiles.every((file) => /^(dist\/|bin\/|[A-Z]+\.md$|LICENSE$|package\.json$)/.test(file)),
      packedFiles.join('\n'),
    );
  });

  test('installs into a fresh project with nothing but the package itself from us', () => {
    const installed = path.join(consumer, 'node_modules', 'tcp-stream-muxer');
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as { name: string; engines: { node: string } };
    assert.equal(manifest.name, 'tcp-stream-muxer');
    assert.equal(manifest.engines.node, '>=20');
    assert.ok(!existsSync(path.join(installed, 'src')), 'no sources installed');
  });
});

describe('using the installed package', () => {
  test("require('tcp-stream-muxer') works from a CommonJS script: server, client and a round trip", { timeout: 20_000 }, async () => {
    const out = await runInConsumer(
      'round-trip.cjs',
      `const { MuxServer, MuxClient, MuxError } = require('tcp-stream-muxer');\nconst KIND = 'require';\n${ROUND_TRIP}`,
    );
    assert.equal(out.trim(), 'HELLO FROM REQUIRE true');
  });

  test("import from 'tcp-stream-muxer' works from an ES module, and default and named exports agree", { timeout: 20_000 }, async () => {
    const out = await runInConsumer(
      'round-trip.mjs',
      `import muxer, { MuxServer, MuxClient, MuxError } from 'tcp-stream-muxer';\n` +
        `import { createRequire } from 'node:module';\n` +
        `const KIND = 'import';\n` +
        `import * as namespace from 'tcp-stream-muxer';\n` +
        `if (muxer.MuxServer !== MuxServer) throw new Error('default and named exports differ');\n` +
        `const named = Object.keys(namespace).filter((k) => k !== 'default').sort().join();\n` +
        `if (named !== Object.keys(muxer).sort().join()) throw new Error('named exports ' + named + ' miss some of ' + Object.keys(muxer));\n` +
        `if (createRequire(import.meta.url)('tcp-stream-muxer').MuxError !== MuxError) throw new Error('two copies of MuxError');\n` +
        ROUND_TRIP,
    );
    assert.equal(out.trim(), 'HELLO FROM IMPORT true');
  });

  test(
    'a strict TypeScript consumer type-checks against the installed declarations, as ESM and as CommonJS',
    { timeout: 30_000 },
    async () => {
      // What a user writes; every use must type without `any` leaking in.
      const body = `
// The newcomer's example, with no annotation: every parameter is typed by the declarations.
const echo = new MuxServer(0);
echo.on('connection', (con) => {
  con.on('stream', (stream) => { stream.pipe(stream); });
});
echo.on('clientError', (err, socket) => socket.destroy(err));
// @ts-expect-error a known event with a wrong listener
echo.on('connection', (con: string) => con);
const server = new MuxServer(0, { host: '127.0.0.1', maxStreams: 10, acceptStream: (meta: JsonValue) => meta !== null });
server.on('connection', (con: MuxConnection) => {
  con.on('stream', (stream: MuxStream) => stream.pipe(stream));
});
const client = new MuxClient({ port: 1, host: '127.0.0.1', tls: { rejectUnauthorized: true } });
export async function use(): Promise<number> {
  const stream: MuxStream = await client.StreamPool.createStream({ a: [1, 'b', null] });
  const figures: StreamStats = stream.stats();
  const totals: ConnectionStats = client.stats();
  const limits: SessionLimits = DEFAULTS;
  const code: MuxErrorCode = new MuxError('ERR_STREAM_RESET', 'x').code;
  const options: ConnectionOptions = { role: 'client' };
  const con = new MuxConnection(stream, options);
  void code;
  const sent: { size: number; sha256: string } = await util.sendFile('f', stream);
  return figures.sendWindow + totals.bytesIn + limits.maxWindow + sent.size + con.stats().framesOut;
}
// @ts-expect-error meta must be JSON
void client.StreamPool.createStream({ f: () => 1 });
// @ts-expect-error unknown option
new MuxServer(0, { noSuchOption: true });
`;
      const imports = 'MuxServer, MuxClient, MuxConnection, MuxError, DEFAULTS, util';
      const types = 'MuxStream, JsonValue, StreamStats, ConnectionStats, SessionLimits, MuxErrorCode, ConnectionOptions';
      // The same source as an ES module (.mts: resolved through the `import` condition) and as
      // CommonJS (.cts: compiled to require(), resolved through the `require` condition).
      const header = `import { ${imports}, type ${types.split(', ').join(', type ')} } from 'tcp-stream-muxer';\n`;
      writeFileSync(path.join(consumer, 'consumer.mts'), header + body);
      writeFileSync(
        path.join(consumer, 'consumer.cts'),
        `${header}import muxer = require('tcp-stream-muxer');\nvoid muxer.MuxServer;\n${body}`,
      );
      writeFileSync(
        path.join(consumer, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            noEmit: true,
            skipLibCheck: false,
            noImplicitAny: true,
            // The consumer has no @types/node of its own; lend it ours.
            typeRoots: [path.join(ROOT, 'node_modules', '@types')],
            types: ['node'],
          },
          files: ['consumer.mts', 'consumer.cts'],
        }),
      );
      try {
        await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: consumer, timeout: 25_000 });
      } catch (err) {
        const { stdout, stderr } = err as { stdout?: string; stderr?: string };
        assert.fail(`tsc found errors in the consumer:\n${stdout ?? ''}${stderr ?? ''}`);
      }
    },
  );

  test('the public declarations use no `any`', () => {
    const installed = path.join(consumer, 'node_modules', 'tcp-stream-muxer');
    const seen = new Set<string>();
    const offenders: string[] = [];
    // Every declaration file reachable from the two entry points through relative imports.
    const queue = [path.join(installed, 'dist/cjs/index.d.ts'), path.join(installed, 'dist/esm/index.d.mts')];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const code = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '')
        .replace(/(['"`])(?:\\.|(?!\1).)*\1/g, '""');
      code.split('\n').forEach((line, index) => {
        if (/\bany\b/.test(line)) offenders.push(`${path.relative(installed, file)}:${index + 1}: ${line.trim()}`);
      });
      for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        const base = path.resolve(path.dirname(file), specifier).replace(/\.js$/, '');
        const next = [`${base}.d.ts`, path.join(base, 'index.d.ts')].find((candidate) => existsSync(candidate));
        if (next) queue.push(next);
      }
    }
    assert.ok(seen.size > 10, `followed the imports (${seen.size} files)`);
    assert.deepEqual(offenders, []);
  });
});
