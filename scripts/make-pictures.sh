#!/usr/bin/env bash
# Regenerates the guide's and the README's pictures from the tutorial's run: the built-in
# EfficientNet-Lite0 on the natural photos of the assets (ImageNet samples, scenes, scikit-image)
# sorted into two classes, animal and thing; the default head on those labels and one fitted to
# the model's own decisions (`--target original`); held-out photos explained; the report and
# the live viewer, screenshotted in headless Chromium. Prints every command's output,
# which docs/book/src/tutorial.md shows. Needs scripts/fetch-assets.sh and
# scripts/install-browser.sh to have run, and the release build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/infodisent}
assets="${INFODISENT_ASSETS:-$PWD/.assets}"
run=runs/tutorial
images=docs/book/src/images
rm -rf "$run" && mkdir -p "$run/photos/animal" "$run/photos/thing" "$run/shots"
# ImageNet's classes 0-397 are animals; the sample photos carry their class in the name.
for f in "$assets"/photos/imagenet/*.jpg; do
  class=${f##*_}; class=${class%.jpg}
  if [ "$class" -lt 398 ]; then cp "$f" "$run/photos/animal/"; else cp "$f" "$run/photos/thing/"; fi
done
cp "$assets"/photos/scenes/*.jpg "$assets"/photos/skimage/chelsea.png "$run/photos/animal/"
cp "$assets"/photos/skimage/{astronaut,coffee,motorcycle_left}.png "$assets"/photos/skimage/rocket.jpg "$run/photos/thing/"
cp "$assets"/photos/skimage/chelsea.png "$run/cat.png"
show() { echo "\$ infodisent $*" | sed "s|$run/|runs/tutorial/|g"; /usr/bin/time -f '[%e s, %M KB]' "$BIN" "$@" 2>&1 | sed "s|$PWD/||g"; echo; }
show inspect efficientnet-lite0
show predict --top 3 "$run/cat.png"
show extract --model efficientnet-lite0 --data "$run/photos" --cache "$run/cache"
# 24 training photos leave none to spare for a validation hold-out.
show train --cache "$run/cache" --out "$run/head" --val-fraction 0
show train --cache "$run/cache" --out "$run/probe" --val-fraction 0 --kind linear-probe
show eval --cache "$run/cache" --head "$run/head" --head "$run/probe"
show explain --cache "$run/cache" --head "$run/head" --probe "$run/probe" --out "$run/explain" --item 0 --item 4
show report --cache "$run/cache" --head "$run/head" --probe "$run/probe" --out "$run/report"
show train --cache "$run/cache" --out "$run/model-head" --target original --val-fraction 0
show explain --cache "$run/cache" --head "$run/model-head" --out "$run/model-explain" "$run/cat.png"
du -sh "$run/cache" | sed "s|$run/|runs/tutorial/|"
cp "$(ls "$run"/explain/*.png | head -n1)" "$images/tutorial-explanation.png"
node tools/browser-check/check-report.mjs "$run/report" "$run/shots" >/dev/null
cp "$run/shots/index.png" "$images/report-index.png"
cp "$run/shots/images.png" "$images/report-images.png"
# The live viewer on a free loopback port, with the cat dropped on its upload page.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --head "$run/head" --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 1; done
node tools/browser-check/check-viewer.mjs "http://127.0.0.1:$port/" "$run/cat.png" "$run/shots" >/dev/null
cp "$run/shots/explain.png" "$images/viewer-explain.png"
cp "$run/shots/class.png" "$images/viewer-class.png"
echo "pictures written to $images"
