#!/usr/bin/env bash
# Creates (once) the pinned Python environment that exports real torchvision/timm models to
# ONNX for the tests: $INFODISENT_ASSETS/python (default .assets/python). Then adds the
# explainers `bench faithfulness` compares with (pytorch-grad-cam, Captum) on the same torch.
# Idempotent: a stamp per stage holding its requirements' checksum says it is complete and
# current, so changing the peers never reinstalls torch.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${INFODISENT_ASSETS:-$root/.assets}"
venv="$assets/python"
req="$root/tools/zoo/requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ "$(cat "$venv/.complete" 2>/dev/null)" != "$want" ]; then
  echo "[setup-python] installing the pinned export environment into $venv (about 5.5 GB)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade "pip==25.3" "setuptools==80.9.0" >&2
  "$venv/bin/python" -m pip install --quiet --only-binary=:all: -r "$req" >&2
  "$venv/bin/python" -c "import torch, torchvision, timm, onnxscript" >&2
  echo "$want" > "$venv/.complete"
  rm -f "$venv/.peers-complete"
fi

peers="$root/tools/bench/requirements-peers.txt"
want_peers="$(sha256sum "$peers" | cut -d' ' -f1)"
if [ "$(cat "$venv/.peers-complete" 2>/dev/null)" != "$want_peers" ]; then
  echo "[setup-python] adding pytorch-grad-cam and Captum to $venv" >&2
  "$venv/bin/python" -m pip install --quiet --only-binary=:all: -r "$peers" >&2
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation "grad-cam==1.5.7" >&2
  "$venv/bin/python" -c "import pytorch_grad_cam, captum, efficientnet_lite_pytorch" >&2
  echo "$want_peers" > "$venv/.peers-complete"
fi
