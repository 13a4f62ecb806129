#!/usr/bin/env bash
# The tiny-Mistral recipes end to end, shortened: SFT in full and with LoRA (export, adapter
# under PEFT's names, merged vs adapter scores, generation from the export), and the reward stage
# (Bradley-Terry export scored as MistralForSequenceClassification; VPL).
#   bash tests/e2e/mistral_recipes.sh TAILOR_BINARY REPO_ROOT
# shellcheck source-path=SCRIPTDIR source=lib/e2e.sh
source "$(dirname "$0")/lib/e2e.sh" "$@"  # tailor, work, fail; cwd: the repository root
run() {  # run LOG ARGS...: the command's output goes to LOG, shown on failure
  local log=$1
  shift
  "$@" > "$log" 2>&1 || { cat "$log"; fail "$*"; }
}
short="train.max_steps=6 train.eval_every=3 train.checkpoint_every=3 train.log_every=3"

# SFT, full fine-tune: a MistralForCausalLM export with the tokenizer.json, and samples.
run "$work/full.log" "$tailor" run recipes/mistral_tiny_sft.yaml output_dir="$work/full" $short \
  samples.prompts=4 samples.show=1
grep -q '"model_type": "mistral"' "$work/full/export/config.json" || fail "model_type"
grep -q '"MistralForCausalLM"' "$work/full/export/config.json" || fail "architectures"
for f in model.safetensors tokenizer.json tokenizer_config.json; do
  [ -f "$work/full/export/$f" ] || fail "export/$f missing"
done
[ "$(wc -l < "$work/full/samples.jsonl")" -eq 4 ] || fail "samples.jsonl must hold 4 lines"
grep -q 'exact match: [0-9]*/4' "$work/full.log" || fail "no exact-match line"
# The prompt of a sample is shown in the instruct format it was trained in.
grep -q '"prompt":"\[INST\]' "$work/full/samples.jsonl" || fail "samples not in [INST] format"

# tailor generate --template mistral_instruct samples the export as the SFT stage sampled it: its
# greedy answers (samples.jsonl, prompts shown wrapped) come back token for token.
sed -E 's/.*"prompt":"\[INST\] (.*) \[\/INST\]".*/{"prompt": "\1"}/' "$work/full/samples.jsonl" \
  > "$work/sample_prompts.jsonl"
run "$work/gt.log" "$tailor" generate --model "$work/full/export" --template mistral_instruct \
  --input "$work/sample_prompts.jsonl" --output "$work/sampled_again.jsonl" --max-new-tokens 32
cmp -s <(grep -o '"completion":"[^"]*","[a-z_]*":[a-z]*,"finish_reason":"[a-z]*"' \
           "$work/full/samples.jsonl" | sed -E 's/,"exact_match":[a-z]*//') \
  <(grep -o '"completion":"[^"]*","finish_reason":"[a-z]*"' "$work/sampled_again.jsonl") ||
  fail "generate --template mistral_instruct differs from the SFT stage's samples"

# SFT with LoRA on all seven projections: PEFT adapter names and fan_in_fan_out false.
run "$work/lora.log" "$tailor" run recipes/mistral_tiny_sft.yaml output_dir="$work/lora" $short \
  lora.enabled=true optimizer.lr=1.0e-2 samples.prompts=0
adapter="$work/lora/export/adapter"
grep -q '"fan_in_fan_out": false' "$adapter/adapter_config.json" || fail "fan_in_fan_out"
safetensors_header "$adapter/adapter_model.safetensors" > "$work/adapter_header.json"
for key in base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight \
  base_model.model.model.layers.1.mlp.down_proj.lora_B.weight; do
  grep -q "\"$key\"" "$work/adapter_header.json" || fail "no $key"
done
head -n 12 assets/datasets/quickstart/eval.jsonl > "$work/in.jsonl"
run "$work/s1.log" "$tailor" score --model "$work/lora/export" --adapter "$adapter" \
  --input "$work/in.jsonl" --output "$work/adapter.jsonl"
