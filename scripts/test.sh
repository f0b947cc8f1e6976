#!/usr/bin/env bash
# The project's test command (README: `npm test`). Runs, in order:
#   1. the C++ suites (googletest under ctest),
#   2. the TypeScript suites on this host (vitest),
#   3. the RDMA suites inside the soft-RoCE VM (scripts/rxe-vm.sh; MILLPOND_SKIP_RDMA=1 skips),
# and ends with one line "N passed, N failed" summing all three. Exit status 0 only if all passed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p build
passed=0
failed=0
count() { passed=$((passed + $1)); failed=$((failed + $2)); }

echo "== native (ctest)"
if cmake -S . -B build/native-tests -DMILLPOND_TESTS=ON -DCMAKE_BUILD_TYPE=Release > build/native-configure.log 2>&1 &&
   cmake --build build/native-tests -j2 > build/native-build.log 2>&1; then
  ctest --test-dir build/native-tests --output-on-failure -j2 2>&1 | tee build/ctest.log
  # "100% tests passed, 0 tests failed out of 57"
  summary=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' build/ctest.log | tail -1)
  if [ -n "$summary" ]; then
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<< "$summary")
    bad=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<< "$summary")
    count $((total - bad)) "$bad"
  else
    count 0 1
  fi
else
  cat build/native-configure.log build/native-build.log | tail -40
  echo "native test build failed"
  count 0 1
fi

echo "== typescript (vitest)"
npx vitest run --reporter=default --reporter=json --outputFile=build/vitest.json
if [ -f build/vitest.json ]; then
  read -r ok bad < <(node -e 'const r=require("./build/vitest.json"); console.log(r.numPassedTests, r.numFailedTests + (r.numTotalTestSuites && r.success === false && r.numFailedTests === 0 ? 1 : 0))')
  count "$ok" "$bad"
else
  count 0 1
fi

if [ "${MILLPOND_SKIP_RDMA:-0}" != 1 ]; then
  echo "== rdma (soft-RoCE VM)"
  bash scripts/rxe-vm.sh 2>&1 | tee build/rdma.log
  rc=${PIPESTATUS[0]}
  # The VM script ends with "rdma: N passed, N failed" when the guest ran its suites.
  line=$(grep -E '^rdma: [0-9]+ passed, [0-9]+ failed' build/rdma.log | tail -1)
  if [ -n "$line" ]; then
    count "$(sed -E 's/^rdma: ([0-9]+) passed.*/\1/' <<< "$line")" "$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<< "$line")"
    [ "$rc" = 0 ] || [ "$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<< "$line")" != 0 ] || count 0 1
  elif [ "$rc" = 0 ]; then
    count 1 0
  else
    count 0 1
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
