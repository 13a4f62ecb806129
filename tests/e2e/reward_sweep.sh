#!/usr/bin/env bash
# `tailor sweep` runs recipes over seeds and prints the table; `tailor data synth` writes the
# synthetic benchmark in the raw UltraFeedback shape, which `tailor data import` reads back.
# Usage: bash tests/e2e/reward_sweep.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/e2e.sh
source "$(dirname "$0")/lib/e2e.sh" "$@"  # tailor, work, fail; cwd: the repository root
export OMP_NUM_THREADS=1
TINY=(data.synthetic_prompts=40 model.n_layer=1 model.n_embd=16 model.n_head=2 vae.latent_dim=8
  vae.hidden_dim=16 vae.survey_size=10 vae.context_size=4 train.max_steps=4 train.batch_size=8
  train.eval_every=2 export.enabled=false)

"$tailor" sweep recipes/rm_synth_bt.yaml recipes/rm_synth_vae_adaptive.yaml "${TINY[@]}" \
  "output_dir=$work/sweep" --seeds 0,1 --table "$work/table.md" >"$work/stdout" 2>"$work/stderr" ||
  { cat "$work/stderr"; echo "FAIL sweep exited non-zero"; exit 1; }
grep -q "| rm_synth_bt.yaml | bt |" "$work/table.md" || { cat "$work/table.md"; echo "FAIL bt row"; exit 1; }
grep -q "| rm_synth_vae_adaptive.yaml | vae + adaptive |" "$work/table.md" ||
  { cat "$work/table.md"; echo "FAIL vae row"; exit 1; }
grep -q "/2 |" "$work/table.md" || { echo "FAIL converged column"; exit 1; }
# Both recipes got output_dir=$work/sweep, so each runs in a subdirectory named after it.
for recipe in rm_synth_bt rm_synth_vae_adaptive; do
  for seed in 0 1; do
    test -f "$work/sweep/$recipe/seed$seed/summary.json" ||
      { echo "FAIL no summary for $recipe seed $seed"; exit 1; }
  done
  test -f "$work/sweep/$recipe/sweep.json" || { echo "FAIL no sweep.json for $recipe"; exit 1; }
done
echo "ok   sweep table"

"$tailor" data synth --out "$work/synth.jsonl" --prompts 40 --seed 3 >/dev/null
test "$(wc -l <"$work/synth.jsonl")" -eq 40 || { echo "FAIL synth line count"; exit 1; }
"$tailor" data import --input "$work/synth.jsonl" --out "$work/synth.h5" --format ultrafeedback \
  >/dev/null
"$tailor" run recipes/rm_synth_bt.yaml "${TINY[@]}" data.source=ultrafeedback \
  "data.path=$work/synth.h5" "output_dir=$work/from_store" >/dev/null 2>"$work/stderr" ||
  { cat "$work/stderr"; echo "FAIL run on imported store"; exit 1; }
test -f "$work/from_store/summary.json" || { echo "FAIL no summary from store run"; exit 1; }
echo "ok   synth -> import -> run"
