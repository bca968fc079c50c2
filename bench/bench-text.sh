#!/usr/bin/env bash
# bench-text.sh BUILD — text-feature time in µs per KB over real texts (Debian's license
# texts, ~260 KB, and the M4A1 sample as one file), beside a strlen + word-count pass over
# the same bytes in the same run; then req_parse + text features per example request
# and per one-image request (a 110 KB JPEG and a 1.1 MB WebP as data: URLs) beside
# cJSON_Parse alone (bench/bench-text.c). Target: text features < 5 µs/KB.
set -euo pipefail
build=${1:-build}
bin="$build/bench/bench-text"
make --no-print-directory BUILD="$build" "$bin" >/dev/null   # incremental: never a stale binary
shared="${FERRY_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
texts=(/usr/share/common-licenses/{Apache-2.0,Artistic,BSD,CC0-1.0,GFDL-1.3,GPL-2,GPL-3,LGPL-2.1,MPL-2.0})
[ -f "$shared/datasets/m4a1/M4A1.json" ] && texts+=("$shared/datasets/m4a1/M4A1.json")
reqs=(data/examples/*.json)
for im in photo-rocket.jpg large-wood-4096.webp; do
  [ -f "$shared/images/$im" ] && reqs+=("$shared/images/$im")
done
taskset -c 0 "$bin" -r 31 "${texts[@]}" -- "${reqs[@]}" 2>/dev/null ||
  "$bin" -r 31 "${texts[@]}" -- "${reqs[@]}"
