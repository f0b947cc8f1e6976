#!/bin/bash
# rxe-vm-guest.sh - the guest half of scripts/rxe-vm.sh: brings up soft-RoCE and runs the
# RDMA suites. Runs as init's child inside the VM; writes one line per suite to
# $RXE_WORK/results.txt (PASS/FAIL/INFO ...) and DONE at the end.
# Env (from init): MILLPOND_REPO, RXE_WORK, RXE_RUN_TS (1: run test/rdma with vitest).
set -u
REPO=$MILLPOND_REPO
RESULTS=$RXE_WORK/results.txt
: >"$RESULTS"
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "[guest $(up)s] $*"; }
result() { echo "$*" >>"$RESULTS"; log "$*"; }
elapsed() { awk -v a="$1" -v b="$(up)" 'BEGIN{printf "%.1fs", b-a}'; }

log "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MiB"
ip link set lo up
t=$(up)
modprobe rdma_rxe || { result "FAIL modprobe rdma_rxe"; echo DONE >>"$RESULTS"; exit 1; }
ip link add rxe-dummy0 type dummy
ip link set rxe-dummy0 mtu 4200 up
ip addr add 10.11.0.1/24 dev rxe-dummy0
rdma link add rxe0 type rxe netdev rxe-dummy0
for _ in $(seq 50); do  # the IPv4 GID appears once the address is seen by rxe
  grep -qs '0000:0000:0000:0000:0000:ffff' /sys/class/infiniband/rxe0/ports/1/gids/* && break
  sleep 0.1
done
state=$(cat /sys/class/infiniband/rxe0/ports/1/state 2>/dev/null)
result "INFO rxe0 up in $(elapsed "$t"): $state"

if [ "${1:-}" = --shell ]; then
  log "interactive shell; exit to power off"
  /usr/bin/bash -i </dev/console >/dev/console 2>&1
fi

export MILLPOND_EXPECT_RDMA=1
# C++ suites: codecs and limits (also run on the host), then the transports on rxe0.
for t in rdma_wire_test rdma_blocks_test rdma_select_test rdma_transport_test; do
  bin=$MILLPOND_REPO/build/native-tests/$t
  [ -x "$bin" ] || { result "FAIL $t (not built)"; continue; }
  t0=$(up)
  if timeout 600 "$bin" --gtest_brief=1 >"$RXE_WORK/$t.log" 2>&1; then
    result "PASS $t ($(elapsed "$t0"); $(grep -h 'MB/s\|noticed' "$RXE_WORK/$t.log" | tr '\n' ';'))"
  else
    result "FAIL $t ($(elapsed "$t0")): $(grep -E 'Failure|FAILED|error' "$RXE_WORK/$t.log" | head -5 | tr '\n' ' ')"
    cat "$RXE_WORK/$t.log"
  fi
  # The transport suite skips itself without a device: skipped here, it proved nothing.
  [ $t = rdma_transport_test ] && grep -q 'SKIPPED' "$RXE_WORK/$t.log" && result "FAIL $t skipped inside the VM"
done

# TypeScript end to end: a storage server and a client over transport 'rdma' (test/rdma).
if [ "${RXE_RUN_TS:-0}" = 1 ]; then
  t0=$(up)
  cd "$REPO"
  if timeout 900 node node_modules/vitest/vitest.mjs run --config test/rdma/vitest.config.ts \
      --reporter=verbose >"$RXE_WORK/vitest-rdma.log" 2>&1; then
    result "PASS vitest test/rdma ($(elapsed "$t0")): $(grep -hE 'RDMA carried|Tests ' "$RXE_WORK/vitest-rdma.log" | tr '\n' ';')"
  else
    result "FAIL vitest test/rdma ($(elapsed "$t0"))"
  fi
  cat "$RXE_WORK/vitest-rdma.log"
fi
# Optional benchmark (RXE_BENCH on the host): informational, its figures are qemu TCG's.
if [ -f "$RXE_WORK/bench.args" ]; then
  t0=$(up)
  cd "$REPO"
  # shellcheck disable=SC2046 # the arguments are words on purpose
  if timeout 900 node --import tsx bench/main.ts $(cat "$RXE_WORK/bench.args") >"$RXE_WORK/bench.log" 2>&1; then
    result "INFO bench $(cat "$RXE_WORK/bench.args") ($(elapsed "$t0")) -> $RXE_WORK/bench.log"
  else
    result "FAIL bench $(cat "$RXE_WORK/bench.args") ($(elapsed "$t0"))"
  fi
  cat "$RXE_WORK/bench.log"
fi
result "INFO rxe0 counters: $(rdma statistic show link rxe0/1 2>/dev/null | grep -oE '(sent_pkts|rcvd_pkts|rcvd_rdma_err|retry_exceeded_err|send_err) [0-9]+' | tr '\n' ' ')"
echo DONE >>"$RESULTS"
log "guest done"
