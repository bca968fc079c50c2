#!/usr/bin/env bash
# bench-sim.sh BUILD — simulator throughput on one core: 1 million VQAv2-like requests of
# the MoA-Off setup (data/experiments/moaoff-vqav2.ini at 300 Mbps, 8 requests/s) per
# run, for least-loaded and oracle, beside cloud-only as the reference measured in the
# same run (the engine with the cheapest possible decision). Each configuration runs
# BENCH_REPS times (default 3) in alternating order; the table gives the median wall
# time, simulated requests per second, the ratio to the reference, and the peak
# resident memory (bounded: it must not grow with the number of requests).
set -euo pipefail
build=${1:-build}
bin="$build/ferry"
[ -x "$bin" ] || { echo "bench-sim.sh: $bin missing (make BUILD=$build)"; exit 1; }
reps=${BENCH_REPS:-3}
n=${BENCH_REQUESTS:-1000000}
pin=""; command -v taskset >/dev/null && pin="taskset -c 0"
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
for ((r = 0; r < reps; r++)); do
  for pol in cloud-only least-loaded oracle; do
    /usr/bin/time -f "$pol %e %M" $pin "$bin" sim data/experiments/moaoff-vqav2.ini \
      --policies "$pol" --seeds 1 --requests "$n" --set sweep.values=wan-300 \
      --set arrivals.rate_rps=8 --no-timing \
      >/dev/null 2>>"$tmp"
  done
done
# 100k-request runs of least-loaded: memory must not scale with the request count
/usr/bin/time -f "least-loaded@100k %e %M" $pin "$bin" sim data/experiments/moaoff-vqav2.ini \
  --policies least-loaded --seeds 1 --requests $((n / 10)) --set sweep.values=wan-300 \
  --set arrivals.rate_rps=8 \
  --no-timing >/dev/null 2>>"$tmp"
echo "inputs: moaoff-vqav2 (edge-3090 + cloud-a100 at 300 Mbps, Poisson 8 req/s), $n requests per run, $reps runs each, one core"
/usr/bin/python3 - "$tmp" "$n" <<'PY'
import sys, statistics
n = int(sys.argv[2]); t = {}; mem = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) != 3: continue
    t.setdefault(p[0], []).append(float(p[1])); mem.setdefault(p[0], []).append(int(p[2]))
ref = statistics.median(t["cloud-only"])
print("%-18s %10s %14s %14s %12s" % ("policy", "median s", "requests/s", "vs cloud-only", "peak RSS MB"))
for k in ["cloud-only", "least-loaded", "oracle", "least-loaded@100k"]:
    if k not in t: continue
    m = statistics.median(t[k]); reqs = n // 10 if k.endswith("100k") else n
    print("%-18s %10.2f %14.0f %14.2f %12.1f" % (k, m, reqs / m if m else 0, m / ref if ref else 0, max(mem[k]) / 1024))
PY
