#!/usr/bin/env bash
# End-to-end test of `tailor tokenize`: bash tokenize_cli.sh TAILOR_BINARY REPO_ROOT
# Expected ids are GPT-2's (hand-checked in vocab.json: "Hello" 15496, "Ġworld" 995,
# "Ċ" 198, "č" 201, "<|endoftext|>" 50256).
set -euo pipefail
tailor="$1"
repo="$2"
tok="$repo/assets/tokenizers/gpt2"
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
for flag in --tokenizer --text --input --decode --allow-special; do
  [[ "$help" == *"$flag"* ]] || fail "--help does not mention $flag"
done

# Encode / decode a string.
expect_eq "encode --text" "$("$tailor" tokenize --tokenizer "$tok" --text "Hello world")" \
  "[15496, 995]"
expect_eq "encode empty" "$("$tailor" tokenize --tokenizer "$tok" --text "")" "[]"
"$tailor" tokenize --tokenizer "$tok" --decode --text "[15496, 995, 198]" >"$work/raw"
printf 'Hello world\n' >"$work/raw.expected"
cmp -s "$work/raw" "$work/raw.expected" || fail "decode --text is not the raw text"

# Special tokens only with --allow-special.
expect_eq "special off" \
  "$("$tailor" tokenize --tokenizer "$tok" --text "Hello<|endoftext|>")" \
  "[15496, 27, 91, 437, 1659, 5239, 91, 29]"
expect_eq "special on" \
  "$("$tailor" tokenize --tokenizer "$tok" --allow-special --text "Hello<|endoftext|>")" \
  "[15496, 50256]"

# --input: one array per line; CRLF keeps its \r; an empty line is []; no final newline is fine.
printf 'Hello world\r\n\nHello' >"$work/lines.txt"
"$tailor" tokenize --tokenizer "$tok" --input "$work/lines.txt" >"$work/ids.jsonl"
printf '[15496, 995, 201]\n[]\n[15496]\n' >"$work/ids.expected"
cmp -s "$work/ids.jsonl" "$work/ids.expected" || fail "encode --input: $(cat "$work/ids.jsonl")"
# The same through stdin.
"$tailor" tokenize --tokenizer "$tok" --input - <"$work/lines.txt" >"$work/ids_stdin.jsonl"
cmp -s "$work/ids_stdin.jsonl" "$work/ids.expected" || fail "encode --input - (stdin)"

# --decode --input: one JSON string per line, newlines escaped.
printf '[15496, 995, 201]\n[]\n[15496, 198, 198, 15496]\n' >"$work/ids2.jsonl"
"$tailor" tokenize --tokenizer "$tok" --decode --input "$work/ids2.jsonl" >"$work/text.jsonl"
printf '"Hello world\\r"\n""\n"Hello\\n\\nHello"\n' >"$work/text.expected"
cmp -s "$work/text.jsonl" "$work/text.expected" || fail "decode --input: $(cat "$work/text.jsonl")"

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
if "$tailor" tokenize --tokenizer "$tok" >/dev/null 2>&1; then fail "no --text/--input accepted"; fi
if "$tailor" tokenize --tokenizer "$tok" --text a --input "$work/lines.txt" >/dev/null 2>&1; then
  fail "--text together with --input accepted"
fi
if "$tailor" tokenize --tokenizer "$work/nowhere" --text a >/dev/null 2>"$work/err"; then
  fail "missing tokenizer directory accepted"
fi
grep -q "nowhere" "$work/err" || fail "missing tokenizer error does not name the directory"

echo "tokenize_cli: all checks passed"
