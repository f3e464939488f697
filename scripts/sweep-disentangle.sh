#!/usr/bin/env bash
# Measures what moves the RV of InfoDisent's channels (the user guide's training chapter,
# "Disentanglement"): on the demo's Fashion-MNIST cache and the parts benchmark, for each seed,
# `ablate` trains the paper's dense head, the default recipe and the linear probes, each with the
# RV traced every epoch (--trace-rv), and then the default recipe with each candidate: the
# rotation started at the principal axes (traced too), a decorrelation penalty of several
# weights, and both; and the three things the schedule could move: training four times as long
# (--min-steps 1200) and the rotation's learning rate a tenth and ten times the others'.
# Every row is measured the same way (top-1, channels for 95 %, RV in both readings over all
# channels, over those the decisions use and within each class, purity on the parts). Runs outside CI: the dense head trains for minutes. Finished folders are reused, so a
# killed sweep resumes. Prints the table of means over the seeds.
#
#   scripts/sweep-disentangle.sh            (SEEDS="0 1 2", DATASETS="fm parts", OUT=runs/disentangle)
#   BASE=keep-top-5-sigmoid-frame scripts/sweep-disentangle.sh   (without the dense head: minutes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/infodisent}
OUT=${OUT:-runs/disentangle}
SEEDS=${SEEDS:-0 1 2}
DATASETS=${DATASETS:-fm parts}
TRACE=${TRACE:-256}
BASE=${BASE:-recipe,keep-top-5-sigmoid-frame}
[[ -x $BIN ]] || cargo build --release -p infodisent-cli
mkdir -p "$OUT"
# The demo's cache (900 training and 500 test Fashion-MNIST images) and the parts benchmark's
# generated images, each made once.
[[ -f runs/demo/cache/manifest.json ]] || "$BIN" demo --out runs/demo >/dev/null
[[ -f $OUT/parts/cache/manifest.json ]] ||
  "$BIN" bench parts --out "$OUT/parts" --only frozen-u >/dev/null
cache_of() { case $1 in fm) echo runs/demo/cache ;; parts) echo "$OUT/parts/cache" ;; esac; }
# name|flags|grid rows: the baseline rows first, then the candidates on the default recipe.
CANDIDATES=(
  "base|--trace-rv $TRACE|$BASE"
  "principal|--rotation-init principal --trace-rv $TRACE|keep-top-5-sigmoid-frame"
  "decor-0.1|--decorrelation 0.1|keep-top-5-sigmoid-frame"
  "decor-1|--decorrelation 1|keep-top-5-sigmoid-frame"
  "decor-10|--decorrelation 10|keep-top-5-sigmoid-frame"
  "principal-decor-1|--rotation-init principal --decorrelation 1|keep-top-5-sigmoid-frame"
  "long|--min-steps 1200|keep-top-5-sigmoid-frame"
  "lr-rotation-0.0003|--lr-rotation 0.0003|keep-top-5-sigmoid-frame"
  "lr-rotation-0.03|--lr-rotation 0.03|keep-top-5-sigmoid-frame"
)
for data in $DATASETS; do
  cache=$(cache_of "$data")
  mkdir -p "$OUT/$data"
  for seed in $SEEDS; do
    for entry in "${CANDIDATES[@]}"; do
      IFS='|' read -r name flags only <<<"$entry"
      dir=$OUT/$data/$name-s$seed
      [[ -f $dir/ablation.json ]] && continue
      # shellcheck disable=SC2086 # the flags are words
      "$BIN" ablate --cache "$cache" --out "$dir" --seed "$seed" $flags --only "$only" >"$dir.txt"
    done
    # RV within each class (each class's own five channels over its own test images), beside
    # the probe of the same seed, which `ablate` does not measure.
    for entry in "${CANDIDATES[@]}"; do
      IFS='|' read -r name _ _ <<<"$entry"
      dir=$OUT/$data/$name-s$seed
      [[ -f $dir/metrics.json ]] && continue
      "$BIN" --json metrics --cache "$cache" --head "$dir/keep-top-5-sigmoid-frame" \
        --probe "$OUT/$data/base-s$seed/linear-probe" --deletion 0 >"$dir/metrics.json.tmp" 2>/dev/null
      mv "$dir/metrics.json.tmp" "$dir/metrics.json"
    done
  done
done
python3 - "$OUT" "$DATASETS" "$SEEDS" <<'PY'
import json, statistics, sys
from pathlib import Path
out, datasets, seeds = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()
rows = {}
for data in datasets:
    for run in sorted((out / data).glob("*-s*/ablation.json")):
        name = run.parent.name.rsplit("-s", 1)[0]
        for row in json.load(open(run))["rows"]:
            if name != "base" and not row["name"].startswith("+ keep top"):
                continue
            key = (data, name if name != "base" else row["name"])
            rv = json.load(open(run.parent / "metrics.json"))["rv"]
            excess = lambda stat: stat["mean"] - stat["null"] if stat else None
            within = ("infodisent_within" if row["name"].startswith("+ keep top") else
                      "baseline_within" if row["name"] == "linear probe (average-pooled)" else None)
            row["within"] = (excess(rv.get(within)), excess(rv["pooled"].get(within)))
            rows.setdefault(key, []).append(row)
def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None
def fmt(x, scale=1.0, digits=3):
    return "–" if x is None else f"{scale * x:.{digits}f}"
def rv(rs, key):
    return mean([(r.get("rv") or {}).get(key) for r in rs])
print("| data | head | seeds | top-1 % | strict channels for 95 % | RV − null, maps: all / used | pooled: all / used | used, within each class: maps / pooled | raw channels: maps / pooled | prototype purity % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (data, name), rs in rows.items():
    purity = mean([r["parts"]["purity"] if r.get("parts") else None for r in rs])
    print(f"| {data} | {name} | {len(rs)} | {fmt(mean([r['top1'] for r in rs]), 100, 2)} "
          f"| {fmt(mean([r['channels_strict'] for r in rs]), 1, 2)} "
          f"| {fmt(rv(rs, 'maps'))} / {fmt(rv(rs, 'maps_used'))} "
          f"| {fmt(rv(rs, 'pooled'))} / {fmt(rv(rs, 'pooled_used'))} "
          f"| {fmt(mean([r['within'][0] for r in rs]))} / {fmt(mean([r['within'][1] for r in rs]))} "
          f"| {fmt(rv(rs, 'raw_maps'))} / {fmt(rv(rs, 'raw_pooled'))} "
          f"| {fmt(purity, 100, 1)} |")
PY
