#!/usr/bin/env bash
# Measures plain `train --target original` (the user guide's "Explaining the model itself"):
# an unlabelled folder of the first N Fashion-MNIST test images as PNG files, EfficientNet-Lite0,
# the held-out 20 % that `extract` sets aside, and the agreement `eval` reports on it. Outside
# CI (about 20 minutes on 2 cores); the run resumes. Extra arguments go to `train`.
#
#   scripts/sweep-original.sh [TRAIN FLAGS...]      (N=500, OUT=runs/sweep)
#   scripts/sweep-original.sh --keep-top 0 --min-steps 300   (the dense head of the guide)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/infodisent}
OUT=${OUT:-runs/sweep}
N=${N:-500}
[[ -x $BIN ]] || cargo build --release -p infodisent-cli
scripts/fetch-assets.sh
python=.assets/python/bin/python
[[ -x $python ]] || { echo "needs the Python environment scripts/export-zoo.sh installs" >&2; exit 1; }
data=$OUT/unlabelled-fm
if [[ ! -f $data.complete ]]; then
  mkdir -p "$data"
  "$python" - "$data" "$N" <<'PY'
import gzip, sys
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
raw = gzip.decompress(open(".assets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb").read())
images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
for i in range(n):
    Image.fromarray(images[i]).save(f"{out}/fm{i:04d}.png")
PY
  touch "$data.complete"
fi
"$BIN" extract --data "$data" --cache "$OUT/unl-cache" >/dev/null
head=$OUT/unl-orig${1:+-custom}
"$BIN" train --cache "$OUT/unl-cache" --out "$head" --target original "$@" \
  $([[ -f $head/checkpoint.safetensors && ! -f $head/summary.json ]] && echo --resume) ||
  [[ -f $head/summary.json ]]
"$BIN" eval --head "$head"
