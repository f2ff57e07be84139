#!/usr/bin/env bash
# Installs every Debian package that building, testing and benchmarking diffuse needs.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # tensor library (CPU, oneDNN)
  libdnnl-dev             # oneDNN's headers: packed matrix products for linear layers
  libopenblas-dev         # tuned BLAS for fp32 matrix products
  libtcmalloc-minimal4    # malloc that keeps freed memory: glibc's re-faults every large tensor
  libgtest-dev            # tests
  libpng-dev zlib1g-dev   # PNG with text chunks
  libopencv-imgproc-dev   # ControlNet preprocessors: canny as AUTOMATIC1111 computes it (cv::Canny)
  nlohmann-json3-dev      # configs, safetensors headers, fixtures
  libcli11-dev            # command line
  libicu-dev              # Unicode for the CLIP tokenizer: NFC/NFKC, case mapping, \p{L} regex, cp1252
  libcpp-httplib-dev      # diffuse serve: HTTP server (and the API tests' client)
  libhiredis-dev          # diffuse serve --queue redis://: workers sharing one job queue
  redis-server            # the queue tests start their own
  chromium                # the web page's test drives it headless
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The browser test runs on Node (playwright-core from npm). A machine without node gets Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi
