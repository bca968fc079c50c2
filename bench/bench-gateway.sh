#!/usr/bin/env bash
# bench-gateway.sh BUILD — `ferry serve` on loopback beside direct access and nginx as a
# plain reverse proxy, side by side in one run, against one `ferry emulate` node that
# answers instantly (--time-scale 0). Non-streamed text chat requests (the gateway routes
# each with its policy: model "ferry"). For each path:
#   added p50/p99 latency at 1 connection (wrk --latency, minus direct's),
#   requests/s at 64 connections, and CPU (user+sys) of the proxy process per request.
# Then the CPU work of one request with a 1024-px JPEG on a worker thread
# (bench/bench-gateway.c), and the text latency at 1 connection while 2 other connections
# send such image requests (the event loop must not be blocked by image work).
# Targets (issue 5): added p50 <= 2x nginx's, CPU/request <= 2x nginx's, throughput >= 50%.
set -euo pipefail
build=${1:-build}
ferry="$build/ferry"
secs=${BENCH_SECONDS:-5}
shared="${FERRY_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
[ -x "$ferry" ] || { echo "bench-gateway.sh: $ferry missing"; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null ||
  { echo "bench-gateway.sh: needs wrk and nginx (scripts/deps.sh --bench)"; exit 1; }
[ -x "$build/bench/bench-gateway" ] ||
  make --no-print-directory BUILD="$build" "$build/bench/bench-gateway" >/dev/null
dir=$(mktemp -d /tmp/ferry-bench-gw-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
# Pinning: wrk on core 0, the backend and the proxies on core 1, so that every path has
# the same cross-core hops (client <-> server) and wake-up costs do not depend on where
# the scheduler happened to put each process (BENCH_PIN=0 turns this off).
srv=(); cli=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  srv=(taskset -c 1); cli=(taskset -c 0)
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat))); done; echo "$t"; }

# --- the backend: an emulated node answering instantly ---------------------------------
"${srv[@]}" "$ferry" emulate --profile edge-3090 --time-scale 0 --port-file "$dir/emu.port" >/dev/null 2>"$dir/emu.log" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$dir/emu.port" ] && break; sleep 0.05; done
emu=$(cat "$dir/emu.port")

# --- ferry serve --------------------------------------------------------------------------
cat >"$dir/ferry.ini" <<INI
[server]
listen = 127.0.0.1:0
workers = 2
[policy]
name = least-loaded
[health]
scrape_interval_ms = 1000
[node edge]
role = edge
url = http://127.0.0.1:$emu
profile = data/profiles
profile_node = edge-3090
INI
"${srv[@]}" "$ferry" serve -c "$dir/ferry.ini" >"$dir/serve.out" 2>"$dir/serve.log" &
fpid=$!; pids+=($fpid)
for _ in $(seq 1 200); do grep -q listening "$dir/serve.out" 2>/dev/null && break; sleep 0.05; done
fport=$(grep -o '127.0.0.1:[0-9]*' "$dir/serve.out" | head -n 1 | cut -d: -f2)

