#!/usr/bin/env bash
# scripts/results.sh [BUILD] — regenerates docs/results.md and docs/results/*/*.svg by
# one command: `ferry sim` over every shipped experiment (data/experiments/*.ini) with
# every policy and SEEDS seeds (default 5), the predictors' held-out errors on a
# counterfactual trace of each experiment (`ferry train` + `ferry eval`), and the M4A1
# replay (`ferry bench m4a1`). Deterministic: the same tree gives the same report.
# Intermediate files: out/results/ (CSV, tables, traces, models).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seeds=${SEEDS:-5}
shared=${FERRY_SHARED:-../shared}
make --no-print-directory BUILD="$build" -j2 "$build/ferry" >/dev/null
ferry="$build/ferry"
work=out/results
rm -rf "$work" docs/results
mkdir -p "$work" docs/results
pols=cloud-only,edge-only,random,least-loaded,moa-off,perllm,qlmio,lcio,cascade,ferry,oracle
train_seed=1001           # the offline-training run's seed (reported seeds: 1, 2, ...)
deltas="0 0.01 0.02 0.03" # the trained ferry's δ frontier on moaoff-* (0.03: the default)
tradeoffs="0.5 0.3 0.2 0.1" # the requests' tradeoff on moaoff-* (0.5: ferry's configured rule)
exps=()
for e in data/experiments/*.ini; do exps+=("$(basename "$e" .ini)"); done

for n in "${exps[@]}"; do
  e=data/experiments/$n.ini
  echo "results: $n" >&2
  "$ferry" sim "$e" --policies "$pols" --seeds "$seeds" --no-timing --csv "$work/$n.csv" \
    >"$work/$n.txt"
  # plots (gnuplot); a failing plot does not stop the report
  "$ferry" sim "$e" --policies "$pols" --seeds "$seeds" --no-timing --plot "$work/plot-$n" \
    >/dev/null 2>&1 || true
  mkdir -p "docs/results/$n"
  # latency vs completion, sweeps, and the latency CDF of the first sweep value
  for f in "$work/plot-$n"/latency-vs-completion.svg "$work/plot-$n"/sweep-*.svg \
           "$work/plot-$n"/latency-cdf-0.svg; do
    [ -f "$f" ] && cp "$f" "docs/results/$n/"
  done
  # ferry's rule with exact predictions: the true P(correct) and latency of every plan
  # (truth=p: a perfect predictor, not a clairvoyant), to separate predictor error from
  # the rule
  "$ferry" sim "$e" --policies ferry --seeds "$seeds" --no-timing \
    --set experiment.params.ferry=truth=p --csv "$work/$n-exact.csv" >/dev/null
  # ferry and qlmio with predictors trained offline, as QLMIO trains MGQP and MILP on
  # MIOBench: a counterfactual trace of one more run of the experiment (seed $train_seed,
  # disjoint from the reported seeds) with every request's outcome on every node with its
  # images kept, downscaled and dropped; trained on all of it
  "$ferry" sim "$e" --policies ferry --seeds 1 --set experiment.seed=$train_seed --no-timing \
    --trace "$work/$n-bench.jsonl" --counterfactual-plans >/dev/null
  "$ferry" train "$work/$n-bench.jsonl" -o "$work/$n-bench.fy" --holdout 0 \
    --profiles data/profiles >/dev/null
  "$ferry" sim "$e" --policies ferry,qlmio --seeds "$seeds" --no-timing \
    --set "experiment.pred_model=$PWD/$work/$n-bench.fy" --csv "$work/$n-trained.csv" >/dev/null
  if [[ $n == moaoff-* ]]; then
    # the trained ferry's latency-completion frontier: δ (the quality it may give up)
    for d in $deltas; do
      "$ferry" sim "$e" --policies ferry --seeds "$seeds" --no-timing \
        --set "experiment.pred_model=$PWD/$work/$n-bench.fy" \
        --set experiment.params.ferry=delta=$d --csv "$work/$n-trained-d$d.csv" >/dev/null
    done
    # every request with the same tradeoff preference: the online and the trained ferry
    for t in $tradeoffs; do
      "$ferry" sim "$e" --policies ferry --seeds "$seeds" --no-timing         --set experiment.tradeoff=$t --csv "$work/$n-t$t.csv" >/dev/null
      "$ferry" sim "$e" --policies ferry --seeds "$seeds" --no-timing         --set "experiment.pred_model=$PWD/$work/$n-bench.fy"         --set experiment.tradeoff=$t --csv "$work/$n-trained-t$t.csv" >/dev/null
    done
  fi
  # predictors: a trace of ferry's run with every node's outcome, 80/20 by dialogue
  "$ferry" sim "$e" --policies ferry --seeds 1 --no-timing --trace "$work/$n.jsonl" \
    --counterfactual >/dev/null
  "$ferry" train "$work/$n.jsonl" -o "$work/$n.fy" --profiles data/profiles >/dev/null
  "$ferry" eval "$work/$n.jsonl" --model "$work/$n.fy" --profiles data/profiles \
    >"$work/$n.eval.txt"
done
# cascades: ferry's use of them against the confidence model's one assumed parameter
# (docs/simulator.md "Quality model": confidence_sep; 1 is the default)
for n in moaoff-vqav2 dialogue hetero; do
  for sep in 0 1 2 4; do
    "$ferry" sim "data/experiments/$n.ini" --policies cloud-only,ferry --seeds "$seeds" --no-timing \
      --set quality.confidence_sep=$sep --csv "$work/sep-$n-$sep.csv" >/dev/null
  done
done
# heldout-busy-edge with the bank of another experiment (moaoff-vqav2: two of its three
# nodes, another load): does offline training transfer?
"$ferry" sim data/experiments/heldout-busy-edge.ini --policies ferry --seeds "$seeds" --no-timing \
  --set "experiment.pred_model=$PWD/$work/moaoff-vqav2-bench.fy" \
  --csv "$work/heldout-busy-edge-transfer.csv" >/dev/null
# heldout-docqa: ferry's rule with exact predictions and no latency relaxation (kappa 0)
"$ferry" sim data/experiments/heldout-docqa.ini --policies ferry --seeds "$seeds" --no-timing \
  --set experiment.params.ferry=truth=p,kappa=0 --csv "$work/heldout-docqa-exact-k0.csv" >/dev/null
m4a1="$shared/datasets/m4a1/M4A1.json"
if [ -f "$m4a1" ]; then
  "$ferry" bench m4a1 "$m4a1" >"$work/m4a1.txt"
else
  echo "M4A1 sample not found at $m4a1" >"$work/m4a1.txt"
fi

# ---- per experiment: mean over sweep values and seeds, per policy -------------------
# out: policy e2e p95 compl acc cost mb split% downscale% drop% privacy-violations/run
#      cascade% escalated%
summarize() {
  awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
      k = $col["policy"]
      if (!(k in n)) order[++np] = k
      n[k]++
      e2e[k] += $col["e2e_mean_ms"]; p95[k] += $col["e2e_p95_ms"]
      cp[k] += $col["completion_pct"]; acc[k] += $col["accuracy_pct"]
      cost[k] += $col["cost_usd_per_1k"]; mb[k] += $col["mb_up_per_req"]
      sp[k] += $col["split_plans"]; ds[k] += $col["downscale_plans"]; dr[k] += $col["drop_plans"]
      if ("privacy_violations" in col) pv[k] += $col["privacy_violations"]
      if ("cascade_plans" in col) { cs[k] += $col["cascade_plans"]; es[k] += $col["escalated"] }
      rq[k] += $col["requests"]
    }
    END {
      for (j = 1; j <= np; j++) {
        k = order[j]
        printf "%s\t%.1f\t%.0f\t%.2f\t%.2f\t%.4f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", k,
          e2e[k] / n[k], p95[k] / n[k], cp[k] / n[k], acc[k] / n[k], cost[k] / n[k], mb[k] / n[k],
          100 * sp[k] / rq[k], 100 * ds[k] / rq[k], 100 * dr[k] / rq[k], pv[k] / n[k],
          100 * cs[k] / rq[k], 100 * es[k] / rq[k]
      }
    }' "$1"
}

# value of a column (2 e2e, 3 p95, 4 compl, 5 acc, 6 cost) of a policy in a summary
val() { awk -F'\t' -v p="$2" -v c="$3" '$1 == p { print $c }' "$1"; }
# column COL of experiment EXP's row in the targets table ($targets, written below)
tgt() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$targets"; }
# node_share FILE POLICY K -> POLICY's share % of requests at the K-th node of a `ferry sim`
# table (its "share % / util %" lines), mean over the sweep values
node_share() {
  awk -v p="$2" -v k="$3" '$1 == p && $3 == "/" { s += $(3 * k - 1); n++ }
    END { printf "%.0f", n ? s / n : 0 }' "$1"
}
# nodes_of EXP -> the number of nodes of the experiment (line 2 of its table)
nodes_of() { sed -n 2p "$work/$1.txt" | tr -cd '(' | wc -c; }
# range DECIMALS < numbers -> "lo–hi" (or one number when they are equal)
range() {
  sort -g | awk -v d="$1" 'NR == 1 { lo = $1 } { hi = $1 }
    END { l = sprintf("%." d "f", lo); h = sprintf("%." d "f", hi); print (l == h) ? l : l "–" h }'
}

# frontier WORKLOAD EDGE_MODEL CLOUD_MODEL BUDGET_PT -> share of requests a policy that
# knows every request's exact P(correct) on both models can send to the edge while the
# expected completion loss stays within BUDGET_PT (points), serving the requests with
# the smallest gap first. Monte Carlo (200000 draws, fixed seed) over the workload's
# difficulty mixture; capabilities from data/profiles/models.ini.
frontier() {
  awk -v em="$2" -v cm="$3" -v budget="$4" '
    FNR == 1 { file++ }
    file == 1 && /^\[class/ { nc++ }
    file == 1 && nc && /=/ { split($0, kv, /[ \t]*=[ \t]*/); k = kv[1]; v = kv[2]
      if (k == "weight") w[nc] = v; if (k == "difficulty_mean") mu[nc] = v
      if (k == "difficulty_sd") sd[nc] = v; if (k == "skill") sk[nc] = v }
    file == 2 && /^\[model/ { m = $2; sub(/\]$/, "", m) }
    file == 2 && /^cap/ { split($0, kv, /[ \t]*=[ \t]*/); cap[m, kv[1]] = kv[2] }
    END {
      srand(1); tw = 0; for (c = 1; c <= nc; c++) tw += w[c]
      N = 200000; B = 20000
      for (i = 0; i < N; i++) {
        r = rand() * tw; a = 0
        for (c = 1; c <= nc; c++) { a += w[c]; if (r < a) break }
        if (c > nc) c = nc
        u1 = rand(); u2 = rand(); if (u1 < 1e-12) u1 = 1e-12
        d = mu[c] + sd[c] * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2)
        ke = "cap." sk[c]; ce = ((em, ke) in cap) ? cap[em, ke] : cap[em, "cap"]
        cc = ((cm, ke) in cap) ? cap[cm, ke] : cap[cm, "cap"]
        g = 1 / (1 + exp(d - cc)) - 1 / (1 + exp(d - ce)); if (g < 0) g = 0
        b = int(g * B); if (b >= B) b = B - 1; hist[b]++; gs[b] += g
      }
      lim = budget / 100 * N; tot = 0; k = 0
      for (b = 0; b < B; b++) {
        if (tot + gs[b] > lim) { if (hist[b]) k += int((lim - tot) / (gs[b] / hist[b])); break }
        tot += gs[b]; k += hist[b]
      }
      printf "%.1f\n", 100 * k / N
    }' "$1" data/profiles/models.ini
}

