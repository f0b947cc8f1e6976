#!/usr/bin/env bash
# `npm pack` runs this (prepack): puts the native parts the package tarball carries for this
# platform (linux-x64, glibc) under prebuilds/<platform>-<arch>/, so that an install needs no
# toolchain (scripts/install-native.mjs then builds nothing):
#   node.napi.glibc.node         the addon (node-gyp-build finds it by these tags)
#   millpond.duckdb_extension    the DuckDB extension, stamped for DuckDB 1.4.4
#   millpond-fuse                the FUSE daemon, when native/fuse/ builds one
# Builds first (cmake-js, scripts/build-duckdb-extension.sh; both incremental), so the tarball
# never carries a stale binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
platform=$(node -p 'process.platform + "-" + process.arch')
out=prebuilds/$platform
node node_modules/cmake-js/bin/cmake-js compile --out build >&2
bash scripts/build-duckdb-extension.sh >&2
rm -rf prebuilds
mkdir -p "$out"
cp build/Release/millpond.node "$out/node.napi.glibc.node"
cp build/duckdb-ext/millpond.duckdb_extension "$out/millpond.duckdb_extension"
for fuse in build/Release/millpond-fuse build/millpond-fuse; do
  if [ -f "$fuse" ]; then cp "$fuse" "$out/millpond-fuse"; break; fi
done
ls -l "$out" >&2
