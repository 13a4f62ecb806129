#!/usr/bin/env bash
# Faults in a 2-rank run (issue 3, "Faults"; acceptance 4):
#   1. SIGKILL rank 1 after the first checkpoint: mpirun must exit non-zero and every process of
#      the job must be gone within 60 s; the latest checkpoint must be complete and resume on 2
#      ranks to the expected step.
#   2. Rank 1 throws (TAILOR_FAULT_RANK=1 TAILOR_FAULT_STEP=3 makes the trainer throw
#      Error("fault", "injected fault at step 3 on rank 1") there): every rank must exit within
#      60 s of the error, non-zero, and stderr must carry rank 1's "[rank 1/2] error: ..." line.
#   bash tests/e2e/dist_kill_rank.sh TAILOR_BINARY REPO_ROOT
set -euo pipefail
tailor=$1
cd "$2"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not installed (apt install openmpi-bin)"
  exit 0
fi
tailor=$(cd "$(dirname "$tailor")" && pwd)/$(basename "$tailor")
work=$(mktemp -d)
# Every process of this test's MPI jobs carries this variable (mpirun passes its environment to
# local ranks); it is how leftovers are found, without touching other tests' processes.
token="dist_kill_rank.$$.$RANDOM"
source tests/e2e/lib/mpi_job.sh  # the jobs' processes (cwd is the repository root)
export OMP_NUM_THREADS=1
limit=60  # seconds allowed between a rank's death or error and the end of every rank

describe() {  # pid...: one line each, for failure messages
  local p
  for p in "$@"; do
    echo "  pid $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"
  done
}
cleanup() {
  local left
  left=$(job_procs)
  [ -z "$left" ] || kill -9 $left 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] && { echo "--- $log (last 40 lines)"; tail -n 40 "$log"; } >&2
  done
  exit 1
}


# A GPT-2 small enough to step many times a second on one core; a checkpoint every 2 steps; so
# many steps that the run is still going (minutes) when it is killed.
cat > "$work/recipe.yaml" << EOF
stage: sft
seed: 7
output_dir: $work/run
tokenizer: assets/tokenizers/gpt2
model:
  init: random
  preset: gpt2-tiny
  n_layer: 2
  n_head: 2
  n_embd: 32
  dropout: 0.0
lora:
  enabled: false
data:
  train: assets/datasets/quickstart/train.jsonl
  eval: assets/datasets/quickstart/eval.jsonl
  format: prompt_response
  max_length: 64
optimizer:
  lr: 1.0e-3
schedule:
  type: constant
  warmup_steps: 0
train:
  max_steps: 100000
  micro_batch_size: 2
  grad_accum: 1
  log_every: 1
  eval_every: 0
  eval_batches: 1
  checkpoint_every: 2
  keep_checkpoints: 3
dist:
  zero_stage: 2                 # sharded gradients and optimizer state: a real sharded checkpoint
  backend: mpi                  # CPU collectives even where a GPU would make auto pick NCCL
export:
  enabled: false
EOF

mpi=(mpirun --oversubscribe --allow-run-as-root -np 2 --bind-to none -x OMP_NUM_THREADS)
# start_job LOG ENV-ASSIGNMENTS... -- TAILOR-RUN-ARGS...: runs in the background; sets job_pid.
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
}

# ---- 1. SIGKILL of rank 1 after the first checkpoint ----------------------------------------
start_job killed.log --
deadline=$((SECONDS + 300))
until [ -f "$work/run/checkpoints/latest" ]; do
  alive "$job_pid" || fail "the 2-rank run ended before its first checkpoint"
  [ "$SECONDS" -lt "$deadline" ] || fail "no checkpoint within 300 s"
  sleep 0.1
done
victim=""
until [ -n "$victim" ]; do
  victim=$(rank_pid "$job_pid" 1)
  [ -n "$victim" ] || alive "$job_pid" || fail "the run ended before rank 1 could be killed"
  [ -n "$victim" ] || [ "$SECONDS" -lt "$deadline" ] || fail "no process with OMPI_COMM_WORLD_RANK=1 under mpirun"
  [ -n "$victim" ] || sleep 0.1
done
kill -9 "$victim"
killed_at=$SECONDS
echo "killed rank 1 (pid $victim) after $(cat "$work/run/checkpoints/latest")"
wait_all_gone "$job_pid" $((killed_at + limit)) || {
  left=$(job_procs)
  fail "$limit s after rank 1 was killed, still running:"$'\n'"$(describe $left)"
}
rc=0
wait "$job_pid" || rc=$?
[ "$rc" -ne 0 ] || fail "mpirun exited 0 although rank 1 was killed"
echo "every rank ended $((SECONDS - killed_at)) s after the kill; mpirun exit status $rc"