# task_prior MODEL TASK -> MGQP's prior for the task from cap.TASK of data/profiles/models.ini
# (docs/predictors.md "Prior": E[sigma(cap - d)] over d ~ N(0, 1.5^2), the same 161-point
# rule as node_cap_accuracy; explicit prior.TASK keys win there, none is used here).
task_prior() {
  awk -v want="$1" -v key="cap.$2" '
    /^\[model/ { m = $2; sub(/\]$/, "", m) }
    m == want && /=/ { split($0, kv, /[ \t]*=[ \t]*/); if (kv[1] == key) cap = kv[2] }
    END {
      for (i = 0; i < 161; i++) {
        z = -8 + 16 * i / 160; w = exp(-0.5 * z * z); if (i == 0 || i == 160) w /= 2
        num += w / (1 + exp(1.5 * z - cap)); den += w
      }
      printf "%.3f\n", num / den
    }' data/profiles/models.ini
}

# frontier_plot -> docs/results/moaoff-frontier.svg: mean latency against completion on
# moaoff-*, every policy of the summary as a point and the trained ferry's δ frontier as a
# line (gnuplot; returns non-zero, and the report has no link, when it is missing)
frontier_plot() {
  command -v gnuplot >/dev/null || return 1
  local n gp="$work/frontier.gp"
  for n in moaoff-vqav2 moaoff-mmbench; do
    awk -F'\t' '$1 != "ferry trained" { gsub(/ /, "-", $1); print $1, $2, $4 }' \
      "$work/$n.sum" >"$work/$n-points.dat"
  done
  cat >"$gp" <<EOF_GP
set terminal svg size 960,460 dynamic font "sans,11" noenhanced
set output "docs/results/moaoff-frontier.svg"
set multiplot layout 1,2
set xlabel "mean latency (ms)"
set ylabel "completion (%)"
set key below font ",9"
set grid
do for [n in "moaoff-vqav2 moaoff-mmbench"] {
  set title n
  plot "$work/".n."-points.dat" using 2:3:1 with labels point pt 7 offset char 0.5,0.5 \
         font ",8" notitle, \
       "$work/".n."-frontier.dat" using 2:3 with linespoints lw 2 pt 5 title "ferry trained, δ 0 … 0.03", \
       "$work/".n."-frontier.dat" using 2:3:1 with labels offset char 0,-1 font ",8" notitle, \
       "$work/".n."-tradeoff.dat" using 2:3 with linespoints lw 2 pt 9 title "ferry, tradeoff 0.5 … 0.1", \
       "$work/".n."-tradeoff-trained.dat" using 2:3 with linespoints lw 2 pt 11 title "ferry trained, tradeoff 0.5 … 0.1", \
       "$work/".n."-tradeoff-trained.dat" using 2:3:1 with labels offset char 0,-1 font ",8" notitle
}
unset multiplot
EOF_GP
  gnuplot "$gp" >/dev/null 2>&1
}

# within_target EXP -> "δ = D: L %" for the δ of the trained ferry's frontier on EXP with
# the lowest latency whose completion stays within 0.3 pt of cloud-only, or "none"
# vs_cloud EXP SUM -> "L DC": the ferry row of summary SUM against EXP's cloud-only, mean
# latency in % and completion in points
vs_cloud() {
  awk -F'\t' -v ce="$(val "$work/$1.sum" cloud-only 2)" -v cc="$(val "$work/$1.sum" cloud-only 4)" \
    '$1 == "ferry" { printf "%+.1f %+.2f\n", 100 * ($2 / ce - 1), $4 - cc }' "$2"
}

