#!/usr/bin/env bash
# Runs each test binary given, prints its failures, and ends with the total
# "N passed, N failed". Exit 1 if any test failed or a binary crashed.
set -u
tp=0; tf=0; crashed=0
for bin in "$@"; do
  out=$("$bin" 2>&1); rc=$?
  last=$(printf '%s\n' "$out" | tail -n 1)
  if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p=${BASH_REMATCH[1]}; f=${BASH_REMATCH[2]}
  else
    p=0; f=0; crashed=1
    echo "$(basename "$bin"): crashed or gave no summary (exit $rc)"
  fi
  tp=$((tp + p)); tf=$((tf + f))
  printf '%-16s %s\n' "$(basename "$bin")" "$last"
  if [ "$f" != 0 ] || [ $rc -ne 0 ]; then printf '%s\n' "$out" | grep -v '^ok ' | head -n 60; fi
done
echo "$tp passed, $tf failed"
[ "$tf" -eq 0 ] && [ "$crashed" -eq 0 ]
