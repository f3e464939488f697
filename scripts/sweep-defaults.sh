#!/usr/bin/env bash
# Measures the default training recipe and the default linear probe on Fashion-MNIST learning
# curves (the user guide's "How long a run trains" table): EfficientNet-Lite0 features, the first
# N training images of each class, the 10,000 test images, a few seeds. Runs outside CI: each
# InfoDisent run takes minutes. Every run folder is reused when it is there, so a killed sweep
# resumes. Prints one JSON line per run, then the table.
#
#   scripts/sweep-defaults.sh [PER_CLASS...]   (default: 30 100 1000; `all`: every training
#                                              image, a 70,000-image cache; SEEDS="0 1 2")
#   CACHE=DIR NAME=parts scripts/sweep-defaults.sh all   (another cache, every training image)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/infodisent}
OUT=${OUT:-runs/sweep}
SEEDS=${SEEDS:-0 1 2}
ROWS=("${@:-30 100 1000}")
ROWS=(${ROWS[@]})
NAME=${NAME:-fm}
[[ -x $BIN ]] || cargo build --release -p infodisent-cli
# The cache a row trains on: the given one, else Fashion-MNIST's first 1,000 images per class
# for the numbered rows and every image for `all` (extracted here; a finished cache is reused).
cache_for() {
  if [[ -n ${CACHE:-} ]]; then echo "$CACHE"; return; fi
  local dir=$OUT/fm1000 limit=(--limit-per-class 1000)
  [[ $1 == all ]] && dir=$OUT/fmfull limit=()
  "$BIN" extract --data fashion-mnist "${limit[@]}" --cache "$dir" >/dev/null
  echo "$dir"
}
# Every run appends its line; the table reads the newest line of each row and seed.
lines=$OUT/runs-$NAME.jsonl
for n in "${ROWS[@]}"; do
  cache=$(cache_for "$n")
  for seed in $SEEDS; do
    head=$OUT/$NAME-pc$n-s$seed-infodisent
    probe=$OUT/$NAME-pc$n-s$seed-probe
    limit=(--limit-per-class "$n"); [[ $n == all ]] && limit=()
    for run in "$head" "$probe"; do
      kind=infodisent; [[ $run == *probe ]] && kind=linear-probe
      if [[ ! -f $run/summary.json ]]; then
        # Seconds add up over a run that failed or was stopped and then resumed.
        start=$(date +%s.%N) before=$(cat "$run/seconds" 2>/dev/null || echo 0) rc=0
        "$BIN" train --cache "$cache" --out "$run" --kind "$kind" "${limit[@]}" \
          --seed "$seed" $([[ -f $run/checkpoint.safetensors ]] && echo --resume) >/dev/null || rc=$?
        echo "$before + $(date +%s.%N) - $start" | bc >"$run/seconds.tmp"
        mv "$run/seconds.tmp" "$run/seconds"
        ((rc == 0)) || exit "$rc"
      fi
    done
    "$BIN" --json metrics --cache "$cache" --head "$head" --probe "$probe" --deletion 0 \
      >"$head/metrics.json"
    python3 - "$head" "$probe" "$n" "$seed" >>"$lines" <<'PY'
import json, sys
head, probe, n, seed = sys.argv[1:]
m = json.load(open(f"{head}/metrics.json"))
s = json.load(open(f"{head}/summary.json"))
print(json.dumps({
    "per_class": n, "seed": int(seed),
    "top1": m["accuracy"], "probe_top1": m["baseline_accuracy"],
    "strict95": m["channels_for_95"]["strict"]["mean"],
    "steps": s["steps"], "epochs": s["epochs"], "stopped_early": s["stopped_early"],
    "seconds": float(open(f"{head}/seconds").read()),
    "probe_seconds": float(open(f"{probe}/seconds").read()),
}))
PY
    tail -n1 "$lines"
  done
done
python3 - "$lines" <<'PY'
import json, statistics as st, sys
rows = list({(r["per_class"], r["seed"]): r for r in map(json.loads, open(sys.argv[1]))}.values())
print("| images per class | seeds | InfoDisent top-1 | probe top-1 | difference | strict channels for 95 % | steps | s per run |")
print("|---|---|---|---|---|---|---|---|")
for n in sorted({r["per_class"] for r in rows}, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0)):
    rs = [r for r in rows if r["per_class"] == n]
    m = lambda k: st.mean(r[k] for r in rs)
    print(f"| {n} | {len(rs)} | {100*m('top1'):.1f} % | {100*m('probe_top1'):.1f} % | "
          f"{100*(m('top1')-m('probe_top1')):+.1f} pt | {m('strict95'):.2f} | {m('steps'):.0f} | {m('seconds'):.0f} |")
PY
