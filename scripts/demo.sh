#!/usr/bin/env bash
# demo.sh FERRY_BIN — the demo behind `make demo` (docs/emulator.md "make demo").
#
# Starts two emulated MLLM nodes with the MoA-Off profiles of data/profiles (edge:
# Qwen2-VL-2B on an RTX 3090 on the LAN; cloud: Qwen2.5-VL-7B on an A100 behind a
# 300 Mbit/s WAN), time-scaled, on free loopback ports; then, for each policy, the
# gateway `ferry serve` in front of them, and drives the same mixed workload through it
# over real HTTP (`ferry bench load`: image questions from ../shared/images, short and
# long text, M4A1 dialogues, some streamed, feedback after each answer). Prints one row
# per policy and stops everything it started.
#
# The last row, "ferry trained", is the ferry policy with a predictor bank trained
# offline on the same two nodes (docs/collect.md "Training a bank for the ferry
# policy"): before the table, `ferry bench collect --plans keep,downscale,drop` runs
# every item of data/collect/demo-train.jsonl on both nodes with its images kept,
# downscaled to 448 px and dropped, and `ferry train --holdout 0` fits the bank; the
# row's gateway starts from it (`ferry serve --model`). Those 46 items use the 15 images
# of ../shared/images that the load never sends: bench load's image questions are the
# items of data/collect/mini.jsonl (its default --dataset) and its dialogues' camera
# views are photo-coffee.webp, photo-cups-progressive.jpg and photo-camera-gray.png, so
# the bank is trained on items disjoint from those it is measured on. Environment:
#   DEMO_POLICIES     policies to compare (default: every registered one but oracle,
#                     which only the simulator can run)
#   DEMO_TRAINED      1 (default) adds the "ferry trained" row, 0 leaves it out
#   DEMO_REQUESTS     requests per policy (default 80)
#   DEMO_CONCURRENCY  requests at once (default 4)
#   DEMO_TIME_SCALE   wall ms per modelled ms (default 0.1: ten times faster)
#   FERRY_SHARED      the shared folder with images/ and datasets/ (default ../shared)
set -euo pipefail
ferry=${1:-build/ferry}
cd "$(dirname "$0")/.."
if [ ! -x "$ferry" ]; then echo "demo: $ferry not built (run make)" >&2; exit 2; fi
case "$ferry" in /*) ;; *) ferry="$PWD/$ferry" ;; esac
shared="${FERRY_SHARED:-../shared}"
if [ ! -d "$shared/images" ]; then
  echo "demo: no $shared/images (set FERRY_SHARED to the folder that holds images/)" >&2
  exit 2
fi
export FERRY_SHARED="$shared"
policies=${DEMO_POLICIES:-$("$ferry" sim --list | awk '$1 != "oracle" { printf "%s ", $1 }')}
trained=${DEMO_TRAINED:-1}
requests=${DEMO_REQUESTS:-80}
conc=${DEMO_CONCURRENCY:-4}
scale=${DEMO_TIME_SCALE:-0.1}

t_start=$(date +%s)
tmp=$(mktemp -d /tmp/ferry-demo-XXXXXX)
pids=()
cleanup() {
  # stop only what this script started, by pid
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# waits (bounded) until file $1 exists and is not empty
wait_file() {
  for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "demo: timed out waiting for $1" >&2; return 1
}
# waits until the gateway log $1 names its port; prints the port
gw_port() {
  for _ in $(seq 1 100); do
    p=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$1" | head -n 1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.1
  done
  echo "demo: the gateway did not start:" >&2; cat "$1" >&2; return 1
}

# One profile file for the gateway (devices, models, links and nodes together).
cat data/profiles/devices.ini data/profiles/models.ini data/profiles/links.ini \
    data/profiles/nodes.ini > "$tmp/profiles.ini"

echo "== ferry demo: two emulated nodes (MoA-Off profiles, time scale $scale) and the gateway"
"$ferry" emulate --profile edge-3090 --profiles data/profiles --time-scale "$scale" --seed 11 \
  --port-file "$tmp/edge.port" > "$tmp/edge.log" 2>&1 &
pids+=($!)
"$ferry" emulate --profile cloud-a100 --profiles data/profiles --time-scale "$scale" --seed 12 \
  --port-file "$tmp/cloud.port" > "$tmp/cloud.log" 2>&1 &
pids+=($!)
wait_file "$tmp/edge.port"; wait_file "$tmp/cloud.port"
edge=$(cat "$tmp/edge.port"); cloud=$(cat "$tmp/cloud.port")
sed -n 1p "$tmp/edge.log"; sed -n 1p "$tmp/cloud.log"

write_config() { # policy file
  cat > "$2" <<EOF
; written by scripts/demo.sh
[server]
listen = 127.0.0.1:0
workers = 2

[policy]
name = $1

[node edge]
role = edge
url = http://127.0.0.1:$edge
model = qwen2-vl-2b
profile = $tmp/profiles.ini
profile_node = edge-3090

[node cloud]
role = cloud
url = http://127.0.0.1:$cloud
model = qwen2.5-vl-7b
profile = $tmp/profiles.ini
profile_node = cloud-a100
; the demo's assumed per-token prices for the rented A100 (the edge GPU is owned: 0)
usd_per_mtok_in = 0.15
usd_per_mtok_out = 0.6
EOF
}

if [ "$trained" = 1 ]; then
  # the "ferry trained" row's bank: a benchmark of both nodes with every plan, on items
  # the load never sends (see the top of this file), then ferry train on all of it
  write_config ferry "$tmp/gw-collect.ini"
  echo
  echo "== a bank for 'ferry trained': data/collect/demo-train.jsonl (items the load never"
  echo "   sends) on both nodes with images kept, downscaled to 448 px and dropped"
  tc=$(date +%s)
  if "$ferry" bench collect data/collect/demo-train.jsonl -c "$tmp/gw-collect.ini" \
       -o "$tmp/bench.jsonl" --plans keep,downscale,drop --concurrency 4 -q \
       2> "$tmp/collect.log" &&
     "$ferry" train "$tmp/bench.jsonl" --holdout 0 --profiles data/profiles \
       -o "$tmp/bank.fy" > "$tmp/train.log" 2>&1; then
    sed 's/ (already in [^)]*)//; s/^/   /' "$tmp/collect.log"
    sed -n 1,2p "$tmp/train.log" | sed "s| -> $tmp/| -> |; s/^/   /"
    echo "   ($(( $(date +%s) - tc )) s)"
  else
    echo "demo: the training collection failed; no 'ferry trained' row:" >&2
    cat "$tmp/collect.log" "$tmp/train.log" 2>/dev/null >&2 || true
    trained=0
  fi
fi

echo
echo "== $requests requests per policy, $conc at a time; the same workload for every policy"
echo "   (completed = HTTP 200 and the answer scored >= 0.5 against the reference;"
echo "    latencies in wall ms at time scale $scale; cost from the tokens each node used)"
echo
first=1
t0=$(date +%s)
rows=$policies
[ "$trained" = 1 ] && rows="$rows ferry-trained"
# the request by hand goes through the last row's gateway (the list may end with a
# space: ${policies##* } was empty and that request never ran)
last_row=$(echo $rows | awk '{ print $NF }')
for row in $rows; do
  pol=$row label=$row model=()
  if [ "$row" = ferry-trained ]; then
    pol=ferry label="ferry trained" model=(--model "$tmp/bank.fy")
  fi
  cfg="$tmp/gw-$row.ini"
  write_config "$pol" "$cfg"
  "$ferry" serve -c "$cfg" "${model[@]}" > "$tmp/gw-$row.log" 2>&1 &
  gpid=$!
  pids+=($gpid)
  port=$(gw_port "$tmp/gw-$row.log")
  hdr=()
  [ $first = 1 ] && hdr=(--header)
  "$ferry" bench load --url "http://127.0.0.1:$port" -c "$cfg" --requests "$requests" \
    --concurrency "$conc" --seed 7 --label "$label" "${hdr[@]}" \
    || echo "$label: the load run reported failures (log: gw-$row.log)"
  if [ $first = 1 ]; then first=0; fi
  if [ "$row" = "$last_row" ]; then
    # one request by hand, to show what the gateway adds to a response
    b64=$(base64 -w0 "$shared/images/photo-cat-chelsea.png")
    printf '{"model":"ferry","max_tokens":16,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}},{"type":"text","text":"What animal is this?"}]}],"metadata":{"answer":"cat","difficulty":0.2,"images":1,"image_sides":[451]}}' \
      "$b64" > "$tmp/one.json"
    echo
    echo "== one request through the gateway ($label): its X-Ferry-* headers and answer"
    curl -s -D "$tmp/one.hdr" -o "$tmp/one.out" -H 'Content-Type: application/json' \
      --data-binary @"$tmp/one.json" "http://127.0.0.1:$port/v1/chat/completions" || true
    grep -i '^x-ferry' "$tmp/one.hdr" | tr -d '\r' | sed 's/^/   /'
    ans=$(sed -n 's/.*"content":"\([^"]*\)".*/   answer: \1/p' "$tmp/one.out")
    [ -n "$ans" ] && echo "$ans"
  fi
  kill -TERM "$gpid" 2>/dev/null || true
  wait "$gpid" 2>/dev/null || true
done
echo
echo "== done in $(( $(date +%s) - t_start )) s ($(( $(date +%s) - t0 )) s for the table);" \
  "every process the demo started is stopped"
