#!/usr/bin/env bash
# Faults in a 2-rank run (issue 3, "Faults"; acceptance 4):
#   1. SIGKILL rank 1 after the first checkpoint: mpirun must exit non-zero and every process of
#      the job must be gone within 60 s; the latest checkpoint must be complete and resume on 2
#      ranks to the expected step.
#   2. Rank 1 throws (TAILOR_FAULT_RANK=1 TAILOR_FAULT_STEP=3 makes the trainer throw
#      Error("fault", "injected fault at step 3 on rank 1") there): every rank must exit within
#      60 s of the error, non-zero, and stderr must carry rank 1's "[rank 1/2] error: ..." line.
#   bash tests/e2e/dist_kill_rank.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/dist_job.sh
source "$(dirname "$0")/lib/dist_job.sh" "$@"  # tailor, work, fail, the jobs (lib/mpi_job.sh)
limit=60  # seconds allowed between a rank's death or error and the end of every rank

# The tiny GPT-2 of lib/dist_job.sh, a checkpoint every 2 steps, so many steps that the run is
# still going (minutes) when it is killed; ZeRO stage 2: sharded gradients and optimizer state, a
# real sharded checkpoint.
write_recipe "zero_stage: 2"

# ---- 1. SIGKILL of rank 1 after the first checkpoint ----------------------------------------
start_job killed.log --
wait_checkpoint
wait_rank 1 killed
kill -9 "$victim"
killed_at=$SECONDS
echo "killed rank 1 (pid $victim) after $(cat "$work/run/checkpoints/latest")"
wait_all_gone "$job_pid" $((killed_at + limit)) || fail_running "$limit s after rank 1 was killed"
job_status
[ "$rc" -ne 0 ] || fail "mpirun exited 0 although rank 1 was killed"
echo "every rank ended $((SECONDS - killed_at)) s after the kill; mpirun exit status $rc"

# The checkpoint `latest` names must be complete: manifest, trainer state, one shard per rank,
# each shard a whole safetensors file (8-byte header length + JSON header within the file).
latest_step
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
resume_job 2
[ -f "$work/run/checkpoints/$want/manifest.json" ] || fail "$want has no manifest.json"
echo "resumed from $latest on 2 ranks and ended at $want"

# ---- 2. Rank 1 throws ---------------------------------------------------------------------
rm -rf "$work/run"
start_job fault.log TAILOR_FAULT_RANK=1 TAILOR_FAULT_STEP=3 --
fault_at=""
while alive "$job_pid" || [ -n "$(job_procs)" ]; do
  if [ -z "$fault_at" ] && grep -q "injected fault" "$work/fault.log"; then
    fault_at=$SECONDS
  fi
  [ -z "$fault_at" ] || [ "$SECONDS" -lt $((fault_at + limit)) ] ||
    fail_running "$limit s after rank 1's error"
  [ "$SECONDS" -lt "$deadline" ] ||
    fail "no injected fault within 300 s: does the trainer honour TAILOR_FAULT_RANK/TAILOR_FAULT_STEP?"
  sleep 0.2
done
job_status
[ "$rc" -ne 0 ] || fail "mpirun exited 0 although rank 1 threw"
grep -Eq '\[rank 1/2\].*injected fault at step 3 on rank 1' "$work/fault.log" ||
  fail "stderr has no '[rank 1/2] ... injected fault at step 3 on rank 1' line"
# No step after the fault can have completed: a checkpoint needs every rank.
if [ -f "$work/run/checkpoints/latest" ]; then
  got=$(basename "$(cat "$work/run/checkpoints/latest")")
  [[ "$got" < "step_00000004" ]] || fail "a checkpoint ($got) was written after rank 1 failed at step 3"
fi
echo "rank 1's injected fault ended every rank (mpirun exit status $rc)"
