#!/usr/bin/env node
// npm install hook. The package tarball (`npm pack`, scripts/prebuild.sh) carries, for
// linux-x64 glibc, the addon and the DuckDB extension under prebuilds/: when the addon loads
// here and the extension is there, nothing is built and no toolchain is needed. Otherwise (a
// git checkout, another platform, MILLPOND_BUILD_FROM_SOURCE=1) it builds native/ with
// cmake-js (node-api-headers: no Node headers download) and then the DuckDB extension
// against the installed @duckdb/node-api (scripts/build-duckdb-extension.sh).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const fromSource = process.env.MILLPOND_BUILD_FROM_SOURCE === '1';
const prebuilds = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

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

// The two go together: a checkout that builds its addon builds its extension too, even with a
// prebuilds/ directory left by `npm pack` (it may be older than the sources).
const prebuilt = !fromSource && prebuildLoads();
if (prebuilt) {
  console.log('millpond: using the prebuilt addon');
} else {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  execFileSync(process.execPath, [cmakeJs, 'compile', '--out', 'build'], { cwd: root, stdio: 'inherit' });
}

const libduckdb = join(root, 'node_modules', '@duckdb', 'node-bindings-linux-x64', 'libduckdb.so');
if (prebuilt && existsSync(join(prebuilds, 'millpond.duckdb_extension'))) {
  console.log('millpond: using the prebuilt DuckDB extension');
} else if (existsSync(libduckdb)) {
  execFileSync('bash', [join(root, 'scripts', 'build-duckdb-extension.sh')], { cwd: root, stdio: 'inherit' });
} else {
  console.log('millpond: @duckdb/node-api for linux-x64 is not installed; the DuckDB extension is not built');
}
