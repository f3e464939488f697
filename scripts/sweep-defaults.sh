#!/usr/bin/env bash
# Measures the default training recipe and the default linear probe on Fashion-MNIST learning
# curves (the user guide's "How long a run trains" table): EfficientNet-Lite0 features, the first
# N training images of each class, the 10,000 test images, a few seeds. Runs outside CI: each
# InfoDisent run takes minutes. Every run folder is reused when it is there, so a killed sweep
# resumes. Prints one JSON line per run, then the table.
#
#   scripts/sweep-defaults.sh [PER_CLASS...]       (default: 30 100 1000; SEEDS="0 1 2")
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
if [[ -z ${CACHE:-} ]]; then
  CACHE=$OUT/fm1000
  "$BIN" extract --data fashion-mnist --limit-per-class 1000 --cache "$CACHE" >/dev/null
fi
# Every run appends its line; the table reads the newest line of each row and seed.
lines=$OUT/runs-$NAME.jsonl
for n in "${ROWS[@]}"; do
  for seed in $SEEDS; do
    head=$OUT/$NAME-pc$n-s$seed-infodisent
    probe=$OUT/$NAME-pc$n-s$seed-probe
    limit=(--limit-per-class "$n"); [[ $n == all ]] && limit=()
    for run in "$head" "$probe"; do
      kind=infodisent; [[ $run == *probe ]] && kind=linear-probe
      if [[ ! -f $run/summary.json ]]; then
        start=$(date +%s.%N)
        "$BIN" train --cache "$CACHE" --out "$run" --kind "$kind" "${limit[@]}" \
          --seed "$seed" $([[ -f $run/checkpoint.safetensors ]] && echo --resume) >/dev/null
        echo "$(date +%s.%N) - $start" | bc >"$run/seconds"
      fi
    done
    "$BIN" --json metrics --cache "$CACHE" --head "$head" --probe "$probe" --deletion 0 \
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