within_target() {
  local d best=none bl=0 l dc
  for d in $deltas; do
    read -r l dc < <(vs_cloud "$1" "$work/$1-trained-d$d.sum")
    if awk -v dc="$dc" -v l="$l" -v bl="$bl" -v b="$best" \
         'BEGIN { exit !(dc >= -0.3 && (b == "none" || l < bl)) }'; then
      best="δ = $d: $l % at $dc pt"; bl=$l
    fi
  done
  echo "$best"
}

# The discussion: hand-written, about what the numbers above show and why. The numbers
# it quotes are computed here ($f_vqa, $f_mmb) or come from the generated tables.
discussion() {
  local f_vqa f_mmb
  f_vqa=$(frontier data/workloads/vqav2-like.ini qwen2-vl-2b qwen2.5-vl-7b 0.3)
  f_mmb=$(frontier data/workloads/mmbench-like.ini qwen2-vl-2b qwen2.5-vl-7b 0.3)
  local o_vqa o_mmb v_edge v_cloud
  o_vqa=$(tgt moaoff-vqav2 4)
  o_mmb=$(tgt moaoff-mmbench 4)
  local h_busy_red h_busy_dc h_doc_red h_doc_dc
  h_busy_red=$(tgt heldout-busy-edge 2)
  h_busy_dc=$(tgt heldout-busy-edge 3)
  h_doc_red=$(tgt heldout-docqa 2)
  h_doc_dc=$(tgt heldout-docqa 3)
  local x_vqa x_vqa_dc x_mmb x_mmb_dc x_vqa_ds x_mmb_ds x_het x_het_dc
  x_vqa=$(tgt moaoff-vqav2 9)
  x_vqa_dc=$(tgt moaoff-vqav2 10)
  x_mmb=$(tgt moaoff-mmbench 9)
  x_mmb_dc=$(tgt moaoff-mmbench 10)
  x_het=$(tgt hetero 9)
  x_het_dc=$(tgt hetero 10)
  x_vqa_ds=$(val "$work/moaoff-vqav2.sum" "ferry truth=p" 9)
  x_mmb_ds=$(val "$work/moaoff-mmbench.sum" "ferry truth=p" 9)
  local t_vqa t_vqa_dc t_mmb t_mmb_dc t_het t_het_dc t_vqa_ds t_mmb_ds w_vqa w_mmb
  t_vqa=$(tgt moaoff-vqav2 11)
  t_vqa_dc=$(tgt moaoff-vqav2 12)
  t_mmb=$(tgt moaoff-mmbench 11)
  t_mmb_dc=$(tgt moaoff-mmbench 12)
  t_het=$(tgt hetero 11)
  t_het_dc=$(tgt hetero 12)
  t_vqa_ds=$(val "$work/moaoff-vqav2.sum" "ferry trained" 9)
  t_mmb_ds=$(val "$work/moaoff-mmbench.sum" "ferry trained" 9)
  w_vqa=$(within_target moaoff-vqav2)
  w_mmb=$(within_target moaoff-mmbench)
  # the predictors' scores over every experiment's eval block: "lo–hi" of AUC, ECE and
  # the share inside the 90 % interval (the "all" row)
  # the trained ferry asked for speed: the last (fastest) tradeoff of the table
  local t_fast tf_vqa tf_vqa_dc tf_mmb tf_mmb_dc
  t_fast=${tradeoffs##* }
  read -r tf_vqa tf_vqa_dc < <(vs_cloud moaoff-vqav2 "$work/moaoff-vqav2-trained-t$t_fast.sum")
  read -r tf_mmb tf_mmb_dc < <(vs_cloud moaoff-mmbench "$work/moaoff-mmbench-trained-t$t_fast.sum")
  # the trained ferry's tradeoff rows against qlmio trained: one that is no slower and completes
  # at least as much, or the two rows around qlmio's latency
  local vs_q_vqa vs_q_mmb
  vs_qlmio() {
    awk -v ql="$(val "$work/$1.sum" "qlmio trained" 2)" -v qc="$(val "$work/$1.sum" "qlmio trained" 4)" '
      { t[NR] = $1; l[NR] = $2; c[NR] = $3 }
      $2 <= ql && $3 >= qc && (best == "" || $3 > c[best]) { best = NR }
      END {
        if (best != "") {
          printf "tradeoff %s is faster and completes more (%.1f ms at %.2f %% against %.1f ms at %.2f %%)",
            t[best], l[best], c[best], ql, qc
          exit
        }
        printf "no row is both (against %.1f ms at %.2f %%:", ql, qc
        for (i = 1; i <= NR; i++)
          if ((i < NR && l[i] > ql && l[i + 1] <= ql) || (i > 1 && l[i] <= ql && l[i - 1] > ql))
            printf " tradeoff %s %.1f ms at %.2f %%;", t[i], l[i], c[i]
        printf ")"
      }' "$work/$1-tradeoff-trained.dat" | sed 's/; *)$/)/'
  }
  vs_q_vqa=$(vs_qlmio moaoff-vqav2)
  vs_q_mmb=$(vs_qlmio moaoff-mmbench)
  local p_auc p_ece p_pi evals=()
  for n in "${exps[@]}"; do evals+=("$work/$n.eval.txt"); done
  p_auc=$(awk '/^quality: AUC/ { print $3 }' "${evals[@]}" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }')
  p_ece=$(awk '/^expected calibration error/ { print $4 }' "${evals[@]}" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f–%.3f", lo, hi }')
  p_pi=$(awk '$1 == "all" { print $7 }' "${evals[@]}" | sort -g |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')
  local tr_e tr_c
  summarize "$work/heldout-busy-edge-transfer.csv" >"$work/heldout-busy-edge-transfer.sum"
  tr_e=$(awk -F'\t' -v c="$(val "$work/heldout-busy-edge.sum" cloud-only 2)" \
    '{ printf "%+.1f", 100 * ($2 / c - 1) }' "$work/heldout-busy-edge-transfer.sum")
  tr_c=$(awk -F'\t' -v c="$(val "$work/heldout-busy-edge.sum" cloud-only 4)" \
    '{ printf "%+.2f", $4 - c }' "$work/heldout-busy-edge-transfer.sum")
  local h_busy_t h_busy_tc
  h_busy_t=$(tgt heldout-busy-edge 11)
  h_busy_tc=$(tgt heldout-busy-edge 12)
  local x_doc x_doc_dc k0_e k0_c
  x_doc=$(tgt heldout-docqa 9)
  x_doc_dc=$(tgt heldout-docqa 10)
  summarize "$work/heldout-docqa-exact-k0.csv" >"$work/heldout-docqa-exact-k0.sum"
  k0_e=$(awk -F'\t' -v c="$(val "$work/heldout-docqa.sum" cloud-only 2)" \
    '{ printf "%+.1f", 100 * ($2 / c - 1) }' "$work/heldout-docqa-exact-k0.sum")
  k0_c=$(awk -F'\t' -v c="$(val "$work/heldout-docqa.sum" cloud-only 4)" \
    '{ printf "%+.2f", $4 - c }' "$work/heldout-docqa-exact-k0.sum")
  local h_doc_edge h_doc_cloud
  h_doc_edge=$(val "$work/heldout-docqa.sum" edge-only 4)
  h_doc_cloud=$(val "$work/heldout-docqa.sum" cloud-only 4)
  local p_ocr_edge p_ocr_cloud
  p_ocr_edge=$(task_prior qwen2-vl-2b ocr)
  p_ocr_cloud=$(task_prior qwen2.5-vl-72b ocr)
  v_edge=$("$ferry" sim --nodes | awk '$1 == "edge-3090" { print $8; exit }')
  v_cloud=$("$ferry" sim --nodes | awk '$1 == "cloud-a100" { print $8; exit }')
  # the oracle's share of requests at the edge on moaoff-* (its first node), mean over sweep
  local o_sh_vqa o_sh_mmb
  o_sh_vqa=$(node_share "$work/moaoff-vqav2.txt" oracle 1)
  o_sh_mmb=$(node_share "$work/moaoff-mmbench.txt" oracle 1)
  # ferry's gains where queues and links differ; its lead over qlmio on hetero
  local g_dia g_dia_dc g_load g_load_dc q_het_gap
  g_dia=$(tgt dialogue 2); g_dia_dc=$(tgt dialogue 3)
  g_load=$(tgt load-sweep 2); g_load_dc=$(tgt load-sweep 3)
  q_het_gap=$(awk -F'\t' '{ c[$1] = $4 } END { printf "%.2f", c["ferry"] - c["qlmio"] }' \
    "$work/hetero.sum")
  # the trained ferry's latency reduction as a share of exact predictions' (moaoff-*)
  local r_vqa r_mmb
  r_vqa=$(awk -v t="$t_vqa" -v x="$x_vqa" 'BEGIN { printf "%.0f", 100 * t / x }')
  r_mmb=$(awk -v t="$t_mmb" -v x="$x_mmb" 'BEGIN { printf "%.0f", 100 * t / x }')
  # over every experiment: the plain cascade against cloud-only; perllm's completion as
  # the share of the way from edge-only's to cloud-only's and qlmio's completion loss on
  # the two-node experiments; MILP's end-to-end MAPE (the eval blocks' "all" row)
  local c_slow c_fast c_dc c_esc pl_pos q2_dc m_lo m_hi
  c_slow=0; c_fast=""
  for n in "${exps[@]}"; do
    awk -F'\t' '{ e[$1] = $2 } END { exit !(e["cascade"] > e["cloud-only"]) }' "$work/$n.sum" &&
      c_slow=$((c_slow + 1)) || c_fast="$c_fast${c_fast:+, }\`$n\`"
  done
  c_dc=$(for n in "${exps[@]}"; do
      awk -F'\t' '{ c[$1] = $4 } END { printf "%.1f\n", c["cloud-only"] - c["cascade"] }' "$work/$n.sum"
    done | range 1)
  c_esc=$(for n in "${exps[@]}"; do val "$work/$n.sum" cascade 13; done | range 0)
  pl_pos=$(for n in "${exps[@]}"; do
      [ "$(nodes_of "$n")" = 2 ] || continue
      awk -F'\t' '{ c[$1] = $4 } END {
        printf "%.0f\n", 100 * (c["perllm"] - c["edge-only"]) / (c["cloud-only"] - c["edge-only"]) }' \
        "$work/$n.sum"
    done | range 0)
  q2_dc=$(for n in "${exps[@]}"; do
      [ "$(nodes_of "$n")" = 2 ] || continue
      awk -F'\t' '{ c[$1] = $4 } END { printf "%.0f\n", c["cloud-only"] - c["qlmio"] }' "$work/$n.sum"
    done | range 0)
  local q_het q_het_dc
  q_het=$(awk -F'\t' '{ e[$1] = $2 } END { printf "%.0f", 100 * (1 - e["qlmio"] / e["cloud-only"]) }' \
    "$work/hetero.sum")
  q_het_dc=$(awk -F'\t' '{ c[$1] = $4 } END { printf "%.2f", c["cloud-only"] - c["qlmio"] }' \
    "$work/hetero.sum")
  m_lo=$(for n in "${exps[@]}"; do
      awk -v n="$n" '$1 == "all" { print $3, n }' "$work/$n.eval.txt"; done | sort -g | head -n 1)
  m_hi=$(for n in "${exps[@]}"; do
      awk -v n="$n" '$1 == "all" { print $3, n }' "$work/$n.eval.txt"; done | sort -g | tail -n 1)
  local a_edge a_cloud m_turns
  a_edge=$(awk -v a="$(val "$work/moaoff-vqav2.sum" edge-only 5)" 'BEGIN { printf "%.0f", a }')
  a_cloud=$(awk -v a="$(val "$work/moaoff-vqav2.sum" cloud-only 5)" 'BEGIN { printf "%.0f", a }')
  m_turns=$(grep -o -m 1 '[0-9]* turns' "$work/m4a1.txt" | cut -d' ' -f1 || true)
  local mo_sh_vqa mo_sh_mmb
  mo_sh_vqa=$(node_share "$work/moaoff-vqav2.txt" moa-off 1)
  mo_sh_mmb=$(node_share "$work/moaoff-mmbench.txt" moa-off 1)
  local c_not=""
  c_fast=$(sed 's/\(.*\), /\1 and /' <<<"$c_fast")
  [ -n "$c_fast" ] && c_not="
(not on $c_fast, where the cloud is slow enough that the requests answered at the edge
save more than the escalations cost)"
  local b_cloud
  b_cloud=$(node_share "$work/heldout-busy-edge.txt" ferry 3)
  cat <<EOF_DISCUSSION
## Discussion

**The ≥ 60 % target on \`moaoff-*\` is beyond even the oracle here.** The clairvoyant
oracle, which knows every outcome in advance, cuts the mean latency against cloud-only by
${o_vqa#-} % (VQAv2-like) and ${o_mmb#-} % (MMBench-like) (targets table). In this simulator's
physics the edge is not much faster than the cloud: the RTX 3090 runs Qwen2-VL's vision
encoder at ${v_edge} ms per visual token against the A100's ${v_cloud} ms (both derived from
the devices' FLOP/s, data/profiles/devices.ini), which offsets its faster decoding and its
LAN link, so \`edge-only\` is about as slow as \`cloud-only\` at these experiments' load.
MoA-Off's > 50 % comes from its own testbed, whose latency breakdown the paper gives and we
do not model; we did not change the profiles to make the target reachable.

**What a non-clairvoyant policy can do on the MoA-Off setup.** The simulator draws one
latent difficulty per request and one uniform per request, so the 2B edge model and the
7B cloud model fail on correlated requests (docs/simulator.md). The oracle sees the
realised outcome and sends every request the edge happens to answer correctly to the
edge: ${o_sh_vqa} % (VQAv2-like) and ${o_sh_mmb} % (MMBench-like) of the traffic, at zero
completion loss. A policy that cannot see the
outcome can at best know each request's probability of a correct answer on both models.
With the shipped capabilities (Qwen2-VL-2B ≈ ${a_edge} %, Qwen2.5-VL-7B ≈ ${a_cloud} % on the
VQAv2-like mix: edge-only's and cloud-only's accuracy) the expected gap
between the two models is large for most difficulties, and even a
policy that knew every request's exact P(correct) could move only **${f_vqa} %**
(VQAv2-like) or **${f_mmb} %** (MMBench-like) of the requests to the edge before losing
0.3 pt of completion (computed by this script: Monte Carlo over the workload's difficulty
mixture, requests with the smallest gap first). Moving a share f of the requests cannot
cut the mean latency by much more than f, even if the edge answered instantly. The issue's
target for \`ferry\` on \`moaoff-*\` (≥ 60 % lower latency than cloud-only within 0.3 pt) and
"≥ 90 % of the oracle's reduction at equal completion" are therefore out of reach of any
causal policy in this simulator. ferry's reductions on \`moaoff-*\` (targets table) stay
below that bound, at a completion loss under one point; a better MGQP could move them
towards it, not past it. We did not change the simulator or the targets to make them
meet: the
targets are **not met** on \`moaoff-*\`.

**How much is prediction error.** The bound above counts the choice of node only.
ferry's own rule fed exact predictions (\`ferry truth=p\`, targets table) goes further:
${x_vqa#-} % (VQAv2-like) and ${x_mmb#-} % (MMBench-like) lower latency than cloud-only at
${x_vqa_dc} / ${x_mmb_dc} pt, because it also downscales the images of the requests whose
answer the smaller image barely changes (${x_vqa_ds} % / ${x_mmb_ds} % of the requests) — it
trades the completion δ allows, as the learned ferry does, but spends it where it buys the
most time. The online ferry does not downscale at all: MGQP learns what a smaller image
costs a request only from outcomes of such plans, and ferry does not try them on users'
images before it has that evidence (min_obs, docs/policies.md). Trained offline on a
benchmark trace that holds those outcomes (\`ferry trained\`, as QLMIO trains its
predictors on MIOBench), the same rule downscales ${t_vqa_ds} % / ${t_mmb_ds} % of the
requests and cuts the latency by ${t_vqa#-} % / ${t_mmb#-} % at ${t_vqa_dc} / ${t_mmb_dc} pt,
${r_vqa} % / ${r_mmb} % of what exact predictions give. With the default δ that is more completion than
the target's 0.3 pt allows; the trained ferry's frontier (targets section) stays within it
at ${w_vqa} (VQAv2-like) and ${w_mmb} (MMBench-like). Asked for speed (every request with
tradeoff ${t_fast}: the tradeoff table), it does cut the latency by ${tf_vqa#-} % / ${tf_mmb#-} %, at
${tf_vqa_dc} / ${tf_mmb_dc} pt: lower latency is a point on the same frontier, paid in completion.
Against \`qlmio trained\` (the same trained bank under QLMIO's rule), the trained ferry's
tradeoff rows: VQAv2-like, ${vs_q_vqa}; MMBench-like, ${vs_q_mmb}. On \`hetero\` exact
predictions turn ferry's loss into a gain (${x_het} % at ${x_het_dc} pt against a cloud-only
that breaks privacy), and so do trained ones (${t_het} % at ${t_het_dc} pt): online, ferry's
quality estimates overrate the paid API against the 7B cloud model for most requests
(from its own few outcomes per tier, their features cannot tell which requests the 7B
model answers as well), so it queues on the API during bursts; MILP's latencies there are
close to the truth. docs/policies.md ("A known weakness") has the measurements and the
online fixes we tried and rejected because each cost completion elsewhere.

**Where ferry gains, and where it loses.** Latency differences that a policy *can*
predict are queues, links and load: on \`load-sweep\` (cloud-only saturates at high
rates) and \`dialogue\` (per-turn SLOs that the cloud API misses over its WiFi link)
ferry cuts the mean latency against cloud-only by ${g_load#-} % and ${g_dia#-} % (targets
table), at ${g_load_dc} pt of completion on \`load-sweep\`; on \`dialogue\` it completes
more requests than cloud-only (${g_dia_dc} pt: the SLO counts in completion) at lower cost. On
\`hetero\` it is slower than cloud-only (which breaks privacy: the privacy column) and
than \`qlmio\`, which completes ${q_het_gap} pt less: ferry keeps sending requests to the paid
API, whose bursts (MMPP arrivals) build prefill backlogs, because MGQP cannot tell
which requests the 7B cloud model answers as well (the previous paragraph; with exact
predictions ferry is faster than both). A risk-averse variant (\`zl\` > 0:
latency plus predicted standard deviations) avoids the bursts but gives up completion,
so it is off by default. Its mechanisms each showed up in the numbers while we built
it: without the latency-relaxed target (kappa) every request of an earlier, busier
\`hetero\` queued for seconds at the best-quality node; without the mean-based fallback
one seed locked the cloud out after a few unlucky early outcomes; with one independent
MGQP per node instead of shared weights, ferry was about a quarter slower on \`hetero\`.

**Cascades.** \`cascade\` (answer at the least-loaded edge device, escalate to the best
cloud model below a confidence of 0.6) and ferry's cascade plans run end to end in the
simulator and the gateway (the emulator reports its confidence through OpenAI
\`logprobs\`). On the shipped experiments the plain cascade completes ${c_dc} pt fewer
requests than cloud-only and is slower on ${c_slow} of ${#exps[@]}${c_not}: every escalated
request pays the edge's time first, and with the default confidence model its threshold
of 0.6 escalates ${c_esc} % of the requests.
ferry adopts a cascade only when its predicted quality matches the best plan's,
which at the default separation almost never happens (cascade column); the table "Cascades
and the confidence assumption" shows how its use and its latency move when the models'
confidence is assumed more informative. A real deployment measures this: the gateway
learns the confidence distribution from the backend's own logprobs.

**Held-out experiments.** The \`heldout-*\` rows test ferry's defaults where nobody tuned
them. On \`heldout-busy-edge\` ferry behaves as on the MoA-Off pair: it keeps ${b_cloud} % of the
requests in the cloud (${h_busy_red} % latency, ${h_busy_dc} pt completion against cloud-only),
safe but leaving most of the oracle's gain unused. Trained offline it moves: with its
own benchmark trace ${h_busy_t} % at ${h_busy_tc} pt, and with the bank trained for
\`moaoff-vqav2\` (two of these three nodes, a lighter load; the Orin shares the trained
quality of the 2B model it runs, its latency starts from its profile)
${tr_e} % at ${tr_c} pt — a bank from another setup of the same models carries over.
On \`heldout-docqa\` (OCR on full
pages against a 72B model) it gives up ${h_doc_dc#-} pt of completion for ${h_doc_red#-} %
lower latency. This scenario exposed MGQP's old prior, one number per role (edge 0.62,
cloud 0.77), which overrated the 2B model on OCR: ferry sent it work until outcomes
corrected the estimate and lost 5.5 pt of completion against cloud-only. MGQP now starts
from a prior per model and task (docs/predictors.md "Prior", which has both runs): from
the profiles' \`cap.ocr\` over a reference difficulty taken from the other workloads,
${p_ocr_edge} for the 2B model and ${p_ocr_cloud} for the 72B model, near the ${h_doc_edge} % and
${h_doc_cloud} % they complete here (edge-only and cloud-only rows). That is each model's mean
accuracy per task, which a deployer reads off model cards; here it comes from the
simulator's own capabilities, so it is better informed than a real deployment's would
be. The change was made because of this row, so the row no longer tests it blind
(nothing was tuned on it). Neither target is met there. Exact predictions do not save
this row either (\`ferry truth=p\`: ${x_doc} % at ${x_doc_dc} pt): the loss is the rule's
own price of latency — kappa (0.1 per second saved) lets a plan that is seconds faster
than the 72B model's fall that much below it (with kappa = 0 and exact predictions:
${k0_e} % latency at ${k0_c} pt) — so a user who wants the cloud's completion on slow,
strong models sets \`kappa\` (or \`min_quality\`) accordingly.

**QLMIO.** \`qlmio\` (MGQP + MILP, w = 0.5) reaches latency reductions of the size the
paper reports (up to 58.14 %) against cloud-only, but on every two-node experiment not
at the cloud-only completion rate: there it gives up ${q2_dc} points of completion (the
"QLMIO claim" lines above). On \`hetero\`, with a choice among three cloud tiers, it
comes close to the claim (${q_het} % faster at ${q_het_dc} pt less, against a
cloud-only that breaks privacy). The paper measured its claim on its own testbed, models
and data, which we do not have; on the two-node setups the bound above applies to it as
to ferry.

**MoA-Off.** Our \`moa-off\` (τ = 0.5 for both modalities) does **not** reproduce the
paper's "accuracy within 0.4 pt of cloud-only" nor its latency gains: with the complexity
scores of the shipped image pool most requests fall below τ and go to the single RTX 3090
(${mo_sh_vqa} % / ${mo_sh_mmb} % of the requests on \`moaoff-vqav2\` / \`moaoff-mmbench\`),
which then queues (its latency exceeds cloud-only's), and its accuracy is that of the 2B
model on most requests. MoA-Off's result needs complexity scores that separate the
requests the small model answers as well as the large one; in our simulator the scores
are noisy functions of the latent difficulty (workload \`feature_noise\`) and the two
models' gap is large. The split plan (image described in
the cloud, text answered at the edge) is implemented end to end and used by moa-off;
it pays an extra cloud round trip and, in the simulator's quality model, a description
penalty, so it rarely wins for ferry.

**PerLLM.** \`perllm\`'s CS-UCB learns to balance latency across servers (it explores
every arm, then favours the fastest per task class) but ignores quality, so its
completion sits between edge-only's and cloud-only's: ${pl_pos} % of the way from the one
to the other on the two-node experiments.

**LCIO and M4A1.** On the real M4A1 dialogues the constrained learners keep every
held-out dialogue within LCIO's 30 s / 0.05 USD budgets while cloud-only overruns some,
and they earn more reward per dialogue than local, cloud and random, which agrees with
LCIO's qualitative result (RC-A2C: more reward than the baselines at zero budget
violations). \`lcio\` here is RC-A2C as LCIO describes it — an advantage actor-critic on
the budget-augmented observation with a Lagrangian-penalised reward and dual ascent on
the multipliers (hyper-parameters and their sources in docs/policies.md); \`lcio-tab\` is
our earlier tabular primal-dual Q-learner. With the evaluation budgets the multipliers
end near zero (last line of the block): on these dialogues the budgets are rarely tight.
Trained with LCIO's randomly drawn per-episode budgets instead, the multipliers climb on
the tiny ones and the policy collapses towards local (docs/policies.md). The outcome of
unlogged actions is LCIO's kNN over ${m_turns:-the} logged turns, so the numbers are not comparable
to the paper's (which the repository reports on synthetic data). In the simulator the
actor-critic (\`lcio\` learner=a2c) completes 2.4–5.6 points fewer requests than the
primal-dual bandit (3 seeds, re-run 2026-12-07), which therefore stays the simulator's
default (docs/policies.md).
\`ferry\`'s M4A1 variant learns a model of the environment instead of a policy: the
response of each action in each exact observed history (LCIO's observation: the last five
turns' actions and tasks), from exploration on the training dialogues, and it looks one
turn ahead with it (the next task from the training dialogues' task transitions); it
takes the action with the best lower-confidence reward now plus the expected best reward
of the next turn, within a paced share of the remaining budgets. On the reported splits
it earns more reward per dialogue than both lcio learners, with a larger spread over
seeds, and stays within every budget; it spends more of them (latency and cost columns).
Part of this is the replay itself: its outcome model is a deterministic kNN over
(history, action), which a table keyed by the exact history learns exactly where it has
explored; on live traffic responses are noisy and only the lower confidence bound
guards against that (docs/policies.md gives the ablation). MGQP trained on the
logged scores ranks held-out turns clearly better than its prior (AUC in the block), from
the question text (the same text features as the gateway's), task, node and views;
without the text the AUC is lower, so the text carries signal of its own.

**Predictors.** On simulator traces MGQP reaches an AUC of $p_auc with an expected
calibration error of $p_ece, and $p_pi % of the held-out outcomes fall inside MILP's
predicted 90 % interval (blocks above; the interval is that of the model at the end of
its training trace, which forgets: docs/predictors.md). MILP's end-to-end MAPE ranges
from ${m_lo% *} % (\`${m_lo#* }\`) to ${m_hi% *} % (\`${m_hi#* }\`). In overload
(\`load-sweep\`) and under bursts the simulator's
chunked-prefill backlog is only partly visible in the node state the predictor sees
(running, queued, EWMA TTFT). Adding the two congestion regressors to the vision and
prefill parts cut the \`load-sweep\` MAPE several-fold while we built it; what remains is
the main limit of ferry on bursty and overloaded experiments.
EOF_DISCUSSION
}

md=docs/results.md
{
  echo "# Results: the reproduction report"
  echo
  echo "Regenerated by \`scripts/results.sh\` (this file and \`docs/results/*/*.svg\`); do not edit"
  echo "by hand. Every number below comes from \`ferry sim\` runs of the shipped experiments"
  echo "(\`data/experiments/*.ini\`, documented in docs/simulator.md) with $seeds seeds each, from"
  echo "\`ferry train\`/\`ferry eval\` on a trace of each experiment, and from \`ferry bench m4a1\`"
  echo "on the real M4A1 sample. Tables show the mean over seeds and over the experiment's"
  echo "sweep values (per-value tables with 95 % confidence intervals: \`ferry sim EXPERIMENT"
  echo "--seeds $seeds\`). Policies: docs/policies.md. Predictors: docs/predictors.md."
  echo
  echo "Columns: mean and p95 end-to-end latency (ms), completion rate (answer correct and,"
  echo "when the request has one, within its SLO), accuracy, cost (USD per 1000 requests),"
  echo "MB uploaded per request, the share of requests served with split / downscale /"
  echo "drop plans, the share served by a cascade (answered at the edge first) and the share"
  echo "escalated from the edge to the cloud, and edge-only requests sent to the cloud."
  echo
  echo "**Caveat on tuning.** The older defaults of \`ferry\` (z, δ, kappa) were chosen by"
  echo "running the six experiments below other than the \`heldout-*\` ones with their default"
  echo "seeds; its cascade and image-evidence defaults on seeds 101–102 only. The two"
  echo "\`heldout-*\` experiments were written after every default was fixed and were used to"
  echo "tune nothing: they are the"
  echo "honest test of whether ferry's defaults generalise. The baselines run with their"
  echo "papers' or our documented defaults, untuned. The \`trained\` rows (added after the"
  echo "defaults were fixed) use the same defaults with a bank trained on a run of seed"
  echo "$train_seed; nothing was tuned on them."
} >"$md"

targets=$work/targets.tsv
: >"$targets"
for n in "${exps[@]}"; do
  s=$work/$n.sum
  summarize "$work/$n.csv" >"$s"
  summarize "$work/$n-exact.csv" | sed 's/^ferry\t/ferry truth=p\t/' >>"$s"
  summarize "$work/$n-trained.csv" | sed 's/^ferry\t/ferry trained\t/; s/^qlmio\t/qlmio trained\t/' >>"$s"
  desc=$(awk -F' = ' '$1 == "description" { print $2; exit }' "data/experiments/$n.ini")
  nodes=$(sed -n 2p "$work/$n.txt")
  sweep=$(awk -F' = ' '/^\[sweep\]/ { f = 1 } f && $1 == "key" { k = $2 } f && $1 == "values" { print k " ∈ {" $2 "}"; exit }' \
    "data/experiments/$n.ini")
  {
    echo
    echo "## $n"
    echo
    echo "$desc. ${nodes}.${sweep:+ Sweep: $sweep.}"
    echo
    echo "| policy | mean ms | p95 ms | completion % | accuracy % | \$/1k | MB/req | split % | downscale % | drop % | cascade % | escalated % | privacy violations/run |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ b = ($1 == "ferry") ? "**" : ""; printf "| %s%s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", b, $1, b, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $11 }' "$s"
    echo
  } >>"$md"
  # checks against cloud-only and the oracle, and domination
  awk -F'\t' -v n="$n" '
    { e[$1] = $2; c[$1] = $4; a[$1] = $5; u[$1] = $6; v[$1] = $11; pol[++np] = $1 }
    END {
      f = "ferry"; cl = "cloud-only"; o = "oracle"; x = "ferry truth=p"; t = "ferry trained"
      red = 100 * (1 - e[f] / e[cl]); dc = c[f] - c[cl]
      ored = e[cl] - e[o]; share = ored > 0 ? 100 * (e[cl] - e[f]) / ored : 0
      tshare = ored > 0 ? 100 * (e[cl] - e[t]) / ored : 0
      # the online ferry against the online policies; the trained one against all
      dom = dominators(f, "qlmio trained"); tdom = dominators(t, "")
      printf "%s\t%+.1f\t%+.2f\t%+.1f\t%+.2f\t%.1f\t%s\t%.1f\t%+.1f\t%+.2f\t%+.1f\t%+.2f\t%.1f\t%s\n",
        n, -red, dc, -100 * (1 - e[o] / e[cl]), c[o] - c[cl], share, dom, v[cl],
        -100 * (1 - e[x] / e[cl]), c[x] - c[cl], -100 * (1 - e[t] / e[cl]), c[t] - c[cl],
        tshare, tdom
    }
    # the policies (but the ferry variants, the oracle and `skip`) that dominate policy f
    # on latency, completion and cost without more privacy violations
    function dominators(f, skip,    i, p, d) {
      d = ""
      for (i = 1; i <= np; i++) {
        p = pol[i]
        if (p == "oracle" || p == skip || p ~ /^ferry/) continue
        if (v[p] > v[f]) continue  # breaking privacy = edge-only is not an admissible win
        if (e[p] <= e[f] && c[p] >= c[f] && u[p] <= u[f] + 1e-9 &&
            (e[p] < 0.99 * e[f] || c[p] > c[f] + 0.1 || u[p] < 0.99 * u[f] - 1e-9))
          d = d (d == "" ? "" : ", ") p
      }
      return d == "" ? "none" : d
    }' "$s" >>"$targets"
  t=$(tail -n 1 "$targets")
  IFS=$'\t' read -r _ red dc ored odc share dom clv xred xdc tred tdc tshare tdom <<<"$t"
  {
    echo "- ferry vs cloud-only: mean latency ${red} %, completion ${dc} pt; the oracle:"
    echo "  ${ored} % at ${odc} pt. ferry reaches ${share} % of the oracle's latency reduction."
    echo "  ferry's rule with exact predictions (\`ferry truth=p\`, not a clairvoyant): ${xred} %"
    echo "  at ${xdc} pt."
    if [ "$clv" != "0.0" ]; then
      echo "  cloud-only breaks privacy here (${clv} edge-only requests per run sent to the cloud)."
    fi
    echo "- ferry with predictors trained offline (\`ferry trained\`: on a counterfactual trace"
    echo "  of seed $train_seed with every node and image plan): ${tred} % at ${tdc} pt, ${tshare} % of"
    echo "  the oracle's reduction."
    echo "- Policies (oracle aside) that dominate ferry on latency, completion and cost without"
    echo "  more privacy violations: ${dom} (online policies); ferry trained: ${tdom}."
    if [[ $n == moaoff-* ]]; then
      mo_a=$(val "$s" moa-off 5); cl_a=$(val "$s" cloud-only 5)
      mo_e=$(val "$s" moa-off 2); cl_e=$(val "$s" cloud-only 2); pl_e=$(val "$s" perllm 2)
      awk -v ma="$mo_a" -v ca="$cl_a" -v me="$mo_e" -v ce="$cl_e" -v pe="$pl_e" 'BEGIN {
        printf "- MoA-Off claims (accuracy within 0.4 pt of cloud-only; > 30 %% lower latency than\n"
        printf "  PerLLM; > 50 %% lower than cloud-only): here moa-off accuracy %+.2f pt vs cloud-only,\n", ma - ca
        printf "  latency %.1f %% vs perllm and %.1f %% vs cloud-only (negative = lower).\n",
          100 * (me / pe - 1), 100 * (me / ce - 1) }' >>"$md"
    fi
    q_e=$(val "$s" qlmio 2); q_c=$(val "$s" qlmio 4); cl_e=$(val "$s" cloud-only 2); cl_c=$(val "$s" cloud-only 4)
    awk -v qe="$q_e" -v qc="$q_c" -v ce="$cl_e" -v cc="$cl_c" 'BEGIN {
      printf "- QLMIO claim (up to 58.14 %% lower latency at the cloud-only completion rate): qlmio\n"
      printf "  %.1f %% latency vs cloud-only at %+.2f pt completion.\n", 100 * (qe / ce - 1), qc - cc }' >>"$md"
    echo
    echo "Predictors on a held-out 20 % (by dialogue) of a counterfactual trace of ferry's run"
    echo "(every request on every node; \`ferry train\`/\`eval --profiles data/profiles\`,"
    echo "untrained priors in parentheses; quality's from the profiles per task):"
    echo
    echo '```'
    grep -E '^latency|^  all |^quality:|^expected calibration' "$work/$n.eval.txt" || echo "(no evaluation)"
    echo '```'
    svgs=$(ls "docs/results/$n" 2>/dev/null | grep -E '\.svg$' || true)
    if [ -n "$svgs" ]; then
      echo
      printf 'Plots:'
      for f in $svgs; do printf ' [%s](results/%s/%s)' "${f%.svg}" "$n" "$f"; done
      echo
    fi
  } >>"$md"
