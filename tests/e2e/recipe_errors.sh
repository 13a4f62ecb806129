#!/usr/bin/env bash
# Recipe mistakes make `tailor run` exit non-zero with a message naming the key (or override),
# and nothing is written: the run directory is not even created. --print-config writes nothing.
# Usage: bash tests/e2e/recipe_errors.sh TAILOR_BINARY REPO_ROOT
set -uo pipefail
TAILOR=$(realpath "$1")
ROOT=$(realpath "$2")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"  # recipe paths are relative to the working directory
OUT="$WORK/out"
failures=0

# expect_error NAME EXPECTED_SUBSTRING ARGS...: run must fail, stderr must contain the substring,
# and $OUT must not exist afterwards.
expect_error() {
  local name=$1 expected=$2
  shift 2
  "$TAILOR" run "$@" >"$WORK/stdout" 2>"$WORK/stderr"
  local rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "FAIL $name: exit code 0"; failures=$((failures + 1))
  elif ! grep -qF -- "$expected" "$WORK/stderr"; then
    echo "FAIL $name: stderr lacks '$expected':"; cat "$WORK/stderr"; failures=$((failures + 1))
  elif [[ -e $OUT ]]; then
    echo "FAIL $name: $OUT was created"; failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
  rm -rf "$OUT"
}

QS=recipes/quickstart.yaml
expect_error wrong-type-in-file "optimizer.lr: expected a number > 0, got \"fast\"" \
  <(sed 's/^  lr: .*/  lr: fast/' "$QS") "output_dir=$OUT"
cp "$QS" "$WORK/typo.yaml"
sed -i 's/^  weight_decay:/  weight_decy:/' "$WORK/typo.yaml"
expect_error unknown-key-in-file "optimizer.weight_decy: unknown key; did you mean 'weight_decay'?" \
  "$WORK/typo.yaml" "output_dir=$OUT"
expect_error override-wrong-type "override 'train.max_steps=ten': train.max_steps" \
  "$QS" "output_dir=$OUT" train.max_steps=ten
expect_error override-unknown-key "override 'train.max_step=3': train.max_step: unknown key" \
  "$QS" "output_dir=$OUT" train.max_step=3
expect_error override-syntax "override 'foo': expected KEY=VALUE" "$QS" "output_dir=$OUT" foo
expect_error override-range "model.dropout: expected a number in [0, 1)" \
  "$QS" "output_dir=$OUT" model.dropout=1.5
expect_error missing-input "data.train: file not found: $WORK/none.jsonl" \
  "$QS" "output_dir=$OUT" "data.train=$WORK/none.jsonl"
expect_error nccl-on-cpu "dist.backend: nccl reduces CUDA tensors" \
  "$QS" "output_dir=$OUT" dist.backend=nccl
expect_error cuda-on-cpu-build "dist.device: cuda: this tailor was built without CUDA" \
  "$QS" "output_dir=$OUT" dist.device=cuda
expect_error missing-recipe "$WORK/absent.yaml" "$WORK/absent.yaml"

# --print-config: exit 0, the resolved recipe on stdout, nothing written.
if "$TAILOR" run "$QS" "output_dir=$OUT" train.max_steps=3 --print-config >"$WORK/printed.yaml" \
    2>"$WORK/stderr" && grep -q "max_steps: 3" "$WORK/printed.yaml" && [[ ! -e $OUT ]]; then
  echo "ok   print-config"
else
  echo "FAIL print-config"; cat "$WORK/stderr"; failures=$((failures + 1))
fi
# The printed recipe is itself a valid recipe that resolves to the same thing.
if "$TAILOR" run "$WORK/printed.yaml" --print-config >"$WORK/printed2.yaml" 2>"$WORK/stderr" &&
    diff <(grep -v '^# Resolved' "$WORK/printed.yaml") <(grep -v '^# Resolved' "$WORK/printed2.yaml"); then
  echo "ok   print-config-round-trip"
else
  echo "FAIL print-config-round-trip"; cat "$WORK/stderr"; failures=$((failures + 1))
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures recipe error check(s) failed"
  exit 1
fi
echo "all recipe error checks passed"
