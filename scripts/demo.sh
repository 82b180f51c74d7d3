#!/usr/bin/env bash
# scripts/demo.sh [demo arguments...] - build tcomp_demo with the 'release' preset (build/release) and run it.
#
# The demo (examples/demo.cpp) runs every recipe (FP32, W8A8, W8A16, W4A16, W4A8, a mix) on every model it
# finds in ../shared/models (or --models DIR): the stories260K language model, the MNIST MLP, the TAEF2 image
# decoder and a seeded text-to-image DiT; without the models, seeded stand-ins. It prints one table (model,
# recipe, size, quality, latency, speed-up over FP32) and writes tcomp_demo.png with the decodes side by side.
# Arguments go to the demo: --models DIR, --threads N, --png FILE, --stories N, --quick.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/deps.sh

if [ ! -f examples/demo.cpp ]; then
  echo "demo.sh: examples/demo.cpp is missing; nothing to run" >&2
  exit 1
fi

build_dir=build/release
tcomp_pick_generator "$build_dir"
cmake --preset release --log-level=WARNING >/dev/null \
  || { echo "demo.sh: configuring the 'release' preset failed (rerun: cmake --preset release)" >&2; exit 1; }
cmake --build --preset release --parallel 2 --target tcomp_demo \
  || { echo "demo.sh: building tcomp_demo failed" >&2; exit 1; }

exec "$build_dir/examples/tcomp_demo" "$@"
