# shellcheck shell=bash
# What the 2-rank e2e scripts (dist_*.sh) share: their start, a tiny GPT-2 recipe, starting and
# watching a job under mpirun, and resuming its latest checkpoint (sourced; not a test itself:
# ctest runs tests/e2e/*.sh only). A script begins with
#   source "$(dirname "$0")/lib/dist_job.sh" "$@"
# passing its own arguments, TAILOR_BINARY REPO_ROOT. On top of lib/e2e.sh (tailor, work, fail)
# and lib/mpi_job.sh (job_procs, alive, rank_pid, wait_all_gone, ...) this
#   - fails the test at once where mpirun is missing: these tests must run wherever the suite does
#     (the set-up script installs Open MPI), so a missing mpirun is an error, never a skip;
#   - sets token (TAILOR_E2E_RUN of every process of this test's jobs, see lib/mpi_job.sh) and
#     exports OMP_NUM_THREADS=1 (one intra-op thread per rank: float sums in a fixed order);
#   - makes fail print the tail of every $work/*.log, and cleanup end whatever is left of the
#     jobs (a stopped process is continued first: it would hold its resources forever).
# shellcheck source-path=SCRIPTDIR source=e2e.sh
source "${BASH_SOURCE[0]%/*}/e2e.sh" "$@"
if ! command -v mpirun > /dev/null 2>&1; then
  fail "mpirun is not on PATH: $(basename "$0") runs 2 ranks under Open MPI's mpirun" \
    "(apt install openmpi-bin; launch/setup.sh installs it)"
fi
token="$(basename "$0" .sh).$$.$RANDOM"
# shellcheck source-path=SCRIPTDIR source=mpi_job.sh
source "${BASH_SOURCE[0]%/*}/mpi_job.sh"
export OMP_NUM_THREADS=1

