#!/usr/bin/env node
// npm install hook: use a prebuilt addon from prebuilds/ when one loads on this machine,
// else build native/ with cmake-js (which uses node-api-headers: no Node headers download);
// then build the DuckDB extension (millpond://) against the installed @duckdb/node-api.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function prebuildLoads() {
  try {
    const path = require('node-gyp-build').resolve(root);
    if (!path.includes(`${join('prebuilds', '')}`)) return false;
    require(path);
    return true;
  } catch {
    return false;
  }
}

if (process.env.MILLPOND_BUILD_FROM_SOURCE !== '1' && prebuildLoads()) {
  console.log('millpond: using the prebuilt addon');
} else {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  execFileSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' });
}

const libduckdb = join(root, 'node_modules', '@duckdb', 'node-bindings-linux-x64', 'libduckdb.so');
if (existsSync(libduckdb)) {
  execFileSync('bash', [join(root, 'scripts', 'build-duckdb-extension.sh')], { cwd: root, stdio: 'inherit' });
} else {
  console.log('millpond: @duckdb/node-api for linux-x64 is not installed; the DuckDB extension is not built');
}
