// Copies the hand-written ESM wrapper and its declarations beside the CommonJS build, so that
// `import` and `require` share one implementation (and `instanceof` holds across them).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
fs.mkdirSync(path.join(root, 'dist/esm'), { recursive: true });
for (const file of ['index.mjs', 'index.d.mts']) {
  fs.copyFileSync(path.join(root, 'src/esm', file), path.join(root, 'dist/esm', file));
}
