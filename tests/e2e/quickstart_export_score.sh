#!/usr/bin/env bash
# A shortened quickstart: train, export (adapter and --merge-lora), and score both exports;
# the adapter and the merged model must give the same NLLs.
#   bash tests/e2e/quickstart_export_score.sh TAILOR_BINARY REPO_ROOT
set -euo pipefail
tailor=$1
cd "$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$tailor" run recipes/quickstart.yaml output_dir="$work/run" train.max_steps=12 lora.enabled=true \
  optimizer.lr=1.0e-2 train.checkpoint_every=6 train.eval_every=6 train.log_every=3 samples.prompts=4 \
  > "$work/run.log" 2>&1 ||
  { cat "$work/run.log"; exit 1; }
for f in recipe.yaml metrics.jsonl export/config.json export/model.safetensors export/vocab.json \
  export/merges.txt export/adapter/adapter_config.json export/adapter/adapter_model.safetensors; do
  [ -f "$work/run/$f" ] || { echo "missing $f"; exit 1; }
done
grep -q '"fan_in_fan_out": true' "$work/run/export/adapter/adapter_config.json"
grep -q '"eval_loss"' "$work/run/metrics.jsonl"
# The end-of-run samples: 4 greedy answers and the exact-match rate, also in metrics.jsonl.
[ "$(wc -l < "$work/run/samples.jsonl")" -eq 4 ] || { echo "samples.jsonl must hold 4 lines"; exit 1; }
grep -q 'exact match: [0-9]*/4 ' "$work/run.log" || { echo "no exact-match line"; exit 1; }
grep -q '"samples/exact_match"' "$work/run/metrics.jsonl"
# Progress records carry the process's peak RSS: a tiny GPT-2 run holds more than 50 MiB.
grep -o '"peak_rss_mib":[0-9.]*' "$work/run/metrics.jsonl" | tail -n 1 | cut -d: -f2 |
  awk '{ exit !($1 > 50) }' || { echo "metrics.jsonl lacks a plausible peak_rss_mib"; exit 1; }

head -n 20 assets/datasets/quickstart/eval.jsonl > "$work/in.jsonl"
"$tailor" score --model "$work/run/export" --adapter "$work/run/export/adapter" \
  --input "$work/in.jsonl" --output "$work/adapter.jsonl"
"$tailor" export --checkpoint "$work/run" --out "$work/merged" --merge-lora
[ ! -d "$work/merged/adapter" ] || { echo "--merge-lora must not write an adapter"; exit 1; }
"$tailor" score --model "$work/merged" --input "$work/in.jsonl" --output "$work/merged.jsonl"
# The base alone must score differently (the adapter was trained).
"$tailor" score --model "$work/run/export" --input "$work/in.jsonl" --output "$work/base.jsonl"

python_free_compare() {  # awk: every |a - b| <= tol * max(1, |b|) on the nll fields
  paste -d' ' <(grep -o '"nll":[^,}]*' "$1" | cut -d: -f2) <(grep -o '"nll":[^,}]*' "$2" | cut -d: -f2) |
    awk -v tol="$3" 'function abs(x){return x<0?-x:x} { d=abs($1-$2); m=abs($2)>1?abs($2):1;
      if (d > tol*m) { bad=1; print "line " NR ": " $1 " vs " $2 } } END { exit bad }'
}
[ "$(wc -l < "$work/adapter.jsonl")" -eq 20 ]
python_free_compare "$work/adapter.jsonl" "$work/merged.jsonl" 1e-5
if python_free_compare "$work/adapter.jsonl" "$work/base.jsonl" 1e-6 > /dev/null; then
  echo "adapter scores equal the base's: training changed nothing"; exit 1
fi
echo "quickstart export/score: OK"
