#!/usr/bin/env bash
# Installs, builds, and generates one image. MODEL defaults to the tiny test pipeline beside the
# checkout until the built-in model ships; pass your own: scripts/run.sh path/to/model.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-../shared/fixtures/tiny-sd1/diffusers}"
prompt="${2:-a red circle on a blue background}"
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target diffuse
./build/src/diffuse generate -m "$model" -p "$prompt" -o output.png
