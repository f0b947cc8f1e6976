#!/usr/bin/env bash
# Builds build/duckdb-ext/millpond.duckdb_extension for @duckdb/node-api 1.4.4-r.4 exactly:
#   headers from the npm tarball duckdb@1.4.4 (`npm pack`; its install script, which downloads
#   a binary, never runs), libduckdb.so from @duckdb/node-bindings-linux-x64, and DuckDB's
#   534-byte metadata footer naming v1.4.4 (DuckDB refuses an extension of another version).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DUCKDB_VERSION=1.4.4
HEADERS=$PWD/build/duckdb-$DUCKDB_VERSION/include
LIB=$PWD/node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so
[ -f "$LIB" ] || { echo "build-duckdb-extension: $LIB missing (npm install first)" >&2; exit 1; }
if [ ! -f "$HEADERS/duckdb.hpp" ]; then
  work=$(mktemp -d)
  (cd "$work" && npm pack "duckdb@$DUCKDB_VERSION" --silent > /dev/null &&
    tar xzf "duckdb-$DUCKDB_VERSION.tgz" package/src/duckdb/src/include)
  mkdir -p "$(dirname "$HEADERS")"
  rm -rf "$HEADERS" && mv "$work/package/src/duckdb/src/include" "$HEADERS"
  rm -rf "$work"
fi
cmake -S . -B build/duckdb-ext -DCMAKE_BUILD_TYPE=Release \
  -DMILLPOND_DUCKDB_INCLUDE_DIR="$HEADERS" -DMILLPOND_DUCKDB_LIBRARY="$LIB" > build/duckdb-ext.log 2>&1 ||
  { tail -30 build/duckdb-ext.log >&2; exit 1; }
cmake --build build/duckdb-ext --target millpond_duckdb -j2 >> build/duckdb-ext.log 2>&1 ||
  { grep -E "error|Error" -A3 build/duckdb-ext.log | head -40 >&2; exit 1; }
# Stamp a fresh copy each time, so a rebuild with nothing to do never stamps twice.
cp build/duckdb-ext/millpond_duckdb_unstamped.so build/duckdb-ext/millpond.duckdb_extension.tmp
node scripts/append-duckdb-metadata.mjs build/duckdb-ext/millpond.duckdb_extension.tmp "v$DUCKDB_VERSION"
mv build/duckdb-ext/millpond.duckdb_extension.tmp build/duckdb-ext/millpond.duckdb_extension
