#!/usr/bin/env bash
# Sets up everything a fresh machine needs, then runs the main job: EfficientNet-Lite0 on a
# Fashion-MNIST subset, extract → train → explain → metrics → report (runs/demo/report/index.html).
# Extra arguments go to `infodisent demo` (see `infodisent demo --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-assets.sh
scripts/setup-blas.sh
# Where the output is not a terminal (a log file, CI), a line a minute says the build is alive:
# some crates compile for minutes without a word from cargo.
beat=
if [ ! -t 2 ]; then
  (while sleep 50; do echo "[demo] still building (${SECONDS} s)" >&2; done) &
  beat=$!
fi
cargo build --release -p infodisent-cli
[ -n "$beat" ] && kill "$beat"
exec target/release/infodisent demo "$@"