done

{
  echo
  echo "## M4A1 replay (real dialogues)"
  echo
  echo "\`ferry bench m4a1 $m4a1\` — LCIO's environment over the 100 logged dialogues of the"
  echo "public M4A1 sample (docs/policies.md \"lcio\", src/pred/m4a1.h). Quality of actions the"
  echo "log does not contain comes from LCIO's kNN over the logged turns (k = 5), not from a"
  echo "measurement; latency and cost from LCIO's TX2 + wired tables. Reward per dialogue is"
  echo "the sum of LCIO's per-turn reward (resp + assoc/3 − lat/3 − cost/3, normalised terms;"
  echo "0 for a step past a budget). Held out: 20 % of the dialogues, 3 splits/seeds."
  echo
  echo '```'
  cat "$work/m4a1.txt"
  echo '```'
} >>"$md"

{
  echo
  echo "## Cascades and the confidence assumption"
  echo
  echo "A cascade answers at the edge and escalates to the cloud when the edge answer's"
  echo "confidence is low. How much it can gain depends on how well a model's confidence"
  echo "separates its right answers from its wrong ones, which the simulator takes as an"
  echo "assumption (\`[quality] confidence_sep\`, default 1: AUC 0.76 at a fixed P(correct);"
  echo "docs/simulator.md). ferry (default parameters) against cloud-only with the separation"
  echo "varied, $seeds seeds, mean over the sweep:"
  echo
  echo "| experiment | confidence_sep | ferry mean ms | ferry completion % | cascade % | escalated % | cloud-only mean ms | cloud-only completion % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for n in moaoff-vqav2 dialogue hetero; do
    for sep in 0 1 2 4; do
      summarize "$work/sep-$n-$sep.csv" >"$work/sep-$n-$sep.sum"
      awk -F'\t' -v n="$n" -v sep="$sep" '{ e[$1] = $2; c[$1] = $4; cs[$1] = $12; es[$1] = $13 }
        END { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", n, sep, e["ferry"], c["ferry"],
              cs["ferry"], es["ferry"], e["cloud-only"], c["cloud-only"] }' "$work/sep-$n-$sep.sum"
    done
  done
} >>"$md"

