#!/usr/bin/env bash
# Fetches, pinned and checksum-verified, the OpenVINO runtime and the photos the tests need into
# $INFODISENT_ASSETS (default: .assets/ at the repository root). Idempotent: a file already
# present with the right checksum is not fetched again.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
assets="${INFODISENT_ASSETS:-$root/.assets}"
dl="$assets/downloads"
mkdir -p "$dl"

log() { printf '[fetch-assets] %s\n' "$*" >&2; }

verify() { # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# pip_wheel NAME==VER GLOB SHA256 [PLATFORM]: a wheel from PyPI, checked against its pinned hash.
pip_wheel() {
  local spec="$1" glob="$2" sum="$3" platform="${4:-manylinux_2_28_x86_64}" f
  f=$(ls "$dl"/$glob 2>/dev/null | head -n1 || true)
  if [ -n "$f" ] && verify "$f" "$sum"; then echo "$f"; return; fi
  log "downloading $spec"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform "$platform" -d "$dl" "$spec" >&2
  f=$(ls "$dl"/$glob | head -n1)
  verify "$f" "$sum" || { log "checksum mismatch for $f"; exit 1; }
  echo "$f"
}

# unzip_dir ZIP PREFIX DEST: extract every file under PREFIX matching a regex into DEST.
unzip_dir() {
  mkdir -p "$4"
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import sys, zipfile, shutil, os, re
zf, prefix, pattern, dest = sys.argv[1:]
with zipfile.ZipFile(zf) as z:
    for n in z.namelist():
        base = n[len(prefix):]
        if n.startswith(prefix) and "/" not in base and re.fullmatch(pattern, base):
            out = os.path.join(dest, base)
            if os.path.exists(out):
                continue
            with z.open(n) as s, open(out + ".tmp", "wb") as d:
                shutil.copyfileobj(s, d)
            os.replace(out + ".tmp", out)
PY
}

# OpenVINO's runtime, the second engine (`--engine openvino`), loaded at run time by the
# `openvino` crate: the C API, the core, its CPU plugin and ONNX reader, and TBB with hwloc,
# which they link to (they find each other through their $ORIGIN rpath).
ov=$(pip_wheel openvino==2025.4.1 'openvino-2025.4.1-*.whl' c552a68c094b0d75f48b7c19cbd3482c44e4e267821897dcb7c9f7c36ba5f88b manylinux2014_x86_64)
unzip_dir "$ov" openvino/libs/ 'libopenvino(_c|_onnx_frontend)?\.so\.2541|libopenvino_intel_cpu_plugin\.so|libtbb\.so\.12|libtbbmalloc\.so\.2|libtbbbind_2_5\.so\.3|libhwloc\.so\.15' "$assets/openvino"

# ONNX Runtime, the built-in models' weights, the ImageNet class names (with four photos) and
# Fashion-MNIST are not fetched here: the library downloads them on first use (`infodisent
# fetch` does it ahead of time), with the pins in one place.

# Labelled photos: 20 ImageNet validation images (label in the name) and the scikit-image set.
fb=$(pip_wheel foolbox==3.3.4 'foolbox-3.3.4-*.whl' 11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb)
unzip_dir "$fb" foolbox/data/ 'imagenet_.*\.jpg' "$assets/photos/imagenet"
unzip_dir "$fb" foolbox/data/ '(cifar10|cifar100|mnist|fashionMNIST)_.*' "$assets/photos/small"
sk=$(pip_wheel scikit-image==0.26.0 'scikit_image-0.26.0-*.whl' 74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af)
unzip_dir "$sk" skimage/data/ '(chelsea|coffee|astronaut|motorcycle_left)\.png|rocket\.jpg' "$assets/photos/skimage"
# The rest of scikit-image's photographs (textures, microscopy, astronomy, text): natural
# images outside ImageNet's classes, for `bench faithfulness`. A folder of their own, so the
# parts benchmark's backgrounds (the folder above) stay as they are.
unzip_dir "$sk" skimage/data/ '(brick|camera|cell|clock_motion|coins|grass|gravel|ihc|microaneurysms|moon|motorcycle_right|page|text)\.png|(hubble_deep_field|retina)\.jpg' "$assets/photos/skimage-more"

log "assets ready in $assets"
