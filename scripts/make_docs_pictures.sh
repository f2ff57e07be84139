#!/usr/bin/env bash
# Makes the pictures and command outputs that docs/how-it-works.md shows, by running diffuse itself.
#   bash scripts/make_docs_pictures.sh [DIFFUSE_BINARY] [MODEL]
# Defaults: build/src/diffuse and the tiny random-weight fixture model in ../shared, whose pictures are
# noise (its weights were never trained); give a real SD 1.x model to see an image appear instead.
set -euo pipefail
# Paths relative to the repository root, so the saved outputs read the same on every machine.
cd "$(dirname "$0")/.."
diffuse="${1:-build/src/diffuse}"
model="${2:-../shared/fixtures/tiny-sd1/diffusers}"
prompt="a photo of a cat"
pictures="docs/pictures"
outputs="docs/outputs"

[ -x "$diffuse" ] || { echo "no diffuse binary at $diffuse; build first (see README.md)" >&2; exit 1; }
[ -e "$model" ] || { echo "no model at $model" >&2; exit 1; }
rm -rf "$pictures" "$outputs"
mkdir -p "$pictures" "$outputs"

# 1. One generation, every step saved: noisy latents, predicted x0, a sheet and an animation.
"$diffuse" generate -m "$model" -p "$prompt" --steps 8 --seed 42 --cfg-scale 7.5 \
  -o "$pictures/generated.png" --save-steps "$pictures/steps" 2> "$outputs/generate.txt"
"$diffuse" generate -m "$model" -p "$prompt" --steps 8 --seed 42 --cfg-scale 7.5 \
  -o "$outputs/generated-vae.png" --save-steps "$pictures/steps-vae" --preview vae 2> /dev/null
rm -f "$outputs/generated-vae.png"

# 2. The image and its latent as numbers.
"$diffuse" image-numbers -m "$model" --size 6 "$pictures/generated.png" > "$outputs/image-numbers.txt"

# 3. The prompt as tokens and as numbers.
"$diffuse" tokens -m "$model" --values 4 "$prompt" > "$outputs/tokens.txt"
"$diffuse" tokens -m "$model" --full "$prompt" > "$outputs/tokens.csv"

# 4. The model's matrices: totals and architecture, then the whole tensor list.
"$diffuse" inspect --totals "$model" > "$outputs/inspect-totals.txt"
"$diffuse" inspect "$model" > "$outputs/inspect.txt"

echo "wrote $(find "$pictures" -type f | wc -l) pictures to $pictures and $(ls "$outputs" | wc -l) outputs to $outputs"
