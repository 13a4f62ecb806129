#!/usr/bin/env bash
# End-to-end test of `tailor generate` on the directory a one-step quickstart run exports
# (gpt2-tiny, the GPT-2 tokenizer, a PEFT adapter): text and ids prompts, output order and
# fields, greedy and seeded reproducibility, --batch-size independence, errors naming lines.
#   bash tests/e2e/generate_cli.sh TAILOR_BINARY REPO_ROOT
set -euo pipefail
tailor=$(realpath "$1")
cd "$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$tailor" run recipes/quickstart.yaml output_dir="$work/run" train.max_steps=1 lora.enabled=true \
  train.eval_every=0 train.eval_batches=1 train.checkpoint_every=0 train.log_every=1 samples.prompts=0 \
  >"$work/run.log" 2>&1 || { cat "$work/run.log"; fail "quickstart run"; }
model="$work/run/export"
adapter="$work/run/export/adapter"
[ -f "$model/config.json" ] && [ -f "$adapter/adapter_config.json" ] || fail "no export"

help="$("$tailor" generate --help)" || fail "--help exited non-zero"
for flag in --model --adapter --input --output --max-new-tokens --temperature --top-k --top-p \
  --seed --num-return-sequences --dtype --batch-size; do
  [[ "$help" == *"$flag"* ]] || fail "--help does not mention $flag"
done

# Three text prompts and two id prompts ("Hello world" = [15496, 995]), a blank line between.
cat >"$work/in.jsonl" <<'EOF'
{"prompt": "Once upon a time"}
{"ids": [15496, 995]}

{"prompt": "The capital of France is"}
{"ids": [464, 3290, 318, 257]}
{"prompt": "Q: what is 2 + 2?\nA:"}
EOF
gen() {  # gen OUT [flags...]
  local out=$1
  shift
  "$tailor" generate --model "$model" --adapter "$adapter" --input "$work/in.jsonl" \
    --max-new-tokens 8 --output "$out" "$@" 2>"$work/err" || { cat "$work/err"; fail "generate $*"; }
}

# Greedy: one line per prompt in input order, every field, 8 tokens (or fewer ending in EOS),
# the same on a second run and with another --batch-size.
gen "$work/greedy.jsonl"
[ "$(wc -l <"$work/greedy.jsonl")" -eq 5 ] || fail "greedy: $(wc -l <"$work/greedy.jsonl") lines"
expected_prompts='"Once upon a time"
[15496,995]
"The capital of France is"
[464,3290,318,257]
"Q: what is 2 + 2?\nA:"'
prompts="$(sed -E 's/^\{"prompt":(.*),"ids":\[.*$/\1/' "$work/greedy.jsonl")"
[ "$prompts" == "$expected_prompts" ] || fail "prompts not echoed in input order: $prompts"
while IFS= read -r line; do
  [[ "$line" =~ ^\{\"prompt\":.*,\"ids\":\[([0-9,]*)\],\"completion\":\".*\",\"finish_reason\":\"(eos|length)\"\}$ ]] ||
    fail "bad output line: $line"
  n=$(awk -F, '{print NF}' <<<"${BASH_REMATCH[1]}")
  if [ "${BASH_REMATCH[2]}" == length ]; then
    [ "$n" -eq 8 ] || fail "length line with $n ids: $line"
  else
    [[ "${BASH_REMATCH[1]}" =~ (^|,)50256$ ]] || fail "eos line not ending in 50256: $line"
  fi
done <"$work/greedy.jsonl"
gen "$work/greedy2.jsonl" --batch-size 2
cmp -s "$work/greedy.jsonl" "$work/greedy2.jsonl" || fail "greedy differs between runs / batch sizes"

# The completion of an ids line decodes its ids (`tailor tokenize --decode`).
line2=$(sed -n 2p "$work/greedy.jsonl")
ids=$(sed -E 's/.*"ids":(\[[0-9,]*\]).*/\1/' <<<"$line2")
decoded=$("$tailor" tokenize --tokenizer "$model" --decode --text "$ids")
completion=$(sed -E 's/.*"completion":"(.*)","finish_reason".*/\1/' <<<"$line2")
# (Only when the JSON needs no escapes and the bytes are valid UTF-8, which JSON cannot carry.)
if [[ "$line2" == *'"finish_reason":"length"'* && "$completion" != *'\'* ]] &&
  iconv -f UTF-8 -t UTF-8 <<<"$decoded" >/dev/null 2>&1; then
  [ "$completion" == "$decoded" ] || fail "completion [$completion] != decoded ids [$decoded]"
fi

# Sampling: R = 2 lines per prompt, prompt-major; a seed replays (any --batch-size); another
# seed draws differently.
sample=(--temperature 1.5 --top-k 0 --num-return-sequences 2)
gen "$work/s7.jsonl" "${sample[@]}" --seed 7
[ "$(wc -l <"$work/s7.jsonl")" -eq 10 ] || fail "R=2: $(wc -l <"$work/s7.jsonl") lines"
r_prompts="$(sed -E 's/^\{"prompt":(.*),"ids":\[.*$/\1/' "$work/s7.jsonl" | uniq)"
[ "$r_prompts" == "$expected_prompts" ] || fail "R=2 lines not prompt-major: $r_prompts"
gen "$work/s7b.jsonl" "${sample[@]}" --seed 7 --batch-size 1
cmp -s "$work/s7.jsonl" "$work/s7b.jsonl" || fail "seed 7 does not replay"
gen "$work/s8.jsonl" "${sample[@]}" --seed 8
if cmp -s "$work/s7.jsonl" "$work/s8.jsonl"; then fail "seeds 7 and 8 drew the same"; fi
if cmp -s "$work/s7.jsonl" <(sed p "$work/greedy.jsonl"); then fail "sampling gave greedy"; fi

# bf16 and stdout.
"$tailor" generate --model "$model" --input "$work/in.jsonl" --max-new-tokens 3 --dtype bf16 \
  >"$work/bf16.jsonl" || fail "bf16 to stdout"
[ "$(wc -l <"$work/bf16.jsonl")" -eq 5 ] || fail "bf16: $(wc -l <"$work/bf16.jsonl") lines"

# Errors name the file and line; nothing is written.
bad() {  # bad CONTENT EXPECTED_SUBSTRING
  printf '%b' "$1" >"$work/bad.jsonl"
  if "$tailor" generate --model "$model" --input "$work/bad.jsonl" --output "$work/bad.out" \
    >/dev/null 2>"$work/err"; then
    fail "accepted: $1"
  fi
  grep -qF "$2" "$work/err" || fail "error for [$1] lacks [$2]: $(cat "$work/err")"
  [ ! -e "$work/bad.out" ] || fail "output written despite the error"
}
bad '{"prompt": "a"}\n{"prompt": "b"\n' "bad.jsonl:2: invalid JSON"
bad '{"prompt": "a"}\n\n{"text": "b"}\n' "bad.jsonl:3: expected"
bad '{"ids": [1, 50257]}\n' "bad.jsonl:1: token id 50257"
bad '{"ids": [1]}\n{"ids": []}\n' "bad.jsonl:2: the prompt has no tokens"
bad "{\"ids\": [$(seq -s, 1 250)]}\n" "bad.jsonl:1: 250 prompt tokens"
if "$tailor" generate --model "$model" --input "$work/in.jsonl" --top-p 0 >/dev/null 2>&1; then
  fail "--top-p 0 accepted"
fi

echo "generate_cli: all checks passed"
