#!/usr/bin/env bash
# Install the Debian (bookworm) packages ferry needs. Idempotent; quiet when all present.
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --bench  also what only benchmarks / reference scripts need
set -euo pipefail

pkgs=(build-essential pkg-config clang llvm libclang-rt-14-dev
      libevent-dev libcurl4-openssl-dev libcjson-dev
      libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libwebp-dev
      libssl-dev libsqlite3-dev sqlite3 libinih-dev libhiredis-dev redis-server
      prometheus curl gnuplot-nox)
bench=(python3-opencv python3-numpy nginx wrk hyperfine valgrind)

for a in "$@"; do
  case "$a" in
    --bench) pkgs+=("${bench[@]}") ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "deps.sh: unknown option '$a'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js 20 (with its npm) is on the machine image; Debian's own nodejs/npm only when absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
