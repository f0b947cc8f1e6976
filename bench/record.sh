#!/usr/bin/env bash
# Runs one bench and records its output in bench/results/<name>.txt, headed by the exact
# command, the date, the commit and the machine's load (the cores are shared: judge the noise).
# Usage: bash bench/record.sh <name> [--option value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
name="$1"
out="bench/results/${name}.txt"
mkdir -p bench/results
{
  echo "command: npm run bench -- $*"
  echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit:  $(git rev-parse --short HEAD)"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r)"
  echo "before:  $(uptime)"
  echo "busiest other processes: $(ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p' | awk '{printf "%s %s%%; ", $2, $1}')"
  echo
  node --import tsx bench/main.ts "$@" 2>&1
  echo
  echo "after:   $(uptime)"
} | tee "$out"
