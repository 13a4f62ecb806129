#!/usr/bin/env bash
# README command 1: install dependencies, build, and run the quickstart recipe end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
TAILOR_BUILD_TARGET=tailor bash launch/setup.sh
exec ./build/tailor run recipes/quickstart.yaml "$@"
