#!/usr/bin/env bash
# `tailor elicit --interactive` under a pseudo-terminal (util-linux `script`), as a person uses
# it: answers, a reply that is not an answer (asked again), q at question 3; a second session
# that is killed (SIGKILL) while waiting at question 4; a third that finishes. answers.jsonl must
# then hold questions 1..6 exactly once with the answers given, byte for byte what one
# uninterrupted session writes, and the profile must exist.
#   bash tests/e2e/elicit_interactive.sh TAILOR_BINARY REPO_ROOT
source "$(dirname "$0")/lib/e2e.sh" "$@"
TAILOR=$tailor
WORK=$work
command -v script > /dev/null || fail "util-linux script is not on PATH (Debian: bsdutils)"

# A pool of 12 prompts x 6 candidates and a tiny recipe (random 1-layer GPT-2 backbone).
python3 - "$WORK" <<'PY'
import json, sys
words = ["cats", "are", "small", "and", "very", "soft"]
with open(sys.argv[1] + "/pool.jsonl", "w") as f:
    for p in range(12):
        c = [" ".join(words[(i + p) % 6] for i in range(n)) for n in range(1, 7)]
        f.write(json.dumps({"prompt": f"Tell me about animal {p}.", "completions": c}) + "\n")
PY
cat > "$WORK/recipe.yaml" <<YAML
stage: elicit
seed: 1
output_dir: $WORK/run
tokenizer: assets/tokenizers/gpt2
model: {init: random, preset: gpt2-tiny, n_layer: 1, n_embd: 32, n_head: 2}
users: {brief: {shorter_length: 1.0}}
data: {source: pool, path: $WORK/pool.jsonl, max_length: 32, eval_fraction: 0.25}
reward: {oracles: [new_lines, short_words], hidden_dim: 16, pairs_per_prompt: 15}
train: {max_steps: 20, batch_size: 16, log_every: 10}
elicit: {selector: [info_gain], questions: [6], samples: 20, burn_in: 100, thinning: 5}
YAML
"$TAILOR" run "$WORK/recipe.yaml" > "$WORK/run.log" 2>&1 || { cat "$WORK/run.log"; fail "tailor run"; }
ANSWERS="$WORK/run/users/ana/info_gain/answers.jsonl"

ask() {  # ask INPUT_FILE OUTPUT_FILE: one session under a pseudo-terminal
  script -q -e -c "'$TAILOR' elicit --recipe '$WORK/recipe.yaml' --user ana --interactive" \
    /dev/null < "$1" > "$2" 2>&1
}

# Session 1: answer 1; a bad reply, asked again, then 2; q at question 3.
printf '1\nbanana\n2\nq\n' > "$WORK/in1"
ask "$WORK/in1" "$WORK/out1" || { cat "$WORK/out1"; fail "session 1 failed"; }
grep -q '"banana" is not an answer' "$WORK/out1" || { cat "$WORK/out1"; fail "bad input not refused"; }
grep -q 'Question 3 of 6 (3 remain after this one)' "$WORK/out1" || fail "no question 3 shown"
grep -q 'Stopped after 2 of 6 answers' "$WORK/out1" || { cat "$WORK/out1"; fail "no stop message"; }
[ "$(wc -l < "$ANSWERS")" -eq 2 ] || fail "session 1 should leave 2 answers, got $(wc -l < "$ANSWERS")"

# Session 2: answer 0 (no preference) to question 3, then the process is killed at question 4.
mkfifo "$WORK/fifo"
script -q -e -c "'$TAILOR' elicit --recipe '$WORK/recipe.yaml' --user ana --interactive" \
  /dev/null < "$WORK/fifo" > "$WORK/out2" 2>&1 &
SESSION=$!
exec 3> "$WORK/fifo"
printf '0\n' >&3
for _ in $(seq 1 200); do
  [ "$(wc -l < "$ANSWERS")" -ge 3 ] && grep -q 'Question 4 of 6' "$WORK/out2" && break
  sleep 0.1
done
grep -q 'Continuing ana' "$WORK/out2" || { cat "$WORK/out2"; fail "session 2 did not resume"; }
grep -q 'Question 4 of 6' "$WORK/out2" || { cat "$WORK/out2"; fail "session 2 never reached question 4"; }
pkill -KILL -f "elicit --recipe $WORK/recipe.yaml" || true
exec 3>&-
wait "$SESSION" 2>/dev/null || true
[ "$(wc -l < "$ANSWERS")" -eq 3 ] || fail "the killed session should leave 3 answers"

# Session 3: questions 4-6, then the profile.
printf '1\n2\n1\n' > "$WORK/in3"
ask "$WORK/in3" "$WORK/out3" || { cat "$WORK/out3"; fail "session 3 failed"; }
grep -q 'Question 4 of 6' "$WORK/out3" || { cat "$WORK/out3"; fail "session 3 did not start at 4"; }
grep -q 'All 6 questions answered' "$WORK/out3" || { cat "$WORK/out3"; fail "no end message"; }
[ -f "$WORK/run/users/ana/info_gain/profile.json" ] || fail "no profile"

python3 - "$ANSWERS" <<'PY' || fail "answers.jsonl is not questions 1..6 once each with 1 2 0 1 2 1"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["question"] for l in lines] == [1, 2, 3, 4, 5, 6], lines
assert [l["answer"] for l in lines] == [1, 2, 0, 1, 2, 1], [l["answer"] for l in lines]
PY

# One uninterrupted session with the same answers writes the same file.
mv "$WORK/run/users/ana" "$WORK/interrupted"
printf '1\n2\n0\n1\n2\n1\n' > "$WORK/in4"
ask "$WORK/in4" "$WORK/out4" || { cat "$WORK/out4"; fail "session 4 failed"; }
cmp "$WORK/interrupted/info_gain/answers.jsonl" "$ANSWERS" || fail "interrupted sessions asked other questions"
echo "PASS elicit_interactive"
