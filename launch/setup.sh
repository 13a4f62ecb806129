#!/usr/bin/env bash
# Installs tailor's build and run dependencies from Debian's archive (idempotent: installs only
# what is missing) and configures + builds tailor in ./build.
#   bash launch/setup.sh            # deps + build
#   TAILOR_SKIP_DEPS=1 bash launch/setup.sh   # build only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake git
  libtorch-dev                 # LibTorch (CPU)
  libopenblas0-openmp          # fast BLAS for LibTorch's float32 matmul (reference BLAS is ~30x slower)
  libopenmpi-dev openmpi-bin   # multi-process training and bootstrap
  libhdf5-dev                  # datasets and caches
  libyaml-cpp-dev              # recipes
  nlohmann-json3-dev           # config.json, safetensors headers, metrics
  libgtest-dev libgmock-dev    # tests
  libcli11-dev                 # command line
  libicu-dev                   # Unicode categories for the GPT-2 pre-tokenizer
)

if [ "${TAILOR_SKIP_DEPS:-0}" != "1" ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # LibTorch uses whatever libblas.so.3 the alternatives system selects: make it OpenBLAS.
  blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
  if [ -e "$blas" ] && command -v update-alternatives >/dev/null; then
    current=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
    if [ "$current" != "$(readlink -f "$blas")" ]; then
      ${SUDO:-} update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null
    fi
  fi
fi

BUILD_DIR=${TAILOR_BUILD_DIR:-build}
JOBS=${TAILOR_JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${TAILOR_CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j "$JOBS" ${TAILOR_BUILD_TARGET:+--target $TAILOR_BUILD_TARGET}
