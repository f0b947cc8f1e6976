#!/usr/bin/env bash
# The Debian packages a checkout needs, installed when missing (as root, else through sudo);
# the README's quick start runs this first. Idempotent, quiet when nothing is missing.
#   cmake g++ make python3   build the addon and the DuckDB extension (npm install), and
#                            better-sqlite3 when its prebuilt binary cannot be downloaded
#   libibverbs-dev           <infiniband/verbs.h>: RDMA is always compiled in; libibverbs
#                            itself is dlopened at run time and is not needed to run
#   libgtest-dev             the C++ suites of `npm test`
#   libzmq5                  the C++ test programs (they run outside node, where the `zeromq`
#                            package's libzmq is not loaded; millpond itself never needs it)
#   iproute2 iptables        the test hosts of `npm test` (scripts/hosts.sh: namespaces)
#   fuse3 libfuse3-dev       the mount daemon millpond-fuse (native/fuse), built when present
#   rsync fio git            the mount's tests and benchmark
# `npm test` installs the rest it needs itself: PostgreSQL (scripts/pg-start.sh) and the
# soft-RoCE VM's packages (scripts/rxe-vm.sh). An installed package (npm pack) needs none.
set -euo pipefail
PACKAGES=(cmake g++ make python3 libibverbs-dev libgtest-dev libzmq5 iproute2 iptables fuse3 libfuse3-dev
  rsync fio git)
need=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "setup-debian: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -qq)
$SUDO "${APT[@]}" update
$SUDO "${APT[@]}" install -y --no-install-recommends "${need[@]}" > /tmp/setup-debian.log 2>&1 ||
  { tail -20 /tmp/setup-debian.log >&2; exit 1; }
