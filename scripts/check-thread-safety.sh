#!/usr/bin/env bash
# Builds the native core (common, transport, client, storage) and the FUSE daemon with clang
# and -Wthread-safety -Werror=thread-safety (CMake option MILLPOND_THREAD_SAFETY): a member
# declared GUARDED_BY(mu_) touched without mu_ held fails the build. Needs clang++ (Debian:
# apt-get install clang). Prints "thread-safety: ok" or the compiler's errors and exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v clang++ > /dev/null || { echo "thread-safety: clang++ is not installed (apt-get install clang)"; exit 1; }
BUILD=build/thread-safety
mkdir -p "$BUILD"
LAUNCHER=()
command -v ccache > /dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if ! cmake -S . -B "$BUILD" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release -DMILLPOND_THREAD_SAFETY=ON \
     "${LAUNCHER[@]}" > "$BUILD/configure.log" 2>&1; then
  tail -20 "$BUILD/configure.log"; exit 1
fi
TARGETS=(millpond_storage millpond_client)
if grep -q '^millpond-fuse' <(cmake --build "$BUILD" --target help 2>/dev/null | sed 's/^\.\.\. //'); then TARGETS+=(millpond-fuse); fi
if ! cmake --build "$BUILD" --target "${TARGETS[@]}" -j2 > "$BUILD/build.log" 2>&1; then
  grep -E 'error|warning' "$BUILD/build.log" | head -40; exit 1
fi
echo "thread-safety: ok (${TARGETS[*]})"
