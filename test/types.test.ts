/**
 * Type tests: code as users write it, compiled by `tsc --noEmit` under `strict` against the
 * built declarations, resolved by the package's name (its `exports` map) as an installed
 * package is:
 * - test/types/*.mts: typed events, metas, hooks and util, with `@ts-expect-error` on every
 *   line that must not compile;
 * - every JavaScript or TypeScript code block of README.md, so the README cannot drift from
 *   the types;
 * - the seed README's examples (test/types/seed-readme.md) and every script in examples/
 *   (written in TypeScript; their helpers are annotated, their listeners are not).
 * Each is compiled twice: as an ES module (.mts, `import`) and as CommonJS (.cts, where
 * `require('x')` becomes `import x = require('x')`). None annotates a listener's parameters.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
// Inside the package, so that 'tcp-stream-muxer' resolves to the package itself (self-reference).
const WORK = path.join(ROOT, '.tmp', `types-${process.pid}`);

/** A source to compile: where it came from, its text, and whether it is written as TypeScript. */
interface Source {
  origin: string;
  name: string;
  code: string;
}

/** The ```js / ```ts code blocks of a Markdown file. */
export function codeBlocks(markdown: string): { line: number; language: string; code: string }[] {
  const blocks: { line: number; language: string; code: string }[] = [];
  const fence = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (const match of markdown.matchAll(fence)) {
    const language = match[1];
    if (!/^(js|javascript|mjs|cjs|ts|typescript)$/.test(language)) continue;
    blocks.push({ line: markdown.slice(0, match.index).split('\n').length, language, code: match[2] });
  }
  return blocks;
}

/**
 * The same code as a module of the given kind: every `require('x')` becomes a binding
 * imported from 'x' (a namespace import in an ES module, `import … = require()` in CommonJS),
 * and relative imports of .mjs files point at their .cjs twins in CommonJS.
 */
export function asModule(code: string, kind: 'mts' | 'cts'): string {
  const bindings = new Map<string, string>();
  const body = code.replace(/\brequire\((['"])([^'"]+)\1\)/g, (_all, _quote: string, specifier: string) => {
    if (!bindings.has(specifier)) bindings.set(specifier, `required_${bindings.size}`);
    return bindings.get(specifier)!;
  });
  const header = [...bindings].map(([specifier, name]) =>
    kind === 'mts' ? `import * as ${name} from '${specifier}';` : `import ${name} = require('${specifier}');`,
  );
  const adjusted = kind === 'cts' ? body.replace(/(from\s+'\.\/[^']+)\.mjs'/g, "$1.cjs'") : body;
  // `export {}` makes a block without imports a module too, so blocks cannot clash.
  return `${header.join('\n')}\n${adjusted}\nexport {};\n`;
}

function sources(): Source[] {
  const all: Source[] = [];
  for (const file of readdirSync(path.join(ROOT, 'test', 'types')).filter((f) => f.endsWith('.mts'))) {
    all.push({
      origin: `test/types/${file}`,
      name: file.replace(/\.mts$/, ''),
      code: readFileSync(path.join(ROOT, 'test', 'types', file), 'utf8'),
    });
  }
  for (const [markdown, prefix] of [
    ['README.md', 'readme'],
    ['test/types/seed-readme.md', 'seed'],
  ] as const) {
    for (const block of codeBlocks(readFileSync(path.join(ROOT, markdown), 'utf8'))) {
      all.push({ origin: `${markdown}:${block.line}`, name: `${prefix}-line${block.line}`, code: block.code });
    }
  }
  for (const file of readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.ts'))) {
    all.push({
      origin: `examples/${file}`,
      name: `example-${file.replace(/\.ts$/, '')}`,
      code: readFileSync(path.join(ROOT, 'examples', file), 'utf8'),
    });
  }
  return all;
}

/** Writes every source both ways, plus a tsconfig; returns the generated file → origin map. */
function writeProject(dir: string, list: Source[]): Map<string, string> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const origins = new Map<string, string>();
  for (const source of list) {
    for (const kind of ['mts', 'cts'] as const) {
      const file = `${source.name}.${kind}`;
      writeFileSync(path.join(dir, file), asModule(source.code, kind));
      origins.set(file, `${source.origin} (as .${kind})`);
    }
  }
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        esModuleInterop: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      include: ['*.mts', '*.cts'],
    }),
  );
  return origins;
}

/** Runs tsc on a generated project; resolves with its diagnostics, each named by its origin. */
async function compile(dir: string, origins: Map<string, string>): Promise<string[]> {
  try {
    await run(process.execPath, [TSC, '-p', dir, '--pretty', 'false'], { cwd: dir, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return [];
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    const lines = `${stdout}${stderr}`.split('\n').filter((line) => line.trim() !== '');
    return lines.map((line) => {
      const file = /^([^(]+)\(/.exec(line)?.[1];
      return file && origins.has(file) ? `${origins.get(file)}: ${line}` : line;
    });
  }
}

let all: Source[];

before(() => {
  assert.ok(existsSync(path.join(ROOT, 'dist', 'cjs', 'index.d.ts')), 'dist/ is built (npm test builds it in pretest)');
  all = sources();
});

after(() => {
  rmSync(WORK, { recursive: true, force: true });
});

describe('type tests (strict TypeScript, as ES module and as CommonJS)', () => {
  test('they cover the README, the seed README, examples/ and test/types', () => {
    const count = (prefix: string): number => all.filter((source) => source.name.startsWith(prefix)).length;
    assert.ok(count('readme-') >= 4, `README code blocks: ${count('readme-')}`);
    assert.equal(count('seed-'), 6, 'the seed README has six code blocks');
    assert.ok(count('example-') >= 8, `examples: ${count('example-')}`);
    assert.ok(all.some((source) => source.name === 'events') && all.some((source) => source.name === 'meta'));
  });

  test('no listener parameter in the README, the seed or examples/ carries a type annotation', () => {
    // `.on('event', (a: T) =>` or `function (a: T)` would hide what the types infer.
    const annotated =
      /\.(on|once|prependListener|prependOnceListener|addListener)\(\s*['"][\w-]+['"],\s*(async\s+)?(function\s*)?\(\s*\w+\s*:/;
    const offenders = all
      .filter((source) => !source.origin.startsWith('test/types/'))
      .filter((source) => annotated.test(source.code))
      .map((source) => source.origin);
    assert.deepEqual(offenders, []);
  });

  test('everything compiles, and every @ts-expect-error line fails as it should', { timeout: 180_000 }, async () => {
    const origins = writeProject(WORK, all);
    const diagnostics = await compile(WORK, origins);
    assert.equal(diagnostics.length, 0, diagnostics.join('\n'));
  });

  test('the harness catches a mistake: a listener typed wrongly fails to compile', { timeout: 120_000 }, async () => {
    const wrong: Source = {
      origin: 'a deliberate mistake',
      name: 'mistake',
      code: "const { MuxServer } = require('tcp-stream-muxer');\nnew MuxServer(0).on('connection', (con) => con.noSuchMethod());\n",
    };
    const dir = `${WORK}-mistake`;
    try {
      const diagnostics = await compile(dir, writeProject(dir, [wrong]));
      assert.equal(diagnostics.length, 2, diagnostics.join('\n'));
      for (const line of diagnostics)
        assert.match(line, /a deliberate mistake .*Property 'noSuchMethod' does not exist on type 'MuxConnection'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
