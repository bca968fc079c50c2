#!/usr/bin/env bash
# bench-features.sh BUILD — image-feature time per image over ../shared/images:
# ferry at its default analysis size (512) and at full resolution, beside OpenCV 4.6
# (python3-opencv, one thread) doing imdecode + gray + Sobel + Laplacian + histogram at
# full resolution on the same in-memory files, in the same run. The machine is shared,
# so times are the thread's CPU time, the two sides run in alternating rounds, and each
# image's time is its minimum over all repetitions. Prints median, p95 and ms per
# megapixel over the images, and ratios OpenCV / ferry (> 1 = ferry faster).
set -euo pipefail
build=${1:-build}
reps=${BENCH_REPS:-7}
shared="${FERRY_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
imgs=("$shared"/images/*.jpg "$shared"/images/*.png "$shared"/images/*.webp)
bin="$build/bench/bench-features"
[ -x "$bin" ] || { echo "bench-features.sh: $bin missing (make BUILD=$build bench)"; exit 1; }
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
rounds=${BENCH_ROUNDS:-2}
: >"$tmp"
for ((r = 0; r < rounds; r++)); do
  "$bin" -r "$reps" -s 512 -s 0 "${imgs[@]}" >>"$tmp"
  # (OpenCV's libpng prints iCCP warnings for two of the PNGs; they are not errors)
  /usr/bin/python3 bench/opencv_features_time.py 1 "$reps" "${imgs[@]}" >>"$tmp" 2>/dev/null
done
echo "inputs: ${#imgs[@]} images from $shared/images; $rounds alternating rounds of $reps repetitions; per image the minimum thread CPU time"
/usr/bin/python3 - "$tmp" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    who, *rest = line.split()
    if who == "ferry":
        key = "ferry @%s" % ("full res" if rest[0] == "0" else rest[0] + " px"); rest = rest[1:]
    else:
        key = who.replace("opencv-0t", "opencv full res, default threads").replace(
            "opencv-1t", "opencv full res, 1 thread")
    f, w, h, best, _ = rest
    prev = rows.setdefault(key, {}).get(f)
    t = float(best) if prev is None else min(prev[1], float(best))
    rows[key][f] = (int(w) * int(h) / 1e6, t)
def pct(v, q):
    v = sorted(v); i = q * (len(v) - 1); lo = int(i); hi = min(lo + 1, len(v) - 1)
    return v[lo] + (i - lo) * (v[hi] - v[lo])
ref = "opencv full res, 1 thread"
order = ["ferry @512 px", "ferry @full res", ref]
big = {f for f, (mp, _) in rows[ref].items() if max(mp, 0) > 0.2621}  # more than 512x512
classes = [("all images", set(rows[ref])), ("images above 512x512 px (%d)" % len(big), big),
           ("images up to 512x512 px (%d)" % (len(rows[ref]) - len(big)), set(rows[ref]) - big)]
for ext in ("jpg", "png", "webp"):
    fs = {f for f in rows[ref] if f.endswith("." + ext)}
    classes.append(("%s images (%d)" % (ext.upper().replace("JPG", "JPEG"), len(fs)), fs))
for title, files in classes:
    print("%s" % title)
    print("  %-34s %10s %10s %12s %12s %12s" % ("", "median ms", "p95 ms", "ms per Mpx",
                                               "ratio of", "median of"))
    print("  %-34s %10s %10s %12s %12s %12s" % ("", "", "", "", "medians", "per-image"))
    refmed = statistics.median(rows[ref][f][1] for f in files)
    for k in order:
        if k not in rows: continue
        ms = [rows[k][f][1] for f in files]
        per = sum(ms) / sum(rows[k][f][0] for f in files)
        each = statistics.median(rows[ref][f][1] / rows[k][f][1] for f in files)
        print("  %-34s %10.3f %10.3f %12.3f %11.2fx %11.2fx" % (k, statistics.median(ms),
              pct(ms, .95), per, refmed / statistics.median(ms), each))
print("ratios: OpenCV (1 thread) time / this time; > 1 = faster than OpenCV")
PY
# The gateway's case (target: <= 10 ms p99 for a 1024x768 JPEG): 1024-px JPEGs re-encoded
# at q90 by ferry from a high-texture photo (1024x640) and a square one (1024x1024, more
# pixels than 1024x768), each analysed at the default size many times: p50 / p99 / max.
for src in photo-moss-hightexture.jpg photo-retina.jpg; do
  "$bin" -g 1024 "${BENCH_GW_REPS:-300}" "$shared/images/$src" |
    awk -v s="$src" '{printf "gateway case: %s JPEG from %s (%d bytes), analysis size 512: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", $2, s, $3, $4, $5, $6}'
done
