#!/usr/bin/env bash
# End-to-end test of `tailor tokenize`: bash tokenize_cli.sh TAILOR_BINARY REPO_ROOT
# GPT-2 ids are hand-checked in vocab.json ("Hello" 15496, "Ġworld" 995, "Ċ" 198, "č" 201,
# "<|endoftext|>" 50256); Mistral-7B v0.1 ids in its tokenizer.json ("<s>" 1, "▁Hello" 22557,
# "▁world" 1526, "▁" 28705, "▁." 842, "▁<" 523, "s" 28713, ">" 28767) and in
# tests/fixtures/mistral_tokenizer_cases.jsonl (HF tokenizer(text)["input_ids"]).
set -euo pipefail
tailor="$1"
repo="$2"
tok="$repo/assets/tokenizers/gpt2"
mistral="$repo/assets/tokenizers/mistral"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
expect_eq() {  # expect_eq NAME ACTUAL EXPECTED
  [[ "$2" == "$3" ]] || fail "$1: got [$2], expected [$3]"
}

# --help works and names the interface.
help="$("$tailor" tokenize --help)" || fail "--help exited non-zero"
for flag in --tokenizer --text --input --decode --no-special-tokens --split-special-tokens \
  --skip-special-tokens; do
  [[ "$help" == *"$flag"* ]] || fail "--help does not mention $flag"
done

# Encode / decode a string.
expect_eq "encode --text" "$("$tailor" tokenize --tokenizer "$tok" --text "Hello world")" \
  "[15496, 995]"
expect_eq "encode empty" "$("$tailor" tokenize --tokenizer "$tok" --text "")" "[]"
"$tailor" tokenize --tokenizer "$tok" --decode --text "[15496, 995, 198]" >"$work/raw"
printf 'Hello world\n' >"$work/raw.expected"
cmp -s "$work/raw" "$work/raw.expected" || fail "decode --text is not the raw text"

# Special-token text is the special token (as HF), unless --split-special-tokens; GPT-2's
# post-processor adds nothing, so --no-special-tokens changes nothing.
expect_eq "special text" \
  "$("$tailor" tokenize --tokenizer "$tok" --text "Hello<|endoftext|>")" "[15496, 50256]"
expect_eq "special text split" \
  "$("$tailor" tokenize --tokenizer "$tok" --split-special-tokens --text "Hello<|endoftext|>")" \
  "[15496, 27, 91, 437, 1659, 5239, 91, 29]"
expect_eq "gpt2 --no-special-tokens" \
  "$("$tailor" tokenize --tokenizer "$tok" --no-special-tokens --text "Hello world")" \
  "[15496, 995]"
expect_eq "gpt2 --skip-special-tokens" \
  "$("$tailor" tokenize --tokenizer "$tok" --decode --skip-special-tokens \
    --text "[15496, 50256, 995]")" "Hello world"

# Mistral: <s> first by default (HF tokenizer(text)), none with --no-special-tokens.
expect_eq "mistral encode" "$("$tailor" tokenize --tokenizer "$mistral" --text "Hello world")" \
  "[1, 22557, 1526]"
expect_eq "mistral --no-special-tokens" \
  "$("$tailor" tokenize --tokenizer "$mistral" --no-special-tokens --text "Hello world")" \
  "[22557, 1526]"
expect_eq "mistral empty" "$("$tailor" tokenize --tokenizer "$mistral" --text "")" "[1]"
# Text after a special token is normalized on its own: "." -> "▁." (842), as HF's legacy mode.
expect_eq "mistral <s> in text" \
  "$("$tailor" tokenize --tokenizer "$mistral" --text "Hello <s>.")" "[1, 22557, 28705, 1, 842]"
expect_eq "mistral --split-special-tokens" \
  "$("$tailor" tokenize --tokenizer "$mistral" --split-special-tokens --text "<s>")" \
  "[1, 523, 28713, 28767]"
