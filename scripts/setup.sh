#!/usr/bin/env bash
# setup.sh — installs what bus needs on Debian 12 (as root) and builds it into ./build.
#   scripts/setup.sh [--no-peers]
#   --no-peers (or NO_PEERS=1)  skip the comparison peers of bench/compare (ZeroMQ, gnuplot):
#                               bus builds and tests without them; bench/compare then runs
#                               without the ZeroMQ column (nats-server and the NATS C client
#                               are installed always: the bridge needs them)
#   BUILD_DIR=build  BUILD_TYPE=RelWithDebInfo  SANITIZE=""  (e.g. SANITIZE=address,undefined)
#   JOBS=N      parallel build jobs (default: every core, nproc)
#   SKIP_APT=1  skips the package steps (for machines set up already)
set -euo pipefail
cd "$(dirname "$0")/.."

no_peers=${NO_PEERS:-0}
for arg in "$@"; do
  case "$arg" in
    --no-peers) no_peers=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (only --no-peers)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake ninja-build g++ pkg-config
  libboost-dev            # Boost.Interprocess: the shared-memory segment
  libconcurrentqueue-dev  # moodycamel ConcurrentQueue (process-local queues only)
  libcli11-dev            # command-line parsing for busd and bus
  nlohmann-json3-dev      # JSON output of the CLI
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libxxhash-dev           # XXH3 checksums of journal records
  libcpp-httplib-dev      # busd's monitoring port (/varz, /metrics, ...)
  libncurses-dev          # bus top
  prometheus              # promtool: the tests check /metrics with it
  curl                    # the tests read the monitoring port with a real HTTP client
  python3 python3-pytest  # the Python module (python/bus) and its tests
  file                    # cpack -G DEB finds the binaries to compute the package's dependencies
  libnats-dev             # the NATS C client: bus bridge (libbus/src/bridge)
  nats-server             # the bridge's tests run a real NATS cluster on loopback
)

if [[ "${SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      echo "setup.sh: missing packages (${missing[*]}); run as root or install them" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# The comparison harness's peers (ZeroMQ, gnuplot; nats-server and libnats are above):
# bench/compare builds its ZeroMQ program only when it is there.
if [[ "$no_peers" == 1 ]]; then
  echo "setup.sh: --no-peers: skipping bench/compare's ZeroMQ and gnuplot"
else
  bench/compare/install-peers.sh
fi

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DBUS_SANITIZE="${SANITIZE:-}" \
  -DBUS_WERROR=ON
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}"
echo "setup.sh: built into $build_dir"
