#!/usr/bin/env bash
# Sourced on a GPU machine whose image has CUDA, the PyTorch wheel and the NCCL wheel but not
# tailor's Debian dependencies (yaml-cpp, HDF5, Open MPI, ICU, nlohmann-json, CLI11, GoogleTest),
# and no network. The .deb files are fetched beforehand on a Debian bookworm machine:
#   bash launch/gpu_env.sh --download      # writes .gpu_debs/ (about 33 MB)
# and unpacked there without ever overwriting a file the image already has:
#   source launch/gpu_env.sh               # then configure with "${TAILOR_GPU_CMAKE_ARGS[@]}"
# The packages are unpacked, not installed (no maintainer scripts), so the alternatives links
# Debian would create (mpicxx, mpirun) are replaced by naming the .openmpi programs directly.

TAILOR_GPU_DEBS=(
  libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100
  libhdf5-fortran-102 libhdf5-hl-fortran-100 libsz2 libaec0 libaec-dev libgfortran5
  libicu-dev libicu72
  libopenmpi-dev libopenmpi3 openmpi-common openmpi-bin libpmix2 libhwloc15 libltdl7 libnuma1
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libevent-2.1-7
  libcurl4 libcurl3-gnutls libnghttp2-14 librtmp1 libssh2-1 libpsl5 libldap-2.5-0 libbrotli1
  libsasl2-2
)

if [ "${1:-}" = "--download" ]; then
  set -e
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  mkdir -p .gpu_debs
  (cd .gpu_debs && apt-get download "${TAILOR_GPU_DEBS[@]}")
  grep -qx '/.gpu_debs/' .git/info/exclude 2>/dev/null || echo '/.gpu_debs/' >>.git/info/exclude
  exit 0
fi

tailor_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -e /tmp/.tailor_gpu_debs_unpacked ]; then
  for deb in "$tailor_root"/.gpu_debs/*.deb; do
    [ -e "$deb" ] || { echo "gpu_env: no .gpu_debs/*.deb (run with --download first)" >&2; break; }
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C / --skip-old-files 2>/dev/null
  done
  ldconfig 2>/dev/null || true
  touch /tmp/.tailor_gpu_debs_unpacked
fi

TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
NCCL_ROOT=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
# The NCCL wheel ships only libnccl.so.2; the linker wants the unversioned name too.
if [ -n "$NCCL_ROOT" ] && [ ! -e "$NCCL_ROOT/lib/libnccl.so" ] && [ -e "$NCCL_ROOT/lib/libnccl.so.2" ]; then
  ln -s libnccl.so.2 "$NCCL_ROOT/lib/libnccl.so"
fi
export NCCL_ROOT
TAILOR_GPU_CMAKE_ARGS=(
  -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAILOR_WITH_CUDA=ON -DCMAKE_CXX_FLAGS=-g1
  "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX"
  "-DNCCL_ROOT=$NCCL_ROOT"
  -DMPI_CXX_COMPILER=/usr/bin/mpic++.openmpi -DMPI_C_COMPILER=/usr/bin/mpicc.openmpi
  -DMPIEXEC_EXECUTABLE=/usr/bin/mpirun.openmpi
)
export LD_LIBRARY_PATH="$NCCL_ROOT/lib:$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
