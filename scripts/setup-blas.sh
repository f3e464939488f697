#!/usr/bin/env bash
# The head's GEMMs run through OpenBLAS when the dynamic loader finds libopenblas.so.0
# (Debian's pthread build picks its kernels for the CPU at run time); without it they fall back
# to the pure-Rust `gemm` crate, about a third slower on the development machine. OpenBLAS is
# optional, so a machine where it cannot be installed (no apt, no root) only gets a warning.
set -euo pipefail
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0'; then
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends libopenblas0-pthread >/dev/null; }; then
    echo "warning: could not install OpenBLAS (libopenblas0-pthread); GEMMs use the built-in gemm crate" >&2
  fi
fi