# The checkpoint `latest` names must be complete: manifest, trainer state, one shard per rank,
# each shard a whole safetensors file (8-byte header length + JSON header within the file).
latest=$(basename "$(cat "$work/run/checkpoints/latest")")
[[ "$latest" =~ ^step_([0-9]{8})$ ]] || fail "checkpoints/latest holds '$latest', not step_NNNNNNNN"
step=$((10#${BASH_REMATCH[1]}))
ckpt=$work/run/checkpoints/$latest
[ "$step" -ge 2 ] || fail "latest checkpoint $latest is before the first save (step 2)"
[ -f "$ckpt/manifest.json" ] || fail "$ckpt/manifest.json missing"
[ -f "$ckpt/trainer_state.json" ] || fail "$ckpt/trainer_state.json missing"
grep -Eq '"world_size": *2([^0-9]|$)' "$ckpt/manifest.json" || fail "$ckpt/manifest.json: world_size is not 2"
grep -Eq "\"step\": *$step([^0-9]|$)" "$ckpt/trainer_state.json" ||
  fail "$ckpt/trainer_state.json: step is not $step"
for r in 0 1; do
  shard=$ckpt/$(printf 'shard_%05d-of-00002.safetensors' "$r")
  [ -s "$shard" ] || fail "$shard missing or empty"
  header_len=$(od -An -t u8 -N 8 "$shard" | tr -d ' ')
  size=$(stat -c %s "$shard")
  [ $((8 + header_len)) -le "$size" ] || fail "$shard: header length $header_len exceeds file size $size"
  [ "$(head -c 9 "$shard" | tail -c 1)" = "{" ] || fail "$shard: header is not JSON"
done

# Resume on 2 ranks and train two more steps.
target=$((step + 2))
want=$(printf 'step_%08d' "$target")
start_job resume.log -- train.resume=true train.max_steps=$target
wait_all_gone "$job_pid" $((SECONDS + 300)) || fail "the resumed run did not finish within 300 s"
rc=0
wait "$job_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the resumed run failed (exit status $rc)"
grep -q "resumed from.*$latest" "$work/resume.log" || fail "resume.log does not say it resumed from $latest"
got=$(basename "$(cat "$work/run/checkpoints/latest")")
[ "$got" = "$want" ] || fail "after resuming, checkpoints/latest is $got, expected $want"
[ -f "$work/run/checkpoints/$want/manifest.json" ] || fail "$want has no manifest.json"
echo "resumed from $latest on 2 ranks and ended at $want"

# ---- 2. Rank 1 throws ---------------------------------------------------------------------
rm -rf "$work/run"
start_job fault.log TAILOR_FAULT_RANK=1 TAILOR_FAULT_STEP=3 --
deadline=$((SECONDS + 300))
fault_at=""
while alive "$job_pid" || [ -n "$(job_procs)" ]; do
  if [ -z "$fault_at" ] && grep -q "injected fault" "$work/fault.log"; then
    fault_at=$SECONDS
  fi
  if [ -n "$fault_at" ] && [ "$SECONDS" -ge $((fault_at + limit)) ]; then
    left=$(job_procs)
    fail "$limit s after rank 1's error, still running:"$'\n'"$(describe $left)"
  fi
  [ "$SECONDS" -lt "$deadline" ] ||
    fail "no injected fault within 300 s: does the trainer honour TAILOR_FAULT_RANK/TAILOR_FAULT_STEP?"
  sleep 0.2
done
rc=0
wait "$job_pid" || rc=$?
[ "$rc" -ne 0 ] || fail "mpirun exited 0 although rank 1 threw"
grep -Eq '\[rank 1/2\].*injected fault at step 3 on rank 1' "$work/fault.log" ||
  fail "stderr has no '[rank 1/2] ... injected fault at step 3 on rank 1' line"
# No step after the fault can have completed: a checkpoint needs every rank.
if [ -f "$work/run/checkpoints/latest" ]; then
  got=$(basename "$(cat "$work/run/checkpoints/latest")")
  [[ "$got" < "step_00000004" ]] || fail "a checkpoint ($got) was written after rank 1 failed at step 3"
fi
echo "rank 1's injected fault ended every rank (mpirun exit status $rc)"
