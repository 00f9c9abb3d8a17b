/**
 * Loading the built package the two ways users do. `require` is the CommonJS build; the
 * `import` must be a real ES-module import through the package's `exports` map, but tsx
 * rewrites `import()` into `require()` in this (CommonJS) package, so the call is made
 * from code tsx does not transform.
 */
import type * as Api from '../../src/index';

export type Package = typeof Api;

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const nativeImport = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<Record<string | symbol, unknown>>;

export function requirePackage(): Package {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the point is to load it through require
  return require('tcp-stream-muxer') as Package;
}

/** `await import('tcp-stream-muxer')`, as an ES module would run it. */
export async function importPackage(): Promise<Package & { default: Package; [Symbol.toStringTag]: string }> {
  return (await nativeImport('tcp-stream-muxer')) as unknown as Package & { default: Package; [Symbol.toStringTag]: string };
}

/** Both ways, for tests that run the same body through each. */
export const loaders: { name: string; load(): Promise<Package> }[] = [
  { name: "require('tcp-stream-muxer')", load: async () => requirePackage() },
  { name: "await import('tcp-stream-muxer')", load: importPackage },
];
