// Types of the ESM entry (dist/esm/index.mjs). The runtime re-exports the CommonJS build, and
// so do these declarations: an ES-module consumer sees the same named exports, and the
// default export is the CommonJS module object, exactly as at run time.
export * from '../cjs/index.js';
import cjs from '../cjs/index.js';
export default cjs;
