#!/usr/bin/env bash
# prebuildify calls this in place of node-gyp (PREBUILD_NODE_GYP): build the addon with
# cmake-js into build/Release, where prebuildify picks it up. node-gyp's arguments
# (rebuild --target=... --devdir=...) do not apply: N-API 8 needs no per-version headers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec node node_modules/cmake-js/bin/cmake-js compile --out build
