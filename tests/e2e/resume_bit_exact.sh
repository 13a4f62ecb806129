#!/usr/bin/env bash
# Kill a run (SIGKILL) after its first checkpoint, resume it with train.resume=true, and require
# the final weights and optimizer state to be bit-identical to an uninterrupted run.
#   bash tests/e2e/resume_bit_exact.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/e2e.sh
source "$(dirname "$0")/lib/e2e.sh" "$@"  # tailor, work, fail; cwd: the repository root
# Dropout on, so the RNG state must be restored too; one fixed thread so float sums are repeatable.
export OMP_NUM_THREADS=1
args=(recipes/quickstart.yaml train.max_steps=120 train.checkpoint_every=10 train.keep_checkpoints=3
  model.dropout=0.1 lora.dropout=0.1 train.eval_every=0 export.enabled=false)

"$tailor" run "${args[@]}" output_dir="$work/full" > "$work/full.log" 2>&1 || { cat "$work/full.log"; exit 1; }

kill_at_checkpoint "$work/killed" "$work/killed.log" "${args[@]}"
echo "killed after $latest"
[ "$latest" != "step_00000120" ] || { echo "the run finished before it could be killed"; exit 1; }

"$tailor" run "${args[@]}" output_dir="$work/killed" train.resume=true > "$work/resume.log" 2>&1 ||
  { cat "$work/resume.log"; exit 1; }
grep -q "resumed from" "$work/resume.log"
for f in model.safetensors optimizer.safetensors; do
  cmp "$work/full/checkpoints/step_00000120/$f" "$work/killed/checkpoints/step_00000120/$f"
done
echo "resume after kill: bit-identical"
