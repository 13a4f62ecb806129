#!/usr/bin/env bash
# Kill a run (SIGKILL) after its first checkpoint, resume it with train.resume=true, and require
# the final weights and optimizer state to be bit-identical to an uninterrupted run.
#   bash tests/e2e/resume_bit_exact.sh TAILOR_BINARY REPO_ROOT
set -euo pipefail
tailor=$1
cd "$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Dropout on, so the RNG state must be restored too; one fixed thread so float sums are repeatable.
export OMP_NUM_THREADS=1
args=(recipes/quickstart.yaml train.max_steps=120 train.checkpoint_every=10 train.keep_checkpoints=3
  model.dropout=0.1 lora.dropout=0.1 train.eval_every=0 export.enabled=false)

"$tailor" run "${args[@]}" output_dir="$work/full" > "$work/full.log" 2>&1 || { cat "$work/full.log"; exit 1; }

"$tailor" run "${args[@]}" output_dir="$work/killed" > "$work/killed.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$work/killed/checkpoints/latest" ] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
latest=$(cat "$work/killed/checkpoints/latest")
echo "killed after $latest"
[ "$latest" != "step_00000120" ] || { echo "the run finished before it could be killed"; exit 1; }

"$tailor" run "${args[@]}" output_dir="$work/killed" train.resume=true > "$work/resume.log" 2>&1 ||
  { cat "$work/resume.log"; exit 1; }
grep -q "resumed from" "$work/resume.log"
for f in model.safetensors optimizer.safetensors; do
  cmp "$work/full/checkpoints/step_00000120/$f" "$work/killed/checkpoints/step_00000120/$f"
done
echo "resume after kill: bit-identical"
