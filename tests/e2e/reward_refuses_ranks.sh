#!/usr/bin/env bash
# The reward stage is not data-parallel yet: under mpirun it must exit non-zero on every rank
# with a message saying so, before writing anything (no N copies racing on one output_dir).
#   bash tests/e2e/reward_refuses_ranks.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/e2e.sh
source "$(dirname "$0")/lib/e2e.sh" "$@"  # tailor, work, fail; cwd: the repository root

if OMP_NUM_THREADS=1 timeout 120 mpirun --oversubscribe --allow-run-as-root -np 2 \
  "$tailor" run recipes/rm_synth_bt.yaml output_dir="$work/rm" > "$work/log" 2>&1; then
  cat "$work/log"
  fail "tailor run of a reward recipe on 2 ranks must exit non-zero"
fi
grep -q "stage 'reward' runs on one process only" "$work/log" || { cat "$work/log"; fail "message"; }
[ ! -e "$work/rm" ] || fail "output_dir was created: $(ls -R "$work/rm")"
echo "reward stage under mpirun: refused, nothing written: OK"
