#!/usr/bin/env bash
# Sets up everything a fresh machine needs, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each phase is stamped with the seconds since the start, so a slow CI run shows where it went.
phase() { echo "== test.sh +${SECONDS}s: $*" >&2; }
# Durations only compare on the same processor, so the log names it.
phase "on $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores," \
  "$(grep -m1 '^flags' /proc/cpuinfo | grep -ow 'avx2\|avx512f\|amx_tile' | tr '\n' ' ')"
# The test build (9 min of both cores on a fresh machine) needs none of the setup below, much of
# which waits on the network and the disk (the 5.5 GB export environment): it runs beside it.
phase test build, in the background
mkdir -p target
build_log=target/test-build.log
cargo test --workspace --no-run >"$build_log" 2>&1 &
build=$!
phase assets
scripts/fetch-assets.sh
phase zoo exports
scripts/export-zoo.sh
phase browser
scripts/install-browser.sh
phase blas
scripts/setup-blas.sh
# The cluster tests submit job arrays to a real one-node Slurm from Debian's packages.
phase slurm
scripts/slurm/local-cluster.sh start
phase module graph
# The module graph stays acyclic and layered (see the module table in docs/book/src/architecture.md).
python3 tools/imports.py
# The user guide builds, and every internal link and anchor in it and in README.md resolves.
phase user guide
scripts/build-book.sh
phase test build, waiting for it
if ! wait "$build"; then
  cat "$build_log"
  echo "the test build failed" >&2
  exit 1
fi
# ONNX Runtime, the built-in models' weights, class names and Fashion-MNIST, downloaded once
# here rather than by whichever test first needs them.
phase built-in assets
target/debug/infodisent --quiet fetch
# The library's API documentation builds without a warning (a broken intra-doc link, say), and
# every public item has a doc.
phase api docs
RUSTDOCFLAGS="-D warnings -D missing_docs" cargo doc --no-deps -p infodisent -p infodisent-bench --all-features
phase tests
# Two lanes over the one build: the three longest acceptance tests (one test each, MI maps, the
# parts benchmark and `bench paper` on it in CUB's and ImageNet's layouts: 13.5 min on a warm
# run, everything else 10) run beside everything else, so that no core idles while a single long
# test runs. On 2 AMD EPYC cores the side lane ended 200 s after the main lane; moving
# `bench paper` to the main lane made both lanes slower (side lane done at 1,000 s instead of
# 813 s), so it stays. The side lane's output follows the main lane's.
long=(decision_map_is_highest_on_the_shape_and_redundant_map_on_the_ring
      prototypes_and_explanations_land_on_the_parts_that_make_the_class
      bench_paper_reads_cub_and_its_part_purity_agrees_with_the_parts_benchmark)
side_log=target/test-side-lane.log
# Both lanes name the whole workspace, so cargo resolves the same features and builds nothing new.
# Each lane's end is stamped, so a CI log shows which lane bounds the phase.
{
  side_rc=0
  cargo test --workspace --no-fail-fast -- "${long[@]}" || side_rc=$?
  echo "== test.sh +${SECONDS}s: side lane done"
  exit "$side_rc"
} >"$side_log" 2>&1 &
side=$!
main_rc=0
cargo test --workspace --no-fail-fast -- "${long[@]/#/--skip=}" 2>&1 || main_rc=$?
phase main lane done
side_rc=0
wait "$side" || side_rc=$?
echo "== side lane (the MI maps on Lite0 features, the parts benchmark, bench paper on its CUB and ImageNet copies):"
cat "$side_log"
if [ "$main_rc" -ne 0 ] || [ "$side_rc" -ne 0 ]; then
  echo "cargo test failed (main lane $main_rc, side lane $side_rc)" >&2
  exit 1
fi
# The Python package, pip-installed into its own environment, against the CLI just built.
phase python
scripts/test-python.sh
phase done