{
  echo
  echo "## Targets of issue 4"
  echo
  echo "| experiment | ferry latency vs cloud-only | completion Δ pt | oracle latency vs cloud-only | oracle completion Δ pt | share of oracle's reduction % | dominated by | ferry truth=p latency | ferry truth=p completion Δ pt | ferry trained latency | ferry trained completion Δ pt | ferry trained: share of oracle's reduction % | ferry trained dominated by |"
  echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
  awk -F'\t' '{ printf "| %s | %s %% | %s | %s %% | %s | %s | %s | %s %% | %s | %s %% | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $9, $10, $11, $12, $13, $14 }' "$targets"
  echo
  # the issue's targets, counted over the table (decision time: docs/benchmarks.md)
  awk -F'\t' '
    function mark(ok) { return ok ? "met" : "not met" }
    function moa(red, dc, n) { return n ~ /^moaoff-/ && red <= -60 && dc >= -0.3 }
    {
      ne++; moa_n += $1 ~ /^moaoff-/
      nd += $7 == "none"; ndt += $14 == "none"
      m60 += moa($2, $3, $1); m60t += moa($11, $12, $1)
      if ($6 >= 90 && $3 >= $5 - 0.3) { s90++; l90 = l90 (l90 == "" ? "" : ", ") $1 }
      if ($13 >= 90 && $12 >= $5 - 0.3) { s90t++; l90t = l90t (l90t == "" ? "" : ", ") $1 }
    }
    END {
      printf "Targets, counted over the table: **not dominated** by another policy — ferry on %d of %d\n", nd, ne
      printf "experiments, ferry trained on %d of %d (%s); **≥ 60 %% lower latency than cloud-only within\n", ndt, ne, mark(nd == ne)
      printf "0.3 pt on moaoff-\\***: %d of %d (trained: %d) (%s); **≥ 90 %% of the oracle'"'"'s reduction with\n", m60, moa_n, m60t, mark(m60 == moa_n)
      printf "completion within 0.3 pt of the oracle'"'"'s**: %d of %d (%s), trained %d of %d (%s) (%s).\n",
        s90, ne, s90 ? l90 : "none", s90t, ne, s90t ? l90t : "none", mark(s90 == ne)
    }' "$targets"
  echo "Decision time (the issue's target: < 20 µs median for ferry, 8 nodes, up to 4 plans each;"
  echo "met) is a wall-clock measurement and lives in docs/benchmarks.md (\`bash"
  echo "bench/bench-decide.sh\`), not here."
  echo
  echo "\`ferry truth=p\` is ferry's own rule (same δ and kappa) fed the simulator's true"
  echo "P(correct) and latency of every plan instead of MGQP's and MILP's predictions (no"
  echo "cascades: their P(correct) depends on the realised confidence). It is not a target;"
  echo "it shows how much of the gap to the oracle is prediction error and how much is the"
  echo "rule and what a causal policy cannot know."
  echo
  echo "\`ferry trained\` and \`qlmio trained\` (in the experiments' tables) start from"
  echo "predictors trained offline, as QLMIO trains MGQP and MILP on its benchmark (MIOBench):"
  echo "\`ferry train --holdout 0\` on a \`ferry sim --trace --counterfactual-plans\` run of the"
  echo "same experiment with seed $train_seed (not one of the reported seeds), whose records hold every"
  echo "request's outcome on every node with its images kept, downscaled to 448 px and dropped;"
  echo "they go on learning online. The rows without the suffix learn from nothing but their"
  echo "own outcomes, from the profiles' priors."
  echo
  echo "The trained ferry's frontier on \`moaoff-*\`: δ is the quality (probability) below the best"
  echo "plan's that it accepts for a faster plan (default 0.03), $seeds seeds, mean over the sweep:"
  echo
  echo "| experiment | δ | latency vs cloud-only | completion Δ pt | downscale % |"
  echo "|---|---:|---:|---:|---:|"
  for n in moaoff-vqav2 moaoff-mmbench; do
    : >"$work/$n-frontier.dat"
    for d in $deltas; do
      summarize "$work/$n-trained-d$d.csv" >"$work/$n-trained-d$d.sum"
      awk -F'\t' -v d="$d" '$1 == "ferry" { print d, $2, $4 }' "$work/$n-trained-d$d.sum" \
        >>"$work/$n-frontier.dat"
      awk -F'\t' -v n="$n" -v d="$d" -v ce="$(val "$work/$n.sum" cloud-only 2)" \
        -v cc="$(val "$work/$n.sum" cloud-only 4)" '$1 == "ferry" {
          printf "| %s | %s | %+.1f %% | %+.2f | %s |\n", n, d, 100 * ($2 / ce - 1), $4 - cc, $9 }' \
        "$work/$n-trained-d$d.sum"
    done
  done
  echo
  echo "The requests' own tradeoff on \`moaoff-*\` (docs/request.md: 0 = fastest answer, 1 = best"
  echo "quality; ferry scales its price of quality by the odds (1 − t)/t, so 0.5 is its default"
  echo "rule), every request of the run with the same value, $seeds seeds, mean over the sweep:"
  echo
  echo "| experiment | tradeoff | ferry latency vs cloud-only | completion Δ pt | ferry trained latency | completion Δ pt | downscale % |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for n in moaoff-vqav2 moaoff-mmbench; do
    : >"$work/$n-tradeoff.dat"
    : >"$work/$n-tradeoff-trained.dat"
    for t in $tradeoffs; do
      summarize "$work/$n-t$t.csv" >"$work/$n-t$t.sum"
      summarize "$work/$n-trained-t$t.csv" >"$work/$n-trained-t$t.sum"
      awk -F'\t' -v t="$t" '$1 == "ferry" { print t, $2, $4 }' "$work/$n-t$t.sum" \
        >>"$work/$n-tradeoff.dat"
      awk -F'\t' -v t="$t" '$1 == "ferry" { print t, $2, $4 }' "$work/$n-trained-t$t.sum" \
        >>"$work/$n-tradeoff-trained.dat"
      paste "$work/$n-t$t.sum" "$work/$n-trained-t$t.sum" |
        awk -F'\t' -v n="$n" -v t="$t" -v ce="$(val "$work/$n.sum" cloud-only 2)" \
          -v cc="$(val "$work/$n.sum" cloud-only 4)" -v k="$(head -1 "$work/$n-t$t.sum" | awk -F'\t' '{ print NF }')" \
          '$1 == "ferry" { printf "| %s | %s | %+.1f %% | %+.2f | %+.1f %% | %+.2f | %s |\n", n, t,
             100 * ($2 / ce - 1), $4 - cc, 100 * ($(k + 2) / ce - 1), $(k + 4) - cc, $(k + 9) }'
    done
  done
  if frontier_plot; then
    echo
    echo "Plot: [the trained ferry's frontiers against the other policies](results/moaoff-frontier.svg)"
  fi
  echo
  discussion
} >>"$md"
echo "results: wrote $md" >&2
