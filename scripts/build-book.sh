#!/usr/bin/env bash
# Builds the user guide (docs/book) into target/book and checks every internal link and anchor
# in the built HTML and every relative link in README.md. mdbook is pinned and installed once
# per machine outside the repository, so a fresh clone (CI's) reuses the installed binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=0.5.4
cache="${XDG_CACHE_HOME:-$HOME/.cache}/infodisent/mdbook-$version"
mdbook="$cache/bin/mdbook"
if ! [ -x "$mdbook" ] || [ "$("$mdbook" --version)" != "mdbook v$version" ]; then
  echo "[build-book] installing mdbook $version into $cache" >&2
  # Without `serve` and `watch`: their web server and file watcher would double the compile time.
  cargo install --locked --quiet --no-default-features --features search mdbook --version "$version" --root "$cache"
fi
"$mdbook" build docs/book
python3 tools/check-links.py target/book README.md
