#!/usr/bin/env bash
# Sets up everything a fresh machine needs, then runs the main job: EfficientNet-Lite0 on a
# Fashion-MNIST subset, extract → train → explain → metrics → report (runs/demo/report/index.html).
# Extra arguments go to `infodisent demo` (see `infodisent demo --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-assets.sh
scripts/setup-blas.sh
cargo build --release -p infodisent-cli
exec target/release/infodisent demo "$@"