cleanup() {
  local -a left
  mapfile -t left < <(job_procs)
  if [ ${#left[@]} -gt 0 ]; then
    kill -CONT "${left[@]}" 2>/dev/null || true
    kill -9 "${left[@]}" 2>/dev/null || true
  fi
  rm -rf "$work"
}
fail() {
  echo "FAIL: $*" >&2
  local log
  for log in "$work"/*.log; do
    [ -f "$log" ] && { echo "--- $log (last 40 lines)"; tail -n 40 "$log"; } >&2
  done
  exit 1
}
describe() {  # pid...: one line each, for failure messages
  local p
  for p in "$@"; do
    echo "  pid $p (state $(proc_state "$p")): $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"
  done
}
fail_running() {  # MESSAGE: fails with MESSAGE and a line for every process of the jobs still there
  local -a left
  mapfile -t left < <(job_procs)
  fail "$1, still running:"$'\n'"$(describe "${left[@]}")"
}

# write_recipe [DIST-LINE...]: $work/recipe.yaml, a GPT-2 small enough to step many times a second
# on one core, on the quickstart data, with output_dir $work/run; the DIST-LINEs join the dist
# section after "backend: mpi" (CPU collectives even where a GPU would make auto pick NCCL). What
# differs between the tests comes from these variables (the defaults in brackets), usually given
# as assignments before the call:
#   seed [7]; dropout [0.0] (of the model and of LoRA); lora [false]; schedule [constant] and
#   warmup [0]; max_steps [100000: still training, minutes later, when a rank is hurt]; batch
#   ["grad_accum: 1"]; checkpoint_every [2]; keep [3] (train.keep_checkpoints).
write_recipe() {
  local line dist=""
  for line in "$@"; do
    dist+=$'\n'"  $line"
  done
  cat > "$work/recipe.yaml" << EOF
stage: sft
seed: ${seed:-7}
output_dir: $work/run
tokenizer: assets/tokenizers/gpt2
model:
  init: random
  preset: gpt2-tiny
  n_layer: 2
  n_head: 2
  n_embd: 32
  dropout: ${dropout:-0.0}
lora:
  enabled: ${lora:-false}
  rank: 4
  alpha: 8.0
  dropout: ${dropout:-0.0}
data:
  train: assets/datasets/quickstart/train.jsonl
  eval: assets/datasets/quickstart/eval.jsonl
  format: prompt_response
  max_length: 64
optimizer:
  lr: 1.0e-3
schedule:
  type: ${schedule:-constant}
  warmup_steps: ${warmup:-0}
train:
  max_steps: ${max_steps:-100000}
  micro_batch_size: 2
  ${batch:-grad_accum: 1}
  log_every: 1
  eval_every: 0
  eval_batches: 1
  checkpoint_every: ${checkpoint_every:-2}
  keep_checkpoints: ${keep:-3}
dist:
  backend: mpi$dist
export:
  enabled: false
EOF
}

mpi=(mpirun --oversubscribe --allow-run-as-root -np 2 --bind-to none -x OMP_NUM_THREADS)
# start_job LOG [VAR=VALUE...] -- [TAILOR-RUN-ARGS...]: `tailor run $work/recipe.yaml` on 2 ranks
# in the background, output to $work/LOG, the VARs (and TAILOR_E2E_RUN=$token) in every rank's
# environment. Sets job_pid (mpirun's) and deadline (300 s from now).
start_job() {
  local log=$1
  shift
  local -a envs=("TAILOR_E2E_RUN=$token")
  while [ "$1" != -- ]; do
    envs+=("$1")
    shift
  done
  shift
  local -a exports=()
  local e
  for e in "${envs[@]}"; do
    exports+=(-x "${e%%=*}")
  done
  env "${envs[@]}" "${mpi[@]}" "${exports[@]}" "$tailor" run "$work/recipe.yaml" "$@" \
    > "$work/$log" 2>&1 &
  job_pid=$!
  deadline=$((SECONDS + 300))
}
# job_status: waits for mpirun; sets rc to its exit status.
job_status() {
  rc=0
  wait "$job_pid" || rc=$?
}
# wait_checkpoint [PREFIX]: until $work/run/checkpoints/latest exists (the job's first checkpoint);
# fails (PREFIX before the message) if the job ends first or at the deadline.
wait_checkpoint() {
  until [ -f "$work/run/checkpoints/latest" ]; do
    alive "$job_pid" || fail "${1:-}the 2-rank run ended before its first checkpoint"
    [ "$SECONDS" -lt "$deadline" ] || fail "${1:-}no checkpoint within 300 s"
    sleep 0.05
  done
}
# wait_rank RANK VERB: sets victim to the process of MPI rank RANK of the job (rank_pid), waiting
# for it to appear; fails if the job ends first ("... before rank RANK could be VERB") or at the
# deadline.
wait_rank() {
  victim=""
  until [ -n "$victim" ]; do
    victim=$(rank_pid "$job_pid" "$1")
    [ -n "$victim" ] || alive "$job_pid" || fail "the run ended before rank $1 could be $2"
    [ -n "$victim" ] || [ "$SECONDS" -lt "$deadline" ] ||
      fail "no process with OMPI_COMM_WORLD_RANK=$1 under mpirun"
    [ -n "$victim" ] || sleep 0.1
  done
}
# latest_step: sets latest (the directory name checkpoints/latest holds) and step (its number).
latest_step() {
  latest=$(basename "$(cat "$work/run/checkpoints/latest")")
  [[ "$latest" =~ ^step_([0-9]{8})$ ]] ||
    fail "checkpoints/latest holds '$latest', not step_NNNNNNNN"
  step=$((10#${BASH_REMATCH[1]}))
}
# resume_job N: resumes the checkpoint `latest` (latest_step first) on 2 ranks with
# train.resume=true, N steps further; it must succeed, say it resumed from that checkpoint and
# end with checkpoints/latest at the new step (sets want, that checkpoint's name).
resume_job() {
  local target=$((step + $1)) got
  want=$(printf 'step_%08d' "$target")
  start_job resume.log -- train.resume=true train.max_steps=$target
  wait_all_gone "$job_pid" "$deadline" || fail "the resumed run did not finish within 300 s"
  job_status
  [ "$rc" -eq 0 ] || fail "the resumed run failed (exit status $rc)"
  grep -q "resumed from.*$latest" "$work/resume.log" ||
    fail "resume.log does not say it resumed from $latest"
  got=$(basename "$(cat "$work/run/checkpoints/latest")")
  [ "$got" = "$want" ] || fail "after resuming, checkpoints/latest is $got, expected $want"
}
