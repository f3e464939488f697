#!/usr/bin/env bash
# Sets up everything a fresh machine needs, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-assets.sh
scripts/export-zoo.sh
scripts/install-browser.sh
scripts/setup-blas.sh
# The module graph stays acyclic and layered (see the module table in docs/book/src/architecture.md).
python3 tools/imports.py
# The user guide builds, and every internal link and anchor in it and in README.md resolves.
scripts/build-book.sh
# The library's API documentation builds without a warning (a broken intra-doc link, say), and
# every public item has a doc.
RUSTDOCFLAGS="-D warnings -D missing_docs" cargo doc --no-deps -p infodisent
cargo test --workspace --no-fail-fast 2>&1
