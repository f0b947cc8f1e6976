#!/bin/bash
# rxe-vm.sh - run millpond's RDMA test suite on soft-RoCE (rdma_rxe) inside a qemu VM.
#
# The CI hosts have neither RDMA hardware nor InfiniBand support in their kernel, so this
# boots Debian's stock kernel under qemu (TCG: KVM is unavailable there) with an initramfs of
# busybox + the 9p modules. The guest runs the host's own userspace: /usr, the repository,
# this script's work directory and node's prefix (when outside /usr) are shared over
# virtio-9p at the same paths, so the guest installs nothing and uses what the host built.
# Inside, rdma_rxe is bound to a dummy interface (one device serves client and server:
# two rxe devices in one namespace do not reach each other) and scripts/rxe-vm-guest.sh runs
# the C++ RDMA suites and the TypeScript end-to-end tests (test/rdma).
#
# Usage: scripts/rxe-vm.sh [--shell]        (npm run test:rdma)
# Env:   RXE_WORK (default /var/tmp/millpond-rxe: the kernel cache, shared by clones),
#        RXE_RUN_DIR (default <repo>/build/rxe-vm: this clone's initramfs, logs, results), RXE_SMP (2),
#        RXE_MEM_MB (3072), RXE_TIMEOUT_S (1200), RXE_SKIP_TS=1 (C++ suites only),
#        RXE_BENCH="dataplane --transport rdma --chunks 16 --seconds 3" (also run that bench).
# Exit status: 0 only when every RDMA test passed inside the guest.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${RXE_WORK:-/var/tmp/millpond-rxe}
SMP=${RXE_SMP:-2}
MEM_MB=${RXE_MEM_MB:-3072}
TIMEOUT_S=${RXE_TIMEOUT_S:-1200}
START=$(date +%s.%N)
say() { printf '[rxe-vm %6.1fs] %s\n' "$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
die() { say "error: $*" >&2; exit 1; }
# Under set -e a failing command ends the script; say which, rather than exiting 1 silently.
trap 'rc=$?; say "error: line $LINENO: \"$BASH_COMMAND\" exited $rc" >&2' ERR
RUN=${RXE_RUN_DIR:-$REPO/build/rxe-vm}
mkdir -p "$WORK" "$RUN"

# ---- 1. host packages (the guest gets them through the shared /usr)
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
need=()
for pkg in qemu-system-x86 busybox-static kmod cpio iproute2 libibverbs-dev ibverbs-providers \
           ibverbs-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 -qq update
  $SUDO apt-get -o DPkg::Lock::Timeout=600 -qq install -y --no-install-recommends "${need[@]}" >/dev/null
fi

# ---- 2. Debian's stock kernel and its modules, unpacked once into the work directory
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { $SUDO apt-get -qq update; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); }
KVER=${KPKG#linux-image-}
KROOT=$WORK/kernel-$KVER
if [ ! -f "$KROOT/boot/vmlinuz-$KVER" ]; then
  say "fetching $KPKG"
  rm -rf "$WORK/debs" "$KROOT.tmp" && mkdir -p "$WORK/debs" "$KROOT.tmp"
  (cd "$WORK/debs" && apt-get -o APT::Sandbox::User=root download "$KPKG" >/dev/null)
  dpkg-deb -x "$WORK"/debs/"$KPKG"_*.deb "$KROOT.tmp"
  depmod -b "$KROOT.tmp" "$KVER"
  mv "$KROOT.tmp" "$KROOT"
fi
say "kernel $KVER"

# ---- 3. build on the host what the guest runs
BUILD=$REPO/build/native-tests  # the same tree scripts/test.sh builds: per clone, built once
# The RDMA sources compile to a stub when <infiniband/verbs.h> is absent (rdma_config.h), and
# make does not notice a header that appeared later: drop RDMA objects older than the
# header's installation so they are rebuilt against it.
# A fresh clone has neither tree yet (npm test builds build/native-tests; npm install the
# addon): `find` over a missing directory fails, which set -e -o pipefail would turn into a
# silent exit, so only existing trees are searched and the build below creates the rest.
[ -f /usr/include/infiniband/verbs.h ] || die "libibverbs-dev is not installed (/usr/include/infiniband/verbs.h is missing)"
installed=$(stat -c %Z /usr/include/infiniband/verbs.h)
trees=()
for tree in "$REPO/build" "$BUILD"; do [ -d "$tree" ] && trees+=("$tree"); done
if [ ${#trees[@]} -gt 0 ]; then
  find "${trees[@]}" -path '*transport/rdma/*.o' | while read -r obj; do
    [ "$(stat -c %Y "$obj")" -ge "$installed" ] || rm -f "$obj"
  done
fi
[ -d "$BUILD" ] || say "build/native-tests is missing: building the C++ suites (a few minutes)"
cmake -S "$REPO" -B "$BUILD" -DMILLPOND_TESTS=ON -DCMAKE_BUILD_TYPE=Release >"$RUN/cmake.log" 2>&1 ||
  { tail -30 "$RUN/cmake.log"; die "cmake configure failed"; }
cmake --build "$BUILD" -j"$(nproc)" >>"$RUN/cmake.log" 2>&1 || { tail -40 "$RUN/cmake.log"; die "C++ build failed"; }
RUN_TS=0
if [ "${RXE_SKIP_TS:-0}" != 1 ] && ls "$REPO"/test/rdma/*.test.ts >/dev/null 2>&1; then
  (cd "$REPO" && npx cmake-js compile --out build >"$RUN/addon.log" 2>&1) || { tail -40 "$RUN/addon.log"; die "addon build failed"; }
  RUN_TS=1
  detail=$(cd "$REPO" && node -e 'console.log(require("./build/Release/millpond.node").rdmaProbe().detail)')
  case "$detail" in *"without libibverbs"*) die "the addon was built without RDMA support: $detail" ;; esac
fi
say "built C++ suites$([ $RUN_TS = 1 ] && echo ' and the addon')"

NODE_PREFIX=
if NODE=$(command -v node); then
  NODE=$(readlink -f "$NODE")
  case "$NODE" in /usr/*) ;; *) NODE_PREFIX=$(dirname "$(dirname "$NODE")") ;; esac
fi

# ---- 4. initramfs: busybox, the 9p modules, an init that mounts the shares and runs the suite
mkdir -p "$RUN"
IRD=$RUN/initramfs
rm -rf "$IRD" && mkdir -p "$IRD"/{bb,mods,etc,proc,sys,dev,tmp,run,root,kroot,usr}
cp "$(command -v busybox)" "$IRD/bb/busybox"
for l in bin lib lib64 sbin; do ln -s usr/$l "$IRD/$l"; done  # /usr/bin/sh etc. once /usr is mounted
modprobe -d "$KROOT" -S "$KVER" --show-depends -a 9p 9pnet_virtio virtio_pci |
  awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
    cp "$ko" "$IRD/mods/" && basename "$ko"
  done >"$IRD/mods/order"
cp -a /etc/libibverbs.d /etc/ld.so.cache "$IRD/etc/"
[ -d /etc/alternatives ] && cp -a /etc/alternatives "$IRD/etc/"
echo 'root:x:0:0:root:/root:/bin/sh' >"$IRD/etc/passwd"
echo 'root:x:0:' >"$IRD/etc/group"
printf '127.0.0.1 localhost\n10.11.0.1 rxehost\n' >"$IRD/etc/hosts"
# Module autoloading (rdma_rxe pulls crc32 crypto) reads the shared module tree.
printf '#!/bb/busybox sh\nexec /usr/sbin/modprobe -d /kroot "$@"\n' >"$IRD/bb/modprobe"
chmod +x "$IRD/bb/modprobe"
cat >"$IRD/init" <<'INIT'
#!/bb/busybox sh
B=/bb/busybox
$B mount -t proc proc /proc; $B mount -t sysfs sys /sys; $B mount -t devtmpfs dev /dev
$B mount -t tmpfs tmp /tmp; $B mount -t tmpfs run /run; $B mkdir -p /var && $B ln -s /run /var/run
for m in $($B cat /mods/order); do $B insmod /mods/$m || echo "init: insmod $m failed"; done
share() {  # share TAG PATH [ro]
  $B mkdir -p "$2" && $B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000${3:+,ro,cache=loose} "$1" "$2"
}
share usr /usr ro; share kmod /kroot ro; share repo "$repo"; share work "$work"
[ -n "${nodeprefix:-}" ] && share node "$nodeprefix" ro
echo /bb/modprobe >/proc/sys/kernel/modprobe
export PATH=/bb:${nodeprefix:+$nodeprefix/bin:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/root  # /bb: the modprobe wrapper
export MILLPOND_REPO=$repo RXE_WORK=$work RXE_RUN_TS=$runts
/usr/bin/bash "$repo/scripts/rxe-vm-guest.sh" ${shell:+--shell}
$B sync; $B poweroff -f
INIT
chmod +x "$IRD/init"
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1 >"$RUN/initrd.gz")

# ---- 5. boot
rm -f "$RUN/results.txt" "$RUN/bench.args"
[ -n "${RXE_BENCH:-}" ] && printf '%s\n' "$RXE_BENCH" >"$RUN/bench.args"
SHELL_ARG=; [ "${1:-}" = --shell ] && SHELL_ARG=" shell=1"
say "booting qemu (tcg, $SMP cpus, ${MEM_MB} MiB)"
BOOT=$(date +%s.%N)
set +e
timeout "$TIMEOUT_S" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$SMP" -m "$MEM_MB" \
  -nographic -no-reboot -nic none -device virtio-rng-pci \
  -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$RUN/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init repo=$REPO work=$RUN runts=$RUN_TS${NODE_PREFIX:+ nodeprefix=$NODE_PREFIX}$SHELL_ARG" \
  -virtfs local,path=/usr,mount_tag=usr,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$KROOT",mount_tag=kmod,security_model=none,readonly=on \
  -virtfs local,path="$REPO",mount_tag=repo,security_model=none,multidevs=remap \
  -virtfs local,path="$RUN",mount_tag=work,security_model=none,multidevs=remap \
  ${NODE_PREFIX:+-virtfs local,path=$NODE_PREFIX,mount_tag=node,security_model=none,readonly=on} \
  </dev/null 2>&1 | tr -d '\r' | tee "$RUN/console.log"
QEMU_RC=${PIPESTATUS[0]}
set -e
say "qemu exited ($QEMU_RC) after $(awk -v a="$BOOT" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"

# ---- 6. verdict
echo "================ rxe-vm results ($RUN/results.txt)"
[ -f "$RUN/results.txt" ] || die "the guest wrote no results (see $RUN/console.log)"
cat "$RUN/results.txt"
say "total"
# One line for scripts/test.sh to add into the project's summary.
echo "rdma: $(grep -c '^PASS' "$RUN/results.txt") passed, $(grep -c '^FAIL' "$RUN/results.txt") failed"
if grep -q '^FAIL' "$RUN/results.txt" || ! grep -q '^DONE' "$RUN/results.txt"; then
  exit 1
fi
