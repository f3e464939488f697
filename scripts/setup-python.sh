#!/usr/bin/env bash
# Creates (once) the pinned Python environment that exports real torchvision/timm models to
# ONNX for the tests: $INFODISENT_ASSETS/python (default .assets/python). Idempotent: a stamp
# holding the requirements' checksum says the environment is complete and current.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${INFODISENT_ASSETS:-$root/.assets}"
venv="$assets/python"
req="$root/tools/zoo/requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ "$(cat "$venv/.complete" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "[setup-python] installing the pinned export environment into $venv (about 5.5 GB)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade "pip==25.3" "setuptools==80.9.0" >&2
"$venv/bin/python" -m pip install --quiet --only-binary=:all: -r "$req" >&2
"$venv/bin/python" -c "import torch, torchvision, timm, onnxscript" >&2
echo "$want" > "$venv/.complete"
