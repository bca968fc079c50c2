#!/usr/bin/env bash
# fuzz-run.sh BIN SECONDS — run one libFuzzer target for SECONDS, seeded from
# fuzz/corpus/<name>/ (committed seeds) plus, for image targets, ../shared/images.
set -euo pipefail
bin=$1; secs=$2; name=$(basename "$bin")
shared="${FERRY_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
work="build-fuzz/corpus/$name"; mkdir -p "$work"
seeds=()
[ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
case "$name" in *image*|*jpeg*|*png*|*webp*) [ -d "$shared/images" ] && seeds+=("$shared/images") ;; esac
echo "fuzz: $name for ${secs}s"
"$bin" -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=0 "$work" "${seeds[@]}" 2>"build-fuzz/$name.log" || {
  tail -n 40 "build-fuzz/$name.log"; exit 1; }
grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "build-fuzz/$name.log" | tail -n 1 || true
