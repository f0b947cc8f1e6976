#!/usr/bin/env bash
# Installs (when missing) and starts a Redis server for the cluster executor (BullMQ), idempotently.
# Prints its URL on the last line, e.g. redis://127.0.0.1:6390. Root, as CI runs it.
#   scripts/redis-start.sh [PORT] [BIND]     defaults: 6390, 127.0.0.1
# A multi-host cluster runs it on one host with BIND 0.0.0.0 (or that host's address) and a
# password in a redis.conf of its own; see README.
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

if ! redis-cli -h "$BIND" -p "$PORT" ping > /dev/null 2>&1; then
  mkdir -p "$DIR"
  # BullMQ needs noeviction: an evicted job key would lose a task silently.
  redis-server --port "$PORT" --bind "$BIND" --dir "$DIR" --daemonize yes \
    --maxmemory-policy noeviction --appendonly yes --save '' --logfile "$DIR/redis.log"
  for _ in $(seq 1 50); do
    redis-cli -h "$BIND" -p "$PORT" ping > /dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h "$BIND" -p "$PORT" ping > /dev/null || { tail -20 "$DIR/redis.log" >&2; exit 1; }
fi
echo "redis://$BIND:$PORT"