# --- nginx as a plain reverse proxy (one worker, keep-alive upstream) ---------------------
nport=$(free_port)
mkdir -p "$dir/nginx/logs"
cat >"$dir/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
  fastcgi_temp_path $dir/nginx/fcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
  upstream emu { server 127.0.0.1:$emu; keepalive 64; }
  server {
    listen 127.0.0.1:$nport;
    location / {
      proxy_pass http://emu; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGX
"${srv[@]}" nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -g 'daemon off;' 2>"$dir/nginx.log" &
npid=$!; pids+=($npid)
wait_port "$nport" && wait_port "$fport" || { echo "bench-gateway.sh: servers did not start"; cat "$dir"/*.log; exit 1; }
sleep 0.2
nworkers=$(pgrep -P "$npid" | tr '\n' ' ')

# --- requests -----------------------------------------------------------------------------
text='{"model":"MODEL","max_tokens":16,"messages":[{"role":"user","content":"What is the capital of France? Answer in one word."}]}'
echo "${text/MODEL/qwen2-vl-2b}" >"$dir/direct.json"
echo "${text/MODEL/ferry}" >"$dir/ferry.json"
img=$(ls "$shared"/images/photo-flower-bokeh.jpg 2>/dev/null || ls "$shared"/images/photo-*.jpg | head -n 1)
python3 - "$img" "$dir/image.json" "$build/bench/bench-gateway" <<'PY'
import base64, json, subprocess, sys
# the same 1024-px JPEG as bench-gateway.c makes (re-encoded by ferry's own downscaler)
src, out, _ = sys.argv[1:]
data = open(src, 'rb').read()
body = {"model": "ferry", "max_tokens": 16, "messages": [{"role": "user", "content": [
    {"type": "text", "text": "How many flowers are in the picture?"},
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(data).decode()}}]}]}
json.dump(body, open(out, 'w'))
PY
cat >"$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "rb"); wrk.body = f:read("*a"); f:close()
LUA

to_us() { awk '{v=$1; if (v ~ /us$/) {sub("us","",v); print v} else if (v ~ /ms$/) {sub("ms","",v); print v*1000} else if (v ~ /s$/) {sub("s","",v); print v*1e6}}'; }
run_wrk() { # url body conns seconds -> "p50_us p99_us rps requests"
  local out; out=$(BODY="$2" "${cli[@]}" wrk -t1 -c"$3" -d"$4"s --latency -s "$dir/post.lua" "$1" 2>&1)
  local p50 p99 rps n
  p50=$(echo "$out" | awk '$1=="50%"{print $2}' | to_us)
  p99=$(echo "$out" | awk '$1=="99%"{print $2}' | to_us)
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  n=$(echo "$out" | awk '/requests in/{print $1}')
  local errs; errs=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  [ -z "$errs" ] || echo "bench-gateway.sh: $1: $errs non-2xx responses" >&2
  echo "$p50 $p99 $rps $n"
}
hz=$(getconf CLK_TCK)
declare -A P50 P99 RPS CPU URL BODYF PROCS
URL[direct]="http://127.0.0.1:$emu/v1/chat/completions"; BODYF[direct]="$dir/direct.json"; PROCS[direct]=""
URL[nginx]="http://127.0.0.1:$nport/v1/chat/completions"; BODYF[nginx]="$dir/direct.json"; PROCS[nginx]="$npid $nworkers"
URL[ferry]="http://127.0.0.1:$fport/v1/chat/completions"; BODYF[ferry]="$dir/ferry.json"; PROCS[ferry]="$fpid"
# Latency at 1 connection: the three paths in alternating rounds (the machine's state
# drifts; each path's figure is its median over the rounds).
rounds=${BENCH_ROUNDS:-5}
for target in direct nginx ferry; do run_wrk "${URL[$target]}" "${BODYF[$target]}" 1 1 >/dev/null; done   # warm-up
declare -A L50 L99
for ((r = 0; r < rounds; r++)); do
  for target in direct nginx ferry; do
    read -r a b _ _ < <(run_wrk "${URL[$target]}" "${BODYF[$target]}" 1 "$(( (secs + 1) / 2 ))")
    L50[$target]+="$a "; L99[$target]+="$b "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for target in direct nginx ferry; do
  P50[$target]=$(echo "${L50[$target]}" | median); P99[$target]=$(echo "${L99[$target]}" | median)
done
# Throughput and CPU at 64 connections.
for target in direct nginx ferry; do
  procs=${PROCS[$target]}
  c0=0; [ -n "$procs" ] && c0=$(cpu_ticks $procs)
  read -r _ _ RPS[$target] n < <(run_wrk "${URL[$target]}" "${BODYF[$target]}" 64 "$secs")
  if [ -n "$procs" ]; then c1=$(cpu_ticks $procs); CPU[$target]=$(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$hz" 'BEGIN{printf "%.1f", (b-a)/hz/n*1e6}')
  else CPU[$target]="-"; fi
done
# memory over >= 100 000 more requests through the gateway (a leak would grow RSS)
rss() { awk '/VmRSS/{print $2}' /proc/"$fpid"/status; }
rss0=$(rss); total=0
while [ "$total" -lt 100000 ]; do
  read -r _ _ _ n < <(run_wrk "http://127.0.0.1:$fport/v1/chat/completions" "$dir/ferry.json" 64 3)
  total=$((total + n))
done
rss1=$(rss)
# The event loop under image load: a second gateway with two emulated nodes — "edge"
# for the text requests, "img" (another emulator, so the backend's own image work does
# not slow the text answers) for requests with a 1024-px JPEG. Text p50/p99 at 1
# connection with and without 2 connections of image requests; gateway unpinned, as
# deployed (its workers may use every core).
"$ferry" emulate --profile edge-3090 --time-scale 0 --port-file "$dir/emu2.port" >/dev/null 2>"$dir/emu2.log" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$dir/emu2.port" ] && break; sleep 0.05; done
sed -e "s/^listen = .*/listen = 127.0.0.1:0/" "$dir/ferry.ini" >"$dir/ferry2.ini"
printf '[node img]\nrole = cloud\nurl = http://127.0.0.1:%s\nprofile = data/profiles\nprofile_node = cloud-a100\n' \
  "$(cat "$dir/emu2.port")" >>"$dir/ferry2.ini"
"$ferry" serve -c "$dir/ferry2.ini" >"$dir/serve2.out" 2>"$dir/serve2.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q listening "$dir/serve2.out" 2>/dev/null && break; sleep 0.05; done
f2port=$(grep -o '127.0.0.1:[0-9]*' "$dir/serve2.out" | head -n 1 | cut -d: -f2)
echo "${text/MODEL/edge}" >"$dir/edge.json"
sed -e 's/"model": "ferry"/"model": "img"/' "$dir/image.json" >"$dir/image2.json"
read -r idle50 idle99 _ _ < <(run_wrk "http://127.0.0.1:$f2port/v1/chat/completions" "$dir/edge.json" 1 "$secs")
BODY="$dir/image2.json" wrk -t1 -c2 -d"$((secs + 2))"s -s "$dir/post.lua" "http://127.0.0.1:$f2port/v1/chat/completions" >"$dir/img.out" 2>&1 &
wpid=$!
sleep 1
read -r busy50 busy99 _ _ < <(run_wrk "http://127.0.0.1:$f2port/v1/chat/completions" "$dir/edge.json" 1 "$secs")
wait "$wpid" || true
imgrps=$(awk '/Requests\/sec/{print $2}' "$dir/img.out")

echo "inputs: non-streamed text chat (max_tokens 16) to ferry emulate --time-scale 0 (edge-3090);"
echo "        wrk; latency: 1 connection, median over $rounds alternating rounds of $(( (secs + 1) / 2 )) s per path;"
echo "        throughput and CPU: 64 connections, ${secs} s; nginx $(nginx -v 2>&1 | cut -d/ -f2), 1 worker"
[ ${#srv[@]} -gt 0 ] && echo "        pinned: wrk on core 0; emulator, nginx and ferry on core 1"
printf '%-8s %12s %12s %12s %12s %12s %14s\n' path "p50 us" "p99 us" "added p50" "added p99" "req/s @64" "CPU us/req"
for t in direct nginx ferry; do
  printf '%-8s %12.0f %12.0f %12.0f %12.0f %12.0f %14s\n' "$t" "${P50[$t]}" "${P99[$t]}" \
    "$(awk -v a="${P50[$t]}" -v b="${P50[direct]}" 'BEGIN{print a-b}')" \
    "$(awk -v a="${P99[$t]}" -v b="${P99[direct]}" 'BEGIN{print a-b}')" "${RPS[$t]}" "${CPU[$t]}"
done
awk -v fp="${P50[ferry]}" -v np="${P50[nginx]}" -v d="${P50[direct]}" -v fr="${RPS[ferry]}" -v nr="${RPS[nginx]}" \
    -v fc="${CPU[ferry]}" -v nc="${CPU[nginx]}" 'BEGIN{
  fa = fp - d; na = np - d; if (na < 1) na = 1;
  printf "ratios ferry/nginx: added p50 %.2fx (target <= 2), CPU/request %.2fx (target <= 2), throughput %.0f%% (target >= 50%%)\n",
         fa / na, fc / nc, 100 * fr / nr }'
echo "text p50/p99 at 1 connection while 2 connections send 1024-px JPEG requests (${imgrps:-?} req/s): ${busy50%.*}/${busy99%.*} us (without them: ${idle50%.*}/${idle99%.*} us)"
echo "ferry RSS before/after $total more requests: $((rss0 / 1024)) / $((rss1 / 1024)) MiB"
echo
"$build/bench/bench-gateway" "$img" 200 ferry
