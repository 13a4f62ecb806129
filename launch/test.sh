#!/usr/bin/env bash
# README command 2: install dependencies, build everything, and run the whole test suite.
#   bash launch/test.sh                # all tests
#   bash launch/test.sh -L unit        # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
cd build
# ctest runs two tests at a time on two cores: one intra-op thread each, so OpenMP threads of
# concurrent tests do not spin against each other (measured: 20x slower when oversubscribed).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec ctest --output-on-failure -j "${TAILOR_TEST_JOBS:-2}" --timeout 1200 "$@"