expect_eq "mistral decode" \
  "$("$tailor" tokenize --tokenizer "$mistral" --decode --text "[1, 22557, 1526]")" \
  "<s> Hello world"
expect_eq "mistral decode --skip-special-tokens" \
  "$("$tailor" tokenize --tokenizer "$mistral" --decode --skip-special-tokens \
    --text "[1, 22557, 1526]")" "Hello world"
printf 'Hello world\n\n Hello\n' >"$work/mistral.txt"
"$tailor" tokenize --tokenizer "$mistral" --input "$work/mistral.txt" >"$work/mistral_ids.jsonl"
printf '[1, 22557, 1526]\n[1]\n[1, 28705, 22557]\n' >"$work/mistral_ids.expected"
cmp -s "$work/mistral_ids.jsonl" "$work/mistral_ids.expected" ||
  fail "mistral encode --input: $(cat "$work/mistral_ids.jsonl")"
# Round trip through --input: encode lines, decode them with --skip-special-tokens.
printf ' Hello  world\nx\ty\n\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80\n[INST] What is 2+2? [/INST]\n   \n' \
  >"$work/hard.txt"
"$tailor" tokenize --tokenizer "$mistral" --input "$work/hard.txt" >"$work/hard_ids.jsonl"
[[ "$(head -c 4 "$work/hard_ids.jsonl")" == "[1, " ]] || fail "mistral --input: no <s> first"
"$tailor" tokenize --tokenizer "$mistral" --decode --skip-special-tokens \
  --input "$work/hard_ids.jsonl" >"$work/hard_text.jsonl"
printf '" Hello  world"\n"x\\ty"\n"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80"\n"[INST] What is 2+2? [/INST]"\n"   "\n' \
  >"$work/hard_text.expected"
cmp -s "$work/hard_text.jsonl" "$work/hard_text.expected" ||
  fail "mistral round trip: $(cat "$work/hard_text.jsonl")"

# Errors name the offending line and exit non-zero.
printf '[15496]\n[1, 2\n' >"$work/bad_json.jsonl"
if "$tailor" tokenize --tokenizer "$tok" --decode --input "$work/bad_json.jsonl" \
  >/dev/null 2>"$work/err"; then
  fail "bad JSON accepted"
fi
grep -q "bad_json.jsonl:2" "$work/err" || fail "bad JSON error does not name line 2: $(cat "$work/err")"
printf '[1]\n[2]\n[50257]\n' >"$work/bad_id.jsonl"
if "$tailor" tokenize --tokenizer "$tok" --decode --input "$work/bad_id.jsonl" \
  >/dev/null 2>"$work/err"; then
  fail "id out of range accepted"
fi
grep -q "bad_id.jsonl:3" "$work/err" || fail "bad id error does not name line 3: $(cat "$work/err")"
if "$tailor" tokenize --tokenizer "$tok" --decode --text '[-1]' >/dev/null 2>&1; then
  fail "negative id accepted"
fi

# Usage errors.
if "$tailor" tokenize --tokenizer "$tok" --skip-special-tokens --text a >/dev/null 2>&1; then
  fail "--skip-special-tokens without --decode accepted"
fi
if "$tailor" tokenize --tokenizer "$tok" --decode --no-special-tokens --text "[1]" \
  >/dev/null 2>&1; then
  fail "--no-special-tokens with --decode accepted"
fi
if "$tailor" tokenize --tokenizer "$tok" >/dev/null 2>&1; then fail "no --text/--input accepted"; fi
if "$tailor" tokenize --tokenizer "$tok" --text a --input "$work/lines.txt" >/dev/null 2>&1; then
  fail "--text together with --input accepted"
fi
if "$tailor" tokenize --tokenizer "$work/nowhere" --text a >/dev/null 2>"$work/err"; then
  fail "missing tokenizer directory accepted"
fi
grep -q "nowhere" "$work/err" || fail "missing tokenizer error does not name the directory"

echo "tokenize_cli: all checks passed"
