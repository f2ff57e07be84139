#!/usr/bin/env bash
# Installs, builds, and generates one image, output.png. Without MODEL the built-in model
# (models/builtin, trained by `diffuse train`, see docs/training.md) draws the prompt; pass your
# own model as the first argument: scripts/run.sh path/to/model.safetensors "a prompt"
set -euo pipefail
cd "$(dirname "$0")/.."
model_args=()
if [ -n "${1:-}" ]; then model_args=(-m "$1"); fi
prompt="${2:-a red circle on a blue background}"
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target diffuse
./build/src/diffuse generate "${model_args[@]}" -p "$prompt" -o output.png
