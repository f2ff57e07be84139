#!/usr/bin/env bash
# Installs, builds, and generates one image, output.png. Without MODEL the built-in model
# (models/builtin, trained by `diffuse train`, see docs/training.md) draws the prompt; pass your
# own model as the first argument: scripts/run.sh path/to/model.safetensors "a prompt"
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-}"
prompt="${2:-a large red circle on a blue background, in the centre}"
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target diffuse
if [ -n "$model" ]; then
  ./build/src/diffuse generate -m "$model" -p "$prompt" -o output.png
else
  ./build/src/diffuse generate -p "$prompt" -o output.png
fi
