#!/usr/bin/env bash
# Installs what the build and the tests need, builds everything from scratch in build/, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# playwright-core for the browser test, as package-lock.json pins it (npm registry)
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
cd build
ctest --output-on-failure -j "$(nproc)"
# The parsers of untrusted files under libFuzzer with ASan/UBSan, a short bounded run per target on the
# seed corpora (docs/fuzzing.md has the long runs' figures).
cd ..
FUZZ_JOBS="$(nproc)" bash scripts/fuzz.sh 15
