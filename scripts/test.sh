#!/usr/bin/env bash
# test.sh — runs every test suite (unit, layout, mp) of the build in ${BUILD_DIR:-build}.
# Stress tests (label `stress`) run with a bounded repeat count; STRESS_REPEAT overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
[[ -d "$build_dir" ]] || { echo "test.sh: no build in $build_dir (run scripts/setup.sh first)" >&2; exit 1; }
ctest --test-dir "$build_dir" --output-on-failure -j 2 -LE stress --timeout 180
if ctest --test-dir "$build_dir" -N -L stress | grep -q 'Total Tests: [1-9]'; then
  ctest --test-dir "$build_dir" --output-on-failure -L stress --repeat "until-fail:${STRESS_REPEAT:-2}" --timeout 300
fi
