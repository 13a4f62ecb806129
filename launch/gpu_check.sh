#!/usr/bin/env bash
# Everything tailor checks on a GPU machine, in one run (docs/gpu.md):
#   bash launch/gpu_check.sh [STAGE...]     # default: probe deps build gpu interop bench
#                                           # (extras: dpo_users on the GPU, zero3 overlap on 16 cores)
# Stages: probe (what the machine has), deps (launch/gpu_env.sh), build (CUDA build in
# build-gpu/; TAILOR_GPU_TARGETS overrides the targets), unit (the CPU unit tests against this
# LibTorch; build with TAILOR_GPU_TARGETS="tailor tailor_tests" first), gpu (ctest -L gpu and the
# quickstart on the GPU), interop (launch/hf_interop.py against transformers), bench (tailor
# bench --device cuda next to the PyTorch eager baseline of launch/bench_gpu.py).
# A failed stage is reported and the next one still runs. Logs go to build-gpu/check/, one file
# per stage, the summary table is printed last, and everything is packed into
# $OUT/gpu_results.tgz (with TAILOR_KEEP_BINARIES=1 also the built programs, gpu_binaries.tgz).
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=$PWD/build-gpu/check
mkdir -p "$LOGS"
JOBS=${TAILOR_JOBS:-$(nproc)}
export LOGS JOBS
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(probe deps build gpu interop bench)
# A stage still running at TAILOR_DEADLINE_S seconds after the start is stopped, so that the
# results of the others are packed before an outer time limit (the GPU lease) ends the run.
DEADLINE=$(($(date +%s) + ${TAILOR_DEADLINE_S:-3600}))
declare -A RESULT SECONDS_TAKEN

probe() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  head -2 /etc/os-release
  g++ --version | head -1
  cmake --version | head -1
  nvcc --version | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI, "gpus", torch.cuda.device_count())'
  python3 -c 'import transformers; print("transformers", transformers.__version__)'
  python3 -c 'import peft; print("peft", peft.__version__)' || echo "peft: not installed"
  python3 -c 'import nvidia.nccl as m; print("nccl wheel", list(m.__path__)[0])' || echo "nccl wheel: missing"
  for p in mpirun mpicxx h5cc ninja; do printf '%s: %s\n' "$p" "$(command -v $p || echo missing)"; done
  for h in yaml-cpp/yaml.h nlohmann/json.hpp hdf5/serial/hdf5.h unicode/uchar.h gtest/gtest.h CLI/CLI.hpp; do
    [ -e /usr/include/$h ] && echo "have /usr/include/$h" || echo "lack /usr/include/$h"
  done
}

deps() { source launch/gpu_env.sh && printf '%q ' cmake "${TAILOR_GPU_CMAKE_ARGS[@]}"; echo; }

build() {
  source launch/gpu_env.sh >/dev/null 2>&1
  cmake -S . -B build-gpu "${TAILOR_GPU_CMAKE_ARGS[@]}" &&
    cmake --build build-gpu -j "$JOBS" --target ${TAILOR_GPU_TARGETS:-tailor tailor_gpu_tests tailor_mpi_tests} -- -k 0
}

unit() {
  source launch/gpu_env.sh >/dev/null 2>&1
  (cd build-gpu && OMP_NUM_THREADS=1 timeout ${TAILOR_UNIT_TIMEOUT:-240} ctest -L unit -j "$JOBS" --timeout 120 --output-on-failure)
}

gpu() {
  source launch/gpu_env.sh >/dev/null 2>&1
  local rc=0
  (cd build-gpu && ctest -L gpu -j "${TAILOR_GPU_TEST_JOBS:-4}" --output-on-failure --timeout 300) || rc=1
  # What a user runs: the quickstart recipe on the GPU, end to end, with NCCL (dist.backend
  # auto) and with the single-process backend.
  for backend in auto single; do
    rm -rf build-gpu/quickstart_cuda_$backend
    echo "--- quickstart, dist.device=cuda dist.backend=$backend"
    time build-gpu/tailor run recipes/quickstart.yaml dist.device=cuda dist.backend=$backend \
      output_dir=build-gpu/quickstart_cuda_$backend || rc=1
    tail -n 2 build-gpu/quickstart_cuda_$backend/metrics.jsonl
  done
  return $rc
}

interop() {
  source launch/gpu_env.sh >/dev/null 2>&1
  PYTHONUNBUFFERED=1 python3 launch/hf_interop.py --tailor "$PWD/build-gpu/tailor" --work "$LOGS/interop"
}

bench() {
  source launch/gpu_env.sh >/dev/null 2>&1
  PYTHONUNBUFFERED=1 python3 launch/bench_gpu.py --tailor "$PWD/build-gpu/tailor" --out "$LOGS/bench.json" \
    ${TAILOR_BENCH_ARGS:-}
}

# Not in the default list (run it by name when device time is left): the per-user DPO bench on the
# GPU (one multi-adapter run vs 16 single-adapter runs, issue 11) and the ZeRO-3 overlap bench on
# this machine's 16 host cores, where the communication thread has a core of its own (issue 10:
# on the 2-core CPU VM both ranks' compute already fills the cores).
extras() {
  source launch/gpu_env.sh >/dev/null 2>&1
  local rc=0
  build-gpu/tailor bench --suite dpo_users --device cuda --dpo-preset gpt2 --dpo-users 16 \
    --dpo-steps 4 --dpo-pairs 4 --dpo-tokens 112 || rc=1
  if command -v mpirun >/dev/null; then
    for p in 1 0; do
      OMP_NUM_THREADS=7 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
        build-gpu/tailor bench --suite zero3 --zero3-steps 2 --zero3-rounds 2 \
        --zero3-prefetch $p || rc=1
    done
  else
    echo "no mpirun on this machine: the zero3 overlap bench needs it"
  fi
  return $rc
}

# Logs and results (without the interop models) in one archive under $OUT, refreshed after every
# stage so that a run stopped at its time limit still returns what it finished.
pack() {
  [ -n "${OUT:-}" ] || return 0
  tar -czf "$OUT/gpu_results.tgz" -C build-gpu --exclude='check/interop/*/*' check
  if [ "${TAILOR_KEEP_BINARIES:-0}" = 1 ] && [ -x build-gpu/tailor ]; then
    tar -czf "$OUT/gpu_binaries.tgz" -C build-gpu tailor tests/tailor_gpu_tests 2>/dev/null
  fi
}

for stage in "${STAGES[@]}"; do
  echo "=== $stage ($(date +%T))"
  start=$(date +%s)
  left=$((DEADLINE - $(date +%s)))
  if [ $left -le 5 ]; then
    rc=124
    echo "not started: the deadline had passed" >"$LOGS/$stage.log"
  else
    # The stage in its own process group under timeout, so its children stop with it.
    timeout --kill-after=5 $left bash -c "$(declare -f "$stage"); $stage" >"$LOGS/$stage.log" 2>&1
    rc=$?
  fi
  SECONDS_TAKEN[$stage]=$(($(date +%s) - start))
  RESULT[$stage]=$([ $rc -eq 0 ] && echo ok || echo "FAILED rc=$rc")
  tail -n "${TAILOR_TAIL:-15}" "$LOGS/$stage.log"
  echo "$stage ${RESULT[$stage]} ${SECONDS_TAKEN[$stage]}s" >>"$LOGS/summary.txt"
  pack
done
echo "=== summary"
for stage in "${STAGES[@]}"; do printf '%-8s %-14s %4ss\n' "$stage" "${RESULT[$stage]}" "${SECONDS_TAKEN[$stage]}"; done
