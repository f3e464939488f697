#!/usr/bin/env bash
# Installs the Python package the way a user does (`pip install` of the repository) into its
# own virtual environment, target/pyenv, and runs its tests against the CLI built by
# `cargo test` (target/debug/infodisent). The wheel is built with the dev profile, so it
# shares the compiled dependencies of the test build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=target/pyenv
export PATH="$PWD/$venv/bin:$PATH"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q -r python/requirements-test.txt
MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps .
# The type stubs say what the compiled module has.
"$venv/bin/python" -m mypy.stubtest infodisent._infodisent --ignore-missing-stub
INFODISENT_BIN="$PWD/target/debug/infodisent" "$venv/bin/python" -m pytest -q python/tests "$@"
