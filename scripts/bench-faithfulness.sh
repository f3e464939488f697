#!/usr/bin/env bash
# Measures the guide's comparison with pytorch-grad-cam and Captum (`infodisent bench
# faithfulness`): EfficientNet-Lite0, every natural photo the assets hold (44: 20 ImageNet
# validation photos, 4 scenes, 20 scikit-image photographs) and 200 generated parts images,
# 3 head seeds. Outside CI (about 40 minutes on 2 cores, mostly Score-CAM and Occlusion); every
# stage resumes. Extra arguments go to `bench faithfulness`.
#
#   scripts/bench-faithfulness.sh [FLAGS...]      (OUT=runs/faithfulness)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/infodisent}
OUT=${OUT:-runs/faithfulness}
[[ -x $BIN ]] || cargo build --release -p infodisent-cli
scripts/fetch-assets.sh
scripts/setup-python.sh
assets=${INFODISENT_ASSETS:-$PWD/.assets}
# One folder of links, a sub-folder per source: the command needs no labels (it explains the
# model's own decision), and the links keep the photos where the assets put them.
photos=$OUT/natural-photos
for group in imagenet scenes skimage skimage-more; do
  mkdir -p "$photos/$group"
  for f in "$assets/photos/$group"/*; do ln -sfn "$f" "$photos/$group/"; done
done
"$BIN" bench faithfulness --photos "$photos" --parts-per-class 50 \
  --python "$assets/python/bin/python" --out "$OUT" "$@"
