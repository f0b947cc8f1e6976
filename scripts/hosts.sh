#!/usr/bin/env bash
# Test hosts: Linux network namespaces on one bridge, one IP each, so services run on separate
# network stacks (design §9). Root only. Every name starts with the set's prefix (2-6 letters or
# digits), so sets made by tests running at the same time never meet.
#
#   hosts.sh up PREFIX N SUBNET     make hosts PREFIX-h1..hN with 10.SUBNET.0.1..N/24 on bridge
#                                   PREFIX-br (10.SUBNET.0.254 in the root namespace, so a test
#                                   process outside the hosts reaches them); prints "hI IP" lines
#   hosts.sh exec PREFIX I CMD...   run CMD inside host I
#   hosts.sh kill PREFIX I          SIGKILL every process of host I (the host dies)
#   hosts.sh pause|resume PREFIX I  SIGSTOP / SIGCONT every process of host I
#   hosts.sh partition PREFIX I down|drop
#                                   cut host I off: its link goes down (peers see resets), or
#                                   iptables drops every packet silently (the gray failure)
#   hosts.sh heal PREFIX I          undo partition
#   hosts.sh down PREFIX            kill every process of the set, remove its hosts and bridge
#   hosts.sh sweep                  'down' every set whose owner process (recorded by 'up' from
#                                   $HOSTS_OWNER_PID, else the caller's parent) is gone
set -euo pipefail

STATE=/run/millpond-hosts

die() { echo "hosts.sh: $*" >&2; exit 2; }
need_prefix() { [[ "${1:-}" =~ ^[a-z0-9]{2,6}$ ]] || die "PREFIX must be 2-6 lowercase letters or digits"; }
need_host() { [[ "${1:-}" =~ ^[0-9]{1,2}$ ]] || die "host must be a number 1-99"; }
ns() { echo "$1-h$2"; }
pids() { ip netns pids "$(ns "$1" "$2")" 2>/dev/null || true; }

signal_host() {  # PREFIX I SIGNAL
  local p
  for p in $(pids "$1" "$2"); do kill -s "$3" "$p" 2>/dev/null || true; done
}

cmd_up() {
  local prefix=$1 n=$2 subnet=$3
  need_prefix "$prefix"
  [[ "$n" =~ ^[0-9]{1,2}$ && "$n" -ge 1 ]] || die "N must be 1-99"
  [[ "$subnet" =~ ^[0-9]{1,3}$ && "$subnet" -le 255 ]] || die "SUBNET must be 0-255"
  mkdir -p "$STATE"
  echo "${HOSTS_OWNER_PID:-$PPID}" > "$STATE/$prefix.owner"
  local br="$prefix-br"
  ip link add "$br" type bridge
  ip addr add "10.$subnet.0.254/24" dev "$br"
  ip link set "$br" up
  local i
  for i in $(seq 1 "$n"); do
    local name; name=$(ns "$prefix" "$i")
    ip netns add "$name"
    ip link add "$prefix-v$i" type veth peer name eth0 netns "$name"
    ip link set "$prefix-v$i" master "$br" up
    ip -n "$name" addr add "10.$subnet.0.$i/24" dev eth0
    ip -n "$name" link set lo up
    ip -n "$name" link set eth0 up
    echo "h$i 10.$subnet.0.$i"
  done
}

cmd_down() {
  local prefix=$1 name
  need_prefix "$prefix"
  for name in $(ip netns list | awk '{print $1}' | grep -E "^$prefix-h[0-9]+$" || true); do
    local i=${name##*-h}
    signal_host "$prefix" "$i" KILL
    # A killed process leaves the namespace when it is reaped; give them a moment.
    local tries=0
    while [ -n "$(pids "$prefix" "$i")" ] && [ $tries -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
    ip netns del "$name" 2>/dev/null || true
    ip link del "$prefix-v$i" 2>/dev/null || true
  done
  ip link del "$prefix-br" 2>/dev/null || true
  rm -f "$STATE/$prefix.owner"
}

cmd_sweep() {
  [ -d "$STATE" ] || return 0
  local f
  for f in "$STATE"/*.owner; do
    [ -e "$f" ] || continue
    local owner; owner=$(cat "$f")
    kill -0 "$owner" 2>/dev/null || cmd_down "$(basename "$f" .owner)"
  done
}

case "${1:-}" in
  up) [ $# -eq 4 ] || die "usage: up PREFIX N SUBNET"; cmd_up "$2" "$3" "$4" ;;
  exec)
    [ $# -ge 4 ] || die "usage: exec PREFIX I CMD..."
    need_prefix "$2"; need_host "$3"
    name=$(ns "$2" "$3"); shift 3
    exec ip netns exec "$name" "$@" ;;
  kill) need_prefix "${2:-}"; need_host "${3:-}"; signal_host "$2" "$3" KILL ;;
  pause) need_prefix "${2:-}"; need_host "${3:-}"; signal_host "$2" "$3" STOP ;;
  resume) need_prefix "${2:-}"; need_host "${3:-}"; signal_host "$2" "$3" CONT ;;
  partition)
    need_prefix "${2:-}"; need_host "${3:-}"
    case "${4:-}" in
      down) ip link set "$2-v$3" down ;;
      drop)
        ip netns exec "$(ns "$2" "$3")" iptables -I INPUT -i eth0 -j DROP
        ip netns exec "$(ns "$2" "$3")" iptables -I OUTPUT -o eth0 -j DROP ;;
      *) die "partition mode must be down or drop" ;;
    esac ;;
  heal)
    need_prefix "${2:-}"; need_host "${3:-}"
    ip link set "$2-v$3" up
    ip netns exec "$(ns "$2" "$3")" iptables -F INPUT 2>/dev/null || true
    ip netns exec "$(ns "$2" "$3")" iptables -F OUTPUT 2>/dev/null || true ;;
  down) [ $# -eq 2 ] || die "usage: down PREFIX"; cmd_down "$2" ;;
  sweep) cmd_sweep ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
