#!/usr/bin/env bash
# demo.sh FERRY_BIN — the demo behind `make demo`. For now: the complexity features of
# the shared test images and of the example requests (data/examples). Later issues
# extend it to the full gateway demo.
set -euo pipefail
ferry=${1:-build/ferry}
cd "$(dirname "$0")/.."
shared="${FERRY_SHARED:-../shared}"
if [ ! -x "$ferry" ]; then echo "demo: $ferry not built (run make)" >&2; exit 2; fi

echo "== ferry features: images in $shared/images (analysis at 512 px, MoA-Off scores)"
if [ -d "$shared/images" ]; then
  "$ferry" features --table "$shared/images"
else
  echo "(no $shared/images; set FERRY_SHARED to the folder that holds images/)"
fi
echo
echo "== ferry features: example requests in data/examples (text, dialogue, inline image)"
"$ferry" features --table data/examples
echo
echo "== one request as JSON (what the gateway computes before it decides where to send it)"
"$ferry" features --json data/examples/dialogue.json
