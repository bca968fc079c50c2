#!/usr/bin/env bash
# bench-emu.sh BUILD — timing fidelity of `ferry emulate` against the node service model
# it emulates (bench/bench-emu.c): measured wall latency / (modelled latency x time
# scale) for bursts of simultaneous requests, whole and streamed; and its own cost at
# --time-scale 0.
set -euo pipefail
build=${1:-build}
[ -x "$build/bench/bench-emu" ] ||
  make --no-print-directory BUILD="$build" "$build/bench/bench-emu" >/dev/null
"$build/bench/bench-emu"
