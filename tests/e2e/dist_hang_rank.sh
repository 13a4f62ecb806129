#!/usr/bin/env bash
# A stuck rank in a 2-rank ZeRO-3 run (issue 10, acceptance 5): rank 1 is alive but never
# arrives at the next collective (SIGSTOP after the first checkpoint). With
# dist.collective_timeout_s=T, rank 0's collective watchdog (dist/collective_watchdog.h) must
# notice and end the job:
#   - mpirun and every process of the job (the stopped rank included) are gone within T + 20 s
#     of the SIGSTOP (T + 0.5 s until the watchdog's check, the rest for mpirun's teardown);
#   - mpirun's exit status is non-zero;
#   - stderr has exactly one line "[rank 0/2] error: collective NAME #N (OPERAND) waited W s for
#     the other ranks (dist.collective_timeout_s = T); a rank is stuck or dead", with W >= T (the
#     operand is left out for a barrier);
# then the latest checkpoint resumes on 2 ranks (same timeout, so a healthy run must not trip it)
# and reaches its max_steps.
#   bash tests/e2e/dist_hang_rank.sh TAILOR_BINARY REPO_ROOT
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
token="dist_hang_rank.$$.$RANDOM"
source tests/e2e/lib/mpi_job.sh  # the jobs' processes (cwd is the repository root)
export OMP_NUM_THREADS=1
# Collective timeout: long enough that a healthy rank on a loaded 2-core machine (ctest runs two
# tests at a time) is never 8 s late to a collective of this tiny model, short enough to keep the
# test quick.
timeout_s=8
slack_s=20
limit=$((timeout_s + slack_s))  # seconds allowed between the SIGSTOP and the end of every process

describe() {  # pid...: one line each, for failure messages
  local p
  for p in "$@"; do
    echo "  pid $p (state $(proc_state "$p")): $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"
  done
}
# A stopped process left behind would hold its resources forever: continue it, then kill it.
cleanup() {
  local -a left
  mapfile -t left < <(job_procs)
  if [ ${#left[@]} -gt 0 ]; then
    kill -CONT "${left[@]}" 2>/dev/null || true
    kill -9 "${left[@]}" 2>/dev/null || true
  fi
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


# The tiny GPT-2 of dist_kill_rank.sh at ZeRO stage 3 (every step all-gathers parameters and
# reduce-scatters gradients), a checkpoint every 2 steps, so many steps that it is still training
# when rank 1 is stopped.
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
  zero_stage: 3
  backend: mpi
  collective_timeout_s: $timeout_s
export:
  enabled: false
EOF

mpi=(mpirun --oversubscribe --allow-run-as-root -np 2 --bind-to none -x OMP_NUM_THREADS
  -x TAILOR_E2E_RUN)
# start_job LOG TAILOR-RUN-ARGS...: runs in the background; sets job_pid.
start_job() {
  local log=$1
  shift
  TAILOR_E2E_RUN=$token "${mpi[@]}" "$tailor" run "$work/recipe.yaml" "$@" > "$work/$log" 2>&1 &
  job_pid=$!
}

# ---- 1. SIGSTOP rank 1 after the first checkpoint -------------------------------------------
start_job hung.log
deadline=$((SECONDS + 300))
until [ -f "$work/run/checkpoints/latest" ]; do
  alive "$job_pid" || fail "the 2-rank run ended before its first checkpoint"
  [ "$SECONDS" -lt "$deadline" ] || fail "no checkpoint within 300 s"
  sleep 0.1
done
# Stop it in training (step 3 under way), not while the ranks finish writing that checkpoint.
until grep -q "^step 3/" "$work/hung.log"; do
  alive "$job_pid" || fail "the 2-rank run ended before step 3"
  [ "$SECONDS" -lt "$deadline" ] || fail "no step 3 within 300 s"
  sleep 0.05
done
victim=""
until [ -n "$victim" ]; do
  victim=$(rank_pid "$job_pid" 1)
  [ -n "$victim" ] || alive "$job_pid" || fail "the run ended before rank 1 could be stopped"
  [ -n "$victim" ] || [ "$SECONDS" -lt "$deadline" ] || fail "no tailor process with OMPI_COMM_WORLD_RANK=1 under mpirun"
  [ -n "$victim" ] || sleep 0.1
done
kill -STOP "$victim"
stopped_at=$(date +%s.%N)
stopped_second=$SECONDS
echo "stopped rank 1 (pid $victim) after $(cat "$work/run/checkpoints/latest")"
sleep 0.5
[ "$(proc_state "$victim")" = T ] || fail "rank 1 (pid $victim) is not stopped after SIGSTOP (state $(proc_state "$victim"))"
wait_all_gone "$job_pid" $((stopped_second + limit)) || {
  mapfile -t left < <(job_procs)
  fail "$limit s after rank 1 was stopped (dist.collective_timeout_s = $timeout_s), still running:"$'\n'"$(describe "${left[@]}")"
}
elapsed=$(awk -v a="$stopped_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
rc=0
wait "$job_pid" || rc=$?
[ "$rc" -ne 0 ] || fail "mpirun exited 0 although rank 1 was stuck"
pattern="^\[rank 0/2\] error: collective [a-z_]+ #[0-9]+( \([^)]*\))? waited ([0-9.]+) s for the other ranks \(dist\.collective_timeout_s = $timeout_s\); a rank is stuck or dead$"
lines=$(grep -cE "collective .* waited .* for the other ranks" "$work/hung.log" || true)
[ "$lines" -eq 1 ] || fail "expected exactly one watchdog line in stderr, found $lines"
line=$(grep -E "collective .* waited .* for the other ranks" "$work/hung.log")
[[ "$line" =~ $pattern ]] || fail "the watchdog line does not read as expected: $line"
waited=${BASH_REMATCH[2]}
awk -v w="$waited" -v t="$timeout_s" 'BEGIN { exit !(w >= t) }' ||
  fail "the watchdog fired after $waited s, before the timeout of $timeout_s s"
echo "$line"
echo "every process ended ${elapsed} s after the SIGSTOP (bound $limit s); mpirun exit status $rc"

# ---- 2. Resume the latest checkpoint on 2 ranks ---------------------------------------------
latest=$(basename "$(cat "$work/run/checkpoints/latest")")
[[ "$latest" =~ ^step_([0-9]{8})$ ]] || fail "checkpoints/latest holds '$latest', not step_NNNNNNNN"
step=$((10#${BASH_REMATCH[1]}))
[ -f "$work/run/checkpoints/$latest/manifest.json" ] || fail "$latest has no manifest.json"
target=$((step + 4))
want=$(printf 'step_%08d' "$target")
start_job resume.log train.resume=true train.max_steps=$target
wait_all_gone "$job_pid" $((SECONDS + 300)) || fail "the resumed run did not finish within 300 s"
rc=0
wait "$job_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the resumed run failed (exit status $rc)"
grep -q "resumed from.*$latest" "$work/resume.log" || fail "resume.log does not say it resumed from $latest"
got=$(basename "$(cat "$work/run/checkpoints/latest")")
[ "$got" = "$want" ] || fail "after resuming, checkpoints/latest is $got, expected $want"
echo "resumed from $latest on 2 ranks and ended at $want"
