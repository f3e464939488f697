#!/usr/bin/env bash
# Installs the Python package the way a user does (`pip install` of the repository) into its
# own virtual environment, target/pyenv, and runs its tests against the CLI built by
# `cargo test` (target/debug/infodisent). The wheel is built with the test profile: cargo keys
# compiled dependencies by profile, so only then does it reuse the test build's (with the dev
# profile a fresh machine compiled every dependency again: 2.5 of the phase's 4 min).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=target/pyenv
export PATH="$PWD/$venv/bin:$PATH"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r python/requirements-test.txt
# torch, torchvision and timm (5.5 GB) are the pinned export environment's, seen through a .pth
# file rather than installed twice; this environment's own packages come first on sys.path.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
export_site=$("${INFODISENT_ASSETS:-$PWD/.assets}/python/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "$export_site" > "$site/zz-export-environment.pth"
MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps .
# The type stubs say what the compiled module has.
"$venv/bin/python" -m mypy.stubtest infodisent._infodisent --ignore-missing-stub
# The pure-Python layer type-checks strictly against them.
"$venv/bin/python" -m mypy --strict --ignore-missing-imports python/infodisent
# The repository's assets, so that the notebook's fetch_assets() finds everything in place.
export INFODISENT_ASSETS="${INFODISENT_ASSETS:-$PWD/.assets}"
INFODISENT_BIN="$PWD/target/debug/infodisent" "$venv/bin/python" -m pytest -q --durations=5 python/tests "$@"
