#!/usr/bin/env bash
# Sets up everything a fresh machine needs, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-assets.sh
scripts/export-zoo.sh
scripts/install-browser.sh
scripts/setup-blas.sh
# The module graph stays acyclic and layered (see the README's module table).
python3 tools/imports.py
cargo test --workspace --no-fail-fast 2>&1
