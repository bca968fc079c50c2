#!/usr/bin/env bash
# bench-decide.sh BUILD — decision time of the policies (8 nodes x up to 4 plans), one
# core, ratio vs least-loaded in the same run (bench/bench-decide.c).
set -euo pipefail
build=${1:-build}
bin="$build/bench/bench-decide"
make --no-print-directory BUILD="$build" "$bin" >/dev/null  # rebuilds when stale
taskset -c 0 "$bin" 2>/dev/null || "$bin"
