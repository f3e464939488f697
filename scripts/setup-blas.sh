#!/usr/bin/env bash
# The head's GEMMs and the Cayley rotation's LU solve run through OpenBLAS when the dynamic
# loader finds libopenblas.so.0: Debian's libopenblas0-pthread (0.3.21 on bookworm), whose
# DYNAMIC_ARCH build picks its kernels for the CPU at run time (Haswell on AVX2 machines,
# SkylakeX on AVX-512 ones). Without it the GEMMs fall back to the pure-Rust `gemm` crate,
# about a third slower, and the solve to Newton-Schulz iterations. infodisent makes every call
# into it from one thread of its own with a 64 MiB stack (crates/infodisent/src/head/blas.rs):
# with the SkylakeX kernels its parallel LU overflows the 2 MiB stacks of test, rayon and
# Python threads, and its thread count is process-wide. `infodisent -vv bench train` names the
# library, its build and kernels, and the CPU. OpenBLAS is optional, so a machine where it
# cannot be installed (no apt, no root) only gets a warning.
set -euo pipefail
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0'; then
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends libopenblas0-pthread >/dev/null; }; then
    echo "warning: could not install OpenBLAS (libopenblas0-pthread); GEMMs use the built-in gemm crate" >&2
  fi
fi
