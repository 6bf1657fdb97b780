#!/usr/bin/env bash
# test.sh — runs every test suite (unit, layout, mp, stress, torture) of the build in
# ${BUILD_DIR:-build}.
#   Long runs sit behind ctest labels and run here with a bounded count:
#     stress   repeated STRESS_REPEAT times (default 2)
#     torture  BUS_TORTURE_EVENTS kill/stop events (default 200)
#   scripts/test.sh --full    the long version: 1,000 torture events, 5 stress repeats.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == --full ]]; then
  export BUS_TORTURE_EVENTS=${BUS_TORTURE_EVENTS:-1000}
  export STRESS_REPEAT=${STRESS_REPEAT:-5}
elif [[ $# -gt 0 ]]; then
  echo "test.sh: unknown option '$1' (only --full)" >&2
  exit 2
fi
build_dir=${BUILD_DIR:-build}
[[ -d "$build_dir" ]] || { echo "test.sh: no build in $build_dir (run scripts/setup.sh first)" >&2; exit 1; }
has_label() { ctest --test-dir "$build_dir" -N -L "$1" | grep -q 'Total Tests: [1-9]'; }

ctest --test-dir "$build_dir" --output-on-failure -j 2 -LE 'stress|torture' --timeout 180
if has_label stress; then
  ctest --test-dir "$build_dir" --output-on-failure -L stress --repeat "until-fail:${STRESS_REPEAT:-2}" --timeout 300
fi
if has_label torture; then
  BUS_TORTURE_EVENTS=${BUS_TORTURE_EVENTS:-200} \
    ctest --test-dir "$build_dir" --output-on-failure -L torture --timeout 3600
fi
