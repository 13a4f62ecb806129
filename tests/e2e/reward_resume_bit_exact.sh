#!/usr/bin/env bash
# The reward stage's checkpoints: kill a run (SIGKILL) after its first checkpoint, resume it with
# train.resume=true, and require the final weights and optimizer state (and the held-out rewards,
# the summary and the metrics) to be bit-identical to an uninterrupted run. Two runs cover the
# state the stage keeps between steps:
#   VPL, adaptive sampling with a uniform tail (each user's visiting order and cursor, examples
#   drawn per phase), PCGrad (visiting orders from the stage's generator), contrastive loss,
#   dropout (torch's generator), 2 micro-batches per step;
#   Bradley-Terry, uniform epochs (the sampler position), bf16 weights (AdamW's fp32 master
#   copies), 2 micro-batches per step;
#   Bradley-Terry with LoRA on a pretrained base (the checkpoints hold only the adapters and the
#   score head; the base comes back from model.path).
#   bash tests/e2e/reward_resume_bit_exact.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/e2e.sh
source "$(dirname "$0")/lib/e2e.sh" "$@"  # tailor, work, fail; cwd: the repository root
# One fixed thread so float sums are repeatable.
export OMP_NUM_THREADS=1
tiny=(data.synthetic_prompts=60 model.n_layer=1 model.n_embd=16 model.n_head=2 vae.latent_dim=8
  vae.hidden_dim=16 vae.survey_size=12 vae.context_size=4 model.dropout=0.1 train.max_steps=60
  train.batch_size=4 train.grad_accum=2 train.eval_every=10 train.log_every=5
  train.checkpoint_every=5 train.keep_checkpoints=2 export.enabled=false)
final=step_00000060

# What must agree besides the checkpoint files: summary.json but its wall time and whether the
# context embeddings came from the cache, metrics.jsonl but its clock and throughput.
summary() { grep -v -e '"wall_seconds"' -e '"context_cache"' "$1/summary.json"; }
metrics() { sed -E 's/"time":[^,]*,//; s/,"tokens_per_s":[^,}]*//' "$1/metrics.jsonl"; }

# check NAME RECIPE [OVERRIDES...]: the overrides come after (and win over) the tiny ones.
check() {
  local name=$1
  local args=("$2" "${tiny[@]}" "${@:3}")
  local dir=$work/$name
  "$tailor" run "${args[@]}" output_dir="$dir/full" >"$dir.full.log" 2>&1 ||
    { cat "$dir.full.log"; echo "FAIL $name: uninterrupted run"; exit 1; }

  local latest
  kill_at_checkpoint "$dir/killed" "$dir.killed.log" "${args[@]}"
  echo "$name: killed after $latest"
  [ "$latest" != "$final" ] || { echo "FAIL $name: the run finished before it was killed"; exit 1; }

  "$tailor" run "${args[@]}" output_dir="$dir/killed" train.resume=true >"$dir.resume.log" 2>&1 ||
    { cat "$dir.resume.log"; echo "FAIL $name: resumed run"; exit 1; }
  grep -q "resumed from .*$latest at step" "$dir.resume.log" ||
    { cat "$dir.resume.log"; echo "FAIL $name: did not resume from $latest"; exit 1; }
  for f in model.safetensors optimizer.safetensors; do
    cmp "$dir/full/checkpoints/$final/$f" "$dir/killed/checkpoints/$final/$f" ||
      { echo "FAIL $name: $f differs"; exit 1; }
  done
  cmp "$dir/full/eval_predictions.jsonl" "$dir/killed/eval_predictions.jsonl" ||
    { echo "FAIL $name: held-out rewards differ"; exit 1; }
  diff <(summary "$dir/full") <(summary "$dir/killed") ||
    { echo "FAIL $name: summary.json differs"; exit 1; }
  diff <(metrics "$dir/full") <(metrics "$dir/killed") ||
    { echo "FAIL $name: metrics.jsonl differs"; exit 1; }
  echo "ok   $name: resume after kill is bit-identical"
}

check vpl_adaptive_pcgrad recipes/rm_synth_vae_adaptive.yaml train.steps_per_phase=20 \
  train.grad_surgery=pcgrad vae.contrastive=0.5
check bt_bf16 recipes/rm_synth_bt.yaml train.precision=bf16

# A pretrained base: the backbone a short VPL run exports (a Hugging Face GPT-2 directory).
"$tailor" run recipes/rm_synth_vae.yaml "${tiny[@]}" train.max_steps=2 train.checkpoint_every=0 \
  export.enabled=true output_dir="$work/base" >"$work/base.log" 2>&1 ||
  { cat "$work/base.log"; echo "FAIL base model run"; exit 1; }
check bt_lora_pretrained recipes/rm_synth_bt.yaml model.init=pretrained \
  model.path="$work/base/export/backbone" model.n_layer=0 model.n_embd=0 model.n_head=0 \
  model.n_positions=0 lora.enabled=true lora.rank=4 lora.dropout=0.1
# Only the adapters and the head were checkpointed.
saved=$work/bt_lora_pretrained/full/checkpoints/$final/model.safetensors
! grep -qa '"transformer.wte.weight"' "$saved" ||
  { echo "FAIL bt_lora_pretrained: the checkpoint holds the frozen base"; exit 1; }
grep -qa 'lora_A' "$saved" && grep -qa '"score.weight"' "$saved" ||
  { echo "FAIL bt_lora_pretrained: no LoRA or score tensors in the checkpoint"; exit 1; }
