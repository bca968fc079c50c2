#!/usr/bin/env bash
# tests/test-openai.sh — the official `openai` npm client (tests/openai-client) against
# `ferry serve` in front of two `ferry emulate` nodes (edge + cloud profiles), all on
# 127.0.0.1 with kernel-chosen ports. Installs the pinned client with `npm ci` into the
# gitignored tests/openai-client/node_modules (cached between runs). Called by test-gw
# (make test); runnable alone from the repo root. Exit 0 = all cases passed.
set -euo pipefail
cd "$(dirname "$0")/.."
ferry=${FERRY_BIN:-build/ferry}
shared=${FERRY_SHARED:-../shared}
dir=$(mktemp -d /tmp/ferry-openai-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

command -v node >/dev/null || { echo "test-openai: node is not installed" >&2; exit 1; }
( cd tests/openai-client
  if [ ! -d node_modules/openai ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>"$dir/npm.log" ||
      { echo "test-openai: npm ci failed:" >&2; cat "$dir/npm.log" >&2; exit 1; }
  fi )

wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

"$ferry" emulate --profile edge-3090 --time-scale 0.02 --seed 1 --port-file "$dir/edge.port" >/dev/null 2>"$dir/edge.log" &
pids+=($!)
"$ferry" emulate --profile cloud-a100 --time-scale 0.02 --seed 2 --port-file "$dir/cloud.port" >/dev/null 2>"$dir/cloud.log" &
pids+=($!)
wait_file "$dir/edge.port" && wait_file "$dir/cloud.port" ||
  { echo "test-openai: emulators did not start" >&2; cat "$dir"/*.log >&2; exit 1; }

cat >"$dir/ferry.ini" <<INI
[server]
listen = 127.0.0.1:0
api_key = sk-openai-client-test
[policy]
name = least-loaded
[node edge]
role = edge
url = http://127.0.0.1:$(cat "$dir/edge.port")
profile = data/profiles
profile_node = edge-3090
[node cloud]
role = cloud
url = http://127.0.0.1:$(cat "$dir/cloud.port")
profile = data/profiles
profile_node = cloud-a100
INI
"$ferry" serve -c "$dir/ferry.ini" >"$dir/serve.out" 2>"$dir/serve.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q listening "$dir/serve.out" 2>/dev/null && break; sleep 0.05; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$dir/serve.out" | head -n 1)
[ -n "$url" ] || { echo "test-openai: gateway did not start" >&2; cat "$dir/serve.log" >&2; exit 1; }

image=$(ls "$shared"/images/photo-*.jpg 2>/dev/null | head -n 1 || true)
[ -n "$image" ] || { echo "test-openai: no JPEG in $shared/images" >&2; exit 1; }
FERRY_URL=$url FERRY_KEY=sk-openai-client-test FERRY_IMAGE=$image node tests/openai-client/test.mjs
