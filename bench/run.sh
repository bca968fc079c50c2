#!/usr/bin/env bash
# bench/run.sh BUILD — runs every bench/bench-*.sh with the build folder as argument.
# Each script prints its own table (machine, inputs, medians, ratios vs a reference).
set -euo pipefail
build=${1:-build}
echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for s in bench/bench-*.sh; do
  [ -e "$s" ] || continue
  echo; echo "== $s"; bash "$s" "$build"
done