run "$work/ex.log" "$tailor" export --checkpoint "$work/lora" --out "$work/merged" --merge-lora
run "$work/s2.log" "$tailor" score --model "$work/merged" --input "$work/in.jsonl" \
  --output "$work/merged.jsonl"
paste -d' ' <(grep -o '"nll":[^,}]*' "$work/adapter.jsonl" | cut -d: -f2) \
  <(grep -o '"nll":[^,}]*' "$work/merged.jsonl" | cut -d: -f2) |
  awk 'function abs(x){return x<0?-x:x} { d=abs($1-$2); m=abs($2)>1?abs($2):1;
    if (d > 1e-5*m) { bad=1; print "line " NR ": " $1 " vs " $2 } } END { exit bad }' ||
  fail "merged and adapter scores differ"

# Generation from the LoRA export with its adapter: one line per prompt, greedy is repeatable.
printf '{"prompt": "What sound does a cat make?"}\n{"prompt": "What is 2 plus 2?"}\n' > "$work/p.jsonl"
for i in 1 2; do
  run "$work/g$i.log" "$tailor" generate --model "$work/lora/export" --adapter "$adapter" \
    --input "$work/p.jsonl" --output "$work/gen$i.jsonl" --max-new-tokens 8
done
[ "$(wc -l < "$work/gen1.jsonl")" -eq 2 ] || fail "generate must write 2 lines"
cmp -s "$work/gen1.jsonl" "$work/gen2.jsonl" || fail "greedy generation is not repeatable"

# Reward stage: Bradley-Terry exports MistralForSequenceClassification, which score --reward reads.
rm_short="train.max_steps=4 train.eval_every=4 train.log_every=2 data.synthetic_prompts=40"
run "$work/bt.log" "$tailor" run recipes/mistral_tiny_rm.yaml output_dir="$work/bt" reward.kind=bt \
  train.sampling=uniform $rm_short
grep -q '"MistralForSequenceClassification"' "$work/bt/export/config.json" || fail "BT architecture"
printf '{"prompt": "Name a color.", "chosen": " Blue.", "rejected": " I refuse."}\n' > "$work/pair.jsonl"
run "$work/s3.log" "$tailor" score --model "$work/bt/export" --reward --input "$work/pair.jsonl"
grep -q '"margin"' "$work/s3.log" || fail "no reward margin"
# VPL with adaptive sampling: exports the backbone and the VPL heads.
run "$work/vpl.log" "$tailor" run recipes/mistral_tiny_rm.yaml output_dir="$work/vpl" $rm_short
[ -f "$work/vpl/export/vpl_heads.safetensors" ] || fail "VPL heads missing"
grep -q '"model_type": "mistral"' "$work/vpl/export/backbone/config.json" || fail "VPL backbone"
# The Mistral-7B per-user DPO recipe as shipped, at a user-supplied model path: here the tiny
# Mistral SFT export (tokenizer.json inside), bf16, LoRA on q, k, v, up, down, mistral_instruct;
# only the sizes are overridden. Each user gets a PEFT adapter for Mistral's module names.
for u in ann ben; do
  for i in 1 2 3 4; do
    printf '{"user": "%s", "prompt": "Question %s?", "chosen": " Answer %s.", "rejected": " No."}\n' \
      "$u" "$i" "$i"
  done
done > "$work/user_pairs.jsonl"
run "$work/dpo.log" "$tailor" run recipes/mistral7b_dpo_users.yaml output_dir="$work/dpo" \
  model.path="$work/full/export" tokenizer="$work/full/export" data.path="$work/user_pairs.jsonl" \
  data.max_length=32 train.max_steps=2 train.eval_every=0 train.checkpoint_every=0 \
  train.log_every=1 data.eval_fraction=0.25
for u in ann ben; do
  safetensors_header "$work/dpo/export/users/$u/adapter_model.safetensors" > "$work/$u.json"
  grep -q '"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"' "$work/$u.json" ||
    fail "dpo adapter $u"
done
grep -q '"users/ann/rewards/accuracies"' "$work/dpo/metrics.jsonl" || fail "dpo metrics"
echo "mistral recipes: OK"
