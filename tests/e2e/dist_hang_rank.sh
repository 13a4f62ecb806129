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
# shellcheck source-path=SCRIPTDIR source=lib/dist_job.sh
source "$(dirname "$0")/lib/dist_job.sh" "$@"  # tailor, work, fail, the jobs (lib/mpi_job.sh)
# Collective timeout: long enough that a healthy rank on a loaded 2-core machine (ctest runs two
# tests at a time) is never 8 s late to a collective of this tiny model, short enough to keep the
# test quick.
timeout_s=8
slack_s=20
limit=$((timeout_s + slack_s))  # seconds allowed between the SIGSTOP and the end of every process

# The tiny GPT-2 of lib/dist_job.sh at ZeRO stage 3 (every step all-gathers parameters and
# reduce-scatters gradients), a checkpoint every 2 steps, so many steps that it is still training
# when rank 1 is stopped.
write_recipe "zero_stage: 3" "collective_timeout_s: $timeout_s"

# ---- 1. SIGSTOP rank 1 after the first checkpoint -------------------------------------------
start_job hung.log --
wait_checkpoint
# Stop it in training (step 3 under way), not while the ranks finish writing that checkpoint.
until grep -q "^step 3/" "$work/hung.log"; do
  alive "$job_pid" || fail "the 2-rank run ended before step 3"
  [ "$SECONDS" -lt "$deadline" ] || fail "no step 3 within 300 s"
  sleep 0.05
done
wait_rank 1 stopped
kill -STOP "$victim"
stopped_at=$(date +%s.%N)
stopped_second=$SECONDS
echo "stopped rank 1 (pid $victim) after $(cat "$work/run/checkpoints/latest")"
sleep 0.5
[ "$(proc_state "$victim")" = T ] || fail "rank 1 (pid $victim) is not stopped after SIGSTOP (state $(proc_state "$victim"))"
wait_all_gone "$job_pid" $((stopped_second + limit)) ||
  fail_running "$limit s after rank 1 was stopped (dist.collective_timeout_s = $timeout_s)"
elapsed=$(awk -v a="$stopped_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
job_status
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
latest_step
[ -f "$work/run/checkpoints/$latest/manifest.json" ] || fail "$latest has no manifest.json"
resume_job 4
echo "resumed from $latest on 2 ranks and ended at $want"
