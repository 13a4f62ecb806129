#!/usr/bin/env bash
# The per-user DPO demo end to end (docs/dpo.md, results in docs/results.md): builds tailor if
# needed, trains the base with SFT on the bundled styles data, trains one adapter per user on it,
# and draws the report. Extra arguments are recipe overrides for the DPO part, e.g. seed=1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tailor ] || TAILOR_BUILD_TARGET=tailor bash launch/setup.sh
start=$(date +%s)
./build/tailor run recipes/dpo_demo_base.yaml
./build/tailor run recipes/dpo_demo.yaml "$@"
./build/tailor report runs/dpo_demo
echo "demo wall time: $(( $(date +%s) - start )) s; win rates: runs/dpo_demo/summary.json," \
  "figures: runs/dpo_demo/report/index.html"
