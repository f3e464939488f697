#!/usr/bin/env bash
# Sets up everything a fresh machine needs, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each phase is stamped with the seconds since the start, so a slow CI run shows where it went.
phase() { echo "== test.sh +${SECONDS}s: $*" >&2; }
phase assets
scripts/fetch-assets.sh
phase zoo exports
scripts/export-zoo.sh
phase browser
scripts/install-browser.sh
phase blas
scripts/setup-blas.sh
phase module graph
# The module graph stays acyclic and layered (see the module table in docs/book/src/architecture.md).
python3 tools/imports.py
# The user guide builds, and every internal link and anchor in it and in README.md resolves.
phase user guide
scripts/build-book.sh
# The library's API documentation builds without a warning (a broken intra-doc link, say), and
# every public item has a doc.
phase api docs
RUSTDOCFLAGS="-D warnings -D missing_docs" cargo doc --no-deps -p infodisent --all-features
phase tests
cargo test --workspace --no-fail-fast 2>&1
# The Python package, pip-installed into its own environment, against the CLI just built.
phase python
scripts/test-python.sh
phase done
