#!/usr/bin/env bash
# bench-trace.sh BUILD — trace record writing: trace_write vs the former printf writer
# in the same run, one core (bench/bench-trace.c).
set -euo pipefail
build=${1:-build}
bin="$build/bench/bench-trace"
make --no-print-directory BUILD="$build" "$bin" >/dev/null  # rebuilds when stale
taskset -c 0 "$bin" 2>/dev/null || "$bin"
