#!/usr/bin/env bash
# Measures plain `train --target original` (the user guide's "Explaining the model itself"):
# an unlabelled folder, EfficientNet-Lite0, the held-out 20 % that `extract` sets aside, and the
# agreement `eval` reports on it. Two folders:
#   FOLDER=photos         (default) 493 photos: 17 random crops (a fifth to all of the area,
#                         flipped, brightened or darkened) of each of the 29 real photos the
#                         assets hold (20 ImageNet, 4 scenes, 5 scikit-image)
#   FOLDER=fashion-mnist  the first N Fashion-MNIST test images (N=500), greyscale clothes that
#                         the ImageNet model sees as nothing it knows
# Outside CI (about 15 minutes on 2 cores); the run resumes. Extra arguments go to `train`.
#
#   scripts/sweep-original.sh [TRAIN FLAGS...]      (OUT=runs/sweep)
#   FOLDER=fashion-mnist scripts/sweep-original.sh --keep-top 0   (the dense head)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/infodisent}
OUT=${OUT:-runs/sweep}
FOLDER=${FOLDER:-photos}
N=${N:-500}
[[ -x $BIN ]] || cargo build --release -p infodisent-cli
scripts/fetch-assets.sh
python=.assets/python/bin/python
[[ -x $python ]] || python=python3
"$python" -c "import numpy, PIL" 2>/dev/null ||
  { echo "needs Python with numpy and Pillow (scripts/setup-python.sh installs them)" >&2; exit 1; }
case $FOLDER in
  photos) data=$OUT/unlabelled-photos suffix=-photos ;;
  fashion-mnist) data=$OUT/unlabelled-fm suffix= ;;
  *) echo "FOLDER is photos or fashion-mnist, not $FOLDER" >&2; exit 2 ;;
esac
if [[ ! -f $data.complete ]]; then
  mkdir -p "$data"
  "$python" - "$FOLDER" "$data" "$N" <<'PY'
import glob, gzip, random, sys
import numpy as np
from PIL import Image, ImageEnhance
kind, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "fashion-mnist":
    raw = gzip.decompress(open(".assets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb").read())
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    for i in range(n):
        Image.fromarray(images[i]).save(f"{out}/fm{i:04d}.png")
    sys.exit()
random.seed(0)
photos = sorted(glob.glob(".assets/photos/imagenet/*") + glob.glob(".assets/photos/scenes/*")
                + glob.glob(".assets/photos/skimage/*"))
for p, path in enumerate(photos):
    im = Image.open(path).convert("RGB")
    W, H = im.size
    for j in range(17):
        for _ in range(100):
            area = random.uniform(0.2, 1.0) * W * H
            aspect = random.uniform(3 / 4, 4 / 3)
            w, h = round((area * aspect) ** 0.5), round((area / aspect) ** 0.5)
            if w <= W and h <= H:
                break
        x, y = random.randint(0, W - w), random.randint(0, H - h)
        crop = im.crop((x, y, x + w, y + h)).resize((224, 224), Image.BILINEAR)
        if random.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop = ImageEnhance.Brightness(crop).enhance(random.uniform(0.8, 1.2))
        crop.save(f"{out}/p{p:02d}-{j:02d}.jpg", quality=92)
PY
  touch "$data.complete"
fi
cache=$OUT/unl-cache$suffix
"$BIN" extract --data "$data" --cache "$cache" >/dev/null
head=$OUT/unl-orig$suffix${1:+-custom}
"$BIN" train --cache "$cache" --out "$head" --target original "$@" \
  $([[ -f $head/checkpoint.safetensors && ! -f $head/summary.json ]] && echo --resume) ||
  [[ -f $head/summary.json ]]
"$BIN" eval --head "$head"
