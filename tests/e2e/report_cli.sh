#!/usr/bin/env bash
# End-to-end test of `tailor report`: bash report_cli.sh TAILOR_BINARY REPO_ROOT
# A synthetic DPO run directory (no training): the report writes the five figures and index.html
# into RUN_DIR/report, prints their paths, notes what is missing, and fails naming the path.
set -euo pipefail
tailor="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

help="$("$tailor" report --help)" || fail "--help exited non-zero"
[[ "$help" == *"--out"* ]] || fail "--help does not mention --out"

run="$work/run"
mkdir -p "$run"
printf 'stage: dpo\nseed: 1\n' >"$run/recipe.yaml"
for step in 10 20 30; do
  printf '{"step":%d,"time":1.5,"loss":0.%d,"rewards/accuracies":0.6,"rewards/margins":0.%d,' \
    "$step" $((70 - step)) "$step" >>"$run/metrics.jsonl"
  printf '"users/a/loss":0.6,"users/a/rewards/accuracies":0.7,"users/a/rewards/margins":0.2,' \
    >>"$run/metrics.jsonl"
  printf '"users/b/loss":null,"users/b/rewards/accuracies":0.5,"users/b/rewards/margins":0.1}\n' \
    >>"$run/metrics.jsonl"
done

# Without summary.json: three figures and a note.
"$tailor" report "$run" >"$work/out" 2>"$work/err" || fail "report exited non-zero: $(cat "$work/err")"
expected="$run/report/loss.svg
$run/report/reward_accuracy.svg
$run/report/reward_margins.svg
$run/report/index.html"
[[ "$(cat "$work/out")" == "$expected" ]] || fail "printed paths: $(cat "$work/out")"
grep -q "summary.json not found" "$work/err" || fail "no note about summary.json on stderr"
grep -q "summary.json not found" "$run/report/index.html" || fail "no note in index.html"

# With summary.json, into --out: the bar chart and the heatmap too.
cat >"$run/summary.json" <<'JSON'
{"win_rate": {"a": {"wins": 3, "ties": 1, "losses": 0, "rate": 0.875},
              "b": {"wins": 1, "ties": 0, "losses": 3, "rate": 0.25}},
 "cross_user": {"adapters": ["a", "b"], "judges": ["a", "b"],
                "win_rate": [[0.875, 0.5], [0.125, 0.25]]}}
JSON
"$tailor" report "$run" --out "$work/elsewhere" >"$work/out" || fail "report --out exited non-zero"
for f in loss reward_accuracy reward_margins win_rate cross_user_win_rate; do
  svg="$work/elsewhere/$f.svg"
  [[ -s "$svg" ]] || fail "$f.svg missing"
  grep -q '<svg xmlns="http://www.w3.org/2000/svg"' <(head -c 200 "$svg") || fail "$f.svg is not SVG"
  grep -q '</svg>' <(tail -n 1 "$svg") || fail "$f.svg is not complete"
  grep -q "src=\"$f.svg\"" "$work/elsewhere/index.html" || fail "index.html does not show $f.svg"
done
[[ "$(grep -c 'class="cell"' "$work/elsewhere/cross_user_win_rate.svg")" == 4 ]] ||
  fail "heatmap does not have 2 x 2 cells"
[[ "$(grep -c 'class="bar"' "$work/elsewhere/win_rate.svg")" == 2 ]] || fail "not 2 bars"
# users/b/loss is null on every record: no points for b, but a has its three.
[[ "$(grep -c 'data-series="a"' "$work/elsewhere/loss.svg")" == 1 ]] || fail "no line for a"
ls -A "$work/elsewhere" | grep -q tmp && fail "temporary files left behind"

# Errors name the path and exit non-zero.
if "$tailor" report "$work/missing" 2>"$work/err"; then fail "missing RUN_DIR succeeded"; fi
grep -q "$work/missing: run directory not found" "$work/err" || fail "error: $(cat "$work/err")"
rm "$run/metrics.jsonl"
if "$tailor" report "$run" 2>"$work/err"; then fail "missing metrics.jsonl succeeded"; fi
grep -q "$run/metrics.jsonl" "$work/err" || fail "error does not name metrics.jsonl: $(cat "$work/err")"
printf '{"step":1,"loss":1}\n{"step":2,"loss":\n{"step":3}\n' >"$run/metrics.jsonl"
if "$tailor" report "$run" 2>"$work/err"; then fail "malformed metrics succeeded"; fi
grep -q "$run/metrics.jsonl:2" "$work/err" || fail "error does not name file:line: $(cat "$work/err")"
echo "report_cli: ok"
