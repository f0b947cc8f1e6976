#!/usr/bin/env bash
# Installs (when missing) and starts a Redis server for the cluster executor (BullMQ), idempotently.
# Prints its URL on the last line, e.g. redis://127.0.0.1:6390. Root, as CI runs it.
#   scripts/redis-start.sh [PORT] [BIND]     defaults: 6390, 127.0.0.1
# Bound to another address than loopback (a multi-host cluster: BIND 0.0.0.0 or the host's
# address), it requires a password, made here once (<dir>/password, 0600) and part of the URL
# printed (redis://default:PASSWORD@BIND:PORT): give that URL to executors and drivers only.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PORT=${1:-6390}
BIND=${2:-127.0.0.1}
DIR=/var/lib/millpond-redis-$PORT

if ! command -v redis-server > /dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=600 -qq update
  apt-get -o DPkg::Lock::Timeout=600 -qq install -y --no-install-recommends redis-server > /tmp/redis-apt.log 2>&1 ||
    { tail -20 /tmp/redis-apt.log >&2; exit 1; }
fi

mkdir -p "$DIR"
chmod 0700 "$DIR"
URL="redis://$BIND:$PORT"
AUTH=()
if [ "$BIND" != 127.0.0.1 ]; then
  [ -s "$DIR/password" ] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/password")
  URL="redis://default:$(cat "$DIR/password")@$BIND:$PORT"
  AUTH=(--requirepass "$(cat "$DIR/password")")
fi
if [ "$(redis-cli -u "$URL" ping 2> /dev/null)" != PONG ]; then
  # BullMQ needs noeviction: an evicted job key would lose a task silently.
  redis-server --port "$PORT" --bind "$BIND" --dir "$DIR" --daemonize yes "${AUTH[@]}" \
    --maxmemory-policy noeviction --appendonly yes --save '' --logfile "$DIR/redis.log"
  for _ in $(seq 1 50); do
    [ "$(redis-cli -u "$URL" ping 2> /dev/null)" = PONG ] && break
    sleep 0.1
  done
  [ "$(redis-cli -u "$URL" ping 2> /dev/null)" = PONG ] || { tail -20 "$DIR/redis.log" >&2; exit 1; }
fi
echo "$URL"
