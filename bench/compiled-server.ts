/**
 * The bench server compiled to plain JavaScript, so that it runs as a user's server does:
 * `node` on JavaScript, without a TypeScript loader in its heap.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';

let compiledServerPath: string | null = null;

/**
 * server.ts and server-setup.ts compiled to plain JavaScript in a temporary directory (removed
 * when this process exits); returns the server's path. Under tsx the loader's ~2.5 MB of heap
 * put the server's old generation just above V8's 8 MB marking threshold, where V8 ran a
 * mark-compact after every mark-compact under bulk load once the first connection had gone
 * (BENCHMARKS.md, "What the slow mode is").
 */
export function compiledServer(): string {
  if (compiledServerPath !== null) return compiledServerPath;
  const dir = mkdtempSync(path.join(tmpdir(), 'tcp-stream-muxer-bench-'));
  const library = JSON.stringify(path.join(__dirname, '..', 'dist', 'cjs', 'index'));
  for (const name of ['server', 'server-setup']) {
    const source = readFileSync(path.join(__dirname, `${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    if (name === 'server' && !outputText.includes('"../dist/cjs/index"'))
      throw new Error('bench/server.ts no longer imports ../dist/cjs/index');
    writeFileSync(path.join(dir, `${name}.js`), outputText.replaceAll('"../dist/cjs/index"', library));
  }
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return (compiledServerPath = path.join(dir, 'server.js'));
}
