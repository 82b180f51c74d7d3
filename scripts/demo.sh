#!/usr/bin/env bash
# scripts/demo.sh [demo arguments...] - build and run the tcomp demo (Release).
#
# Compresses a seeded random weight matrix with several policies and prints a
# table: policy, bits per weight, bytes, relative error, SQNR.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/deps.sh

if [ ! -f examples/demo.cpp ]; then
  echo "demo.sh: examples/demo.cpp does not exist (yet); nothing to run" >&2
  exit 1
fi

build_dir=build/release
tcomp_pick_generator "$build_dir"
cmake --preset release --log-level=WARNING >/dev/null \
  || { echo "demo.sh: configuring the 'release' preset failed (rerun: cmake --preset release)" >&2; exit 1; }
cmake --build --preset release --parallel 2 --target tcomp_demo \
  || { echo "demo.sh: building tcomp_demo failed" >&2; exit 1; }

exec "$build_dir/examples/tcomp_demo" "$@"
