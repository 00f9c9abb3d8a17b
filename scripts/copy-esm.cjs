// Copies the hand-written ESM wrapper beside the CommonJS build, so that `import` and
// `require` share one implementation (and `instanceof` holds across them).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
fs.mkdirSync(path.join(root, 'dist/esm'), { recursive: true });
// The ESM declarations too, so that ES-module consumers get ES-module types.
fs.copyFileSync(path.join(root, 'src/esm/index.d.mts'), path.join(root, 'dist/esm/index.d.mts'));
fs.copyFileSync(path.join(root, 'src/esm/index.mjs'), path.join(root, 'dist/esm/index.mjs'));
// The tsmux command line is run directly (package.json "bin"): make it executable.
fs.chmodSync(path.join(root, 'dist/cjs/cli/main.js'), 0o755);
