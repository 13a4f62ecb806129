#!/usr/bin/env bash
# The per-user DPO demo's recipes, shrunk to seconds: SFT base (recipes/dpo_demo_base.yaml), then
# four users' adapters on its export (recipes/dpo_demo.yaml), then `tailor report`. Checks that
# the recipes run as shipped (only sizes overridden) and leave what docs/dpo.md promises: the
# generated pairs, one adapter per user, win rates and the cross-user matrix, the figures.
# Usage: bash tests/e2e/dpo_demo_smoke.sh TAILOR_BINARY REPO_ROOT
set -euo pipefail
TAILOR=$(realpath "$1")
ROOT=$(realpath "$2")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
export OMP_NUM_THREADS=1
fail() { echo "FAIL $*"; exit 1; }

"$TAILOR" run recipes/dpo_demo_base.yaml "output_dir=$WORK/base" train.max_steps=20 \
  train.eval_every=0 samples.prompts=0 >"$WORK/base.log" 2>&1 || { cat "$WORK/base.log"; fail "base"; }
"$TAILOR" run recipes/dpo_demo.yaml "output_dir=$WORK/dpo" "model.path=$WORK/base/export" \
  train.max_steps=2 train.pairs_per_user=2 train.eval_every=0 train.checkpoint_every=0 \
  generate.completions=4 generate.max_new_tokens=8 \
  eval.prompts=2 eval.completions=2 eval.max_new_tokens=8 \
  >"$WORK/dpo.log" 2>&1 || { cat "$WORK/dpo.log"; fail "dpo"; }
grep -q "win rate of each user's adapter" "$WORK/dpo.log" || fail "no win-rate table printed"
for user in brief verbose quiet shouty; do
  test -f "$WORK/dpo/export/users/$user/adapter_model.safetensors" || fail "no adapter for $user"
  grep -q "\"$user\"" "$WORK/dpo/pairs.jsonl" || fail "no pairs for $user"
  grep -q "\"users/$user/rewards/accuracies\"" "$WORK/dpo/metrics.jsonl" || fail "no metrics for $user"
done
grep -q '"cross_user"' "$WORK/dpo/summary.json" || fail "no cross-user matrix in summary.json"
"$TAILOR" report "$WORK/dpo" >"$WORK/report.log" 2>&1 || { cat "$WORK/report.log"; fail "report"; }
for figure in loss reward_accuracy win_rate cross_user_win_rate; do
  test -s "$WORK/dpo/report/$figure.svg" || fail "no $figure.svg"
done
echo "ok   dpo demo recipes (shrunk)"
