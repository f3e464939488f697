#!/usr/bin/env bash
# Exports the real architectures the tests check (torchvision and timm, seeded random weights,
# both torch.onnx exporters) with reference outputs from PyTorch, into
# $INFODISENT_ASSETS/zoo/<key>, where the key hashes the pinned environment and the export
# script, so a stale export is never reused. `zoo/current` points at the folder in use.
# Each export is skipped when already complete, so a second run costs nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${INFODISENT_ASSETS:-$root/.assets}"
"$root/scripts/setup-python.sh"
key="$(cat "$root/tools/zoo/requirements.txt" "$root/tools/zoo/export.py" | sha256sum | cut -c1-12)"
out="$assets/zoo/$key"
mkdir -p "$out"
photos=("$assets/photos/skimage/chelsea.png" "$assets/photos/skimage/coffee.png" "$assets/photos/skimage/astronaut.png")
for p in "${photos[@]}"; do
  [ -f "$p" ] || { echo "[export-zoo] $p is missing: run scripts/fetch-assets.sh" >&2; exit 1; }
done
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$assets/python/bin/python" -W ignore \
  "$root/tools/zoo/export.py" --out "$out" --photos "${photos[@]}" "$@" 2>&1 \
  | grep -E '^\[export-zoo\]|Error|error' >&2 || true
ln -sfn "$key" "$assets/zoo/current"
# Exports made with another environment or script are stale: nothing reads them any more.
find "$assets/zoo" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
n=$(ls "$out"/*/export.json 2>/dev/null | wc -l)
echo "[export-zoo] $n exports ready in $out" >&2
