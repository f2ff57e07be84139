#!/usr/bin/env bash
# Makes the pictures and command outputs that docs/how-it-works.md shows, by running diffuse itself.
#   bash scripts/make_docs_pictures.sh [DIFFUSE_BINARY] [MODEL]
# Defaults: build/src/diffuse and the built-in model (models/builtin, trained by diffuse train on the
# shapes dataset), whose steps show a shape appearing out of noise; give a real SD 1.x model and a
# prompt for it (PROMPT=...) to see that instead. Also trains a short model (about 4 minutes on one
# core) for the training section: what a few hundred steps make.
set -euo pipefail
# Paths relative to the repository root, so the saved outputs read the same on every machine.
cd "$(dirname "$0")/.."
diffuse="${1:-build/src/diffuse}"
model="${2:-models/builtin}"
prompt="${PROMPT:-a red circle on a blue background}"
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

# 5. Training: the built-in model's loss curve, and a model trained for only 400 + 400 steps drawing
#    the same prompt from the same seed (same sizes and data as the built-in model, which had 2000 + 6000).
cp models/builtin/loss.png "$pictures/builtin-loss.png"
short="$(mktemp -d)/short"
"$diffuse" train -d shapes -o "$short" --seed 1 --threads 1 --vae-steps 400 --unet-steps 400 \
  2> "$outputs/train-short.txt"
cp "$short/loss.png" "$pictures/short-loss.png"
"$diffuse" generate -m "$short" -p "$prompt" --steps 8 --seed 42 --cfg-scale 7.5 \
  -o "$pictures/short-generated.png" --save-steps "$pictures/short-steps" --preview vae 2> /dev/null
rm -rf "$(dirname "$short")"

# 6. img2img, inpainting and outpainting (docs/image-to-image.md), from the picture of step 1 drawn
#    again with 20 steps: recoloured, the shape moved by repainting a mask, the canvas widened.
"$diffuse" generate -m "$model" -p "$prompt" --steps 20 --seed 42 -o "$pictures/source.png" 2> /dev/null
"$diffuse" generate -m "$model" -p "a green circle on a blue background" --init-image "$pictures/source.png" \
  --strength 0.6 --steps 20 --seed 42 -o "$pictures/recoloured.png" 2> "$outputs/img2img.txt"
"$diffuse" generate -m "$model" -p "a red circle on a blue background, on the left" --init-image "$pictures/source.png" \
  --mask docs/inputs/move-mask.png --strength 1 --steps 20 --seed 1 -o "$pictures/moved.png" 2> /dev/null
"$diffuse" generate -m "$model" -p "$prompt" --init-image "$pictures/source.png" --outpaint 32,32,0,0 --strength 1 \
  --steps 20 --seed 5 -o "$pictures/widened.png" 2> /dev/null

echo "wrote $(find "$pictures" -type f | wc -l) pictures to $pictures and $(ls "$outputs" | wc -l) outputs to $outputs"
