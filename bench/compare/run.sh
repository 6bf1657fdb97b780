#!/usr/bin/env bash
# bench/compare/run.sh — bus side by side with the physical limit, nats-server and ZeroMQ: ONE command.
#
#   bench/compare/run.sh [--smoke] [--out DIR] [--no-build] [driver options...]
#
#   --smoke        1 run per cell, 0.1 s per measurement: < 30 s in total; what CI runs
#   (default)      5 runs per cell (median), 1 s per measurement: ~5 minutes; for people
#   --out DIR      where results.json, table.md, latency16.png and logs/ go (default BUILD_DIR/compare)
#   --no-build     don't (re)build the peers first
#   driver options --repeat R, --seconds S, --cpus A,B, --transports limit,bus,nats,zmq,
#                  --runs lat16,lat4k,tput16,tput256,tput4k,fan16,rr16,jspub64,jspub1k,jspub64x4,
#                         jspub64sync,jspub1ksync,jspub64syncx4,jsreplay64,jsconsume64
#   BUILD_DIR      the CMake build directory (default: build, as scripts/setup.sh makes it)
#
# What runs: compare_driver starts nats-server on 127.0.0.1 (free port, JetStream, store in a temp
# dir), then for every repetition and workload runs peer_limit, peer_bus, peer_nats and peer_zmq
# back to back, each pinned (publisher on CPU A, subscribers on CPU B), and prints ONE table:
#   row | limit | bus | nats | zmq | bus/limit | nats/bus | zmq/bus
# Ratios are cost ratios (time per operation, >1 = the left one is slower), median of per-run pairs.
# Then bridge_bench (when the NATS bridge is built) starts a 3-node nats-server cluster, two buses
# and a `bus bridge` on each, and prints bus -> NATS -> bus beside a nats.c client pair on the same
# cluster (request/reply RTT, throughput 16 B / 256 B): OUT/bridge.md, OUT/bridge.json.
# Packages: bench/compare/install-peers.sh (nats-server, libnats-dev, libzmq3-dev, gnuplot-nox).
# Exit status: non-zero if a peer failed or timed out; the targets are reported, not enforced.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
[[ $build = /* ]] || build=$root/$build

command="bench/compare/run.sh $*"
smoke=0 build_first=1 out="" pass=()
while (($#)); do
  case $1 in
    --smoke) smoke=1; pass+=(--smoke) ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    --no-build) build_first=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done
out=${out:-$build/compare}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ ! -f $build/CMakeCache.txt ]]; then
  echo "run.sh: no CMake build in $build (run scripts/setup.sh, or set BUILD_DIR)" >&2
  exit 2
fi
if ((build_first)); then
  # Peers for libraries installed after the last configure need a re-configure to be picked up.
  if { pkg-config --exists libnats 2>/dev/null && [[ ! -x $build/bin/peer_nats ]]; } ||
     { pkg-config --exists libzmq 2>/dev/null && [[ ! -x $build/bin/peer_zmq ]]; }; then
    cmake "$build" >/dev/null
  fi
  cmake --build "$build" --target bench_compare -j "${JOBS:-2}" >"$out/build.log" 2>&1 || {
    tail -30 "$out/build.log" >&2
    echo "run.sh: build failed (full log: $out/build.log)" >&2
    exit 2
  }
fi
[[ -x $build/bin/compare_driver ]] || { echo "run.sh: $build/bin/compare_driver not built" >&2; exit 2; }

command -v nats-server >/dev/null || echo "run.sh: nats-server not installed (bench/compare/install-peers.sh): NATS column skipped" >&2
((smoke)) || echo "run.sh: full run, about 5 minutes; load average now: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

tmp=$(mktemp -d /tmp/bus-compare.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$root" status --porcelain 2>/dev/null | head -1) ]] || rev+="+dirty"
label="git $rev"
v=$(nats-server --version 2>/dev/null | awk '{print $2}') && [[ -n $v ]] && label+=", nats-server $v"
v=$(pkg-config --modversion libnats 2>/dev/null) && label+=", nats.c $v"
v=$(pkg-config --modversion libzmq 2>/dev/null) && label+=", libzmq $v"

rc=0
"$build/bin/compare_driver" --bin "$build/bin" --out "$out" --tmp "$tmp" --label "$label" \
  --command "$command" "${pass[@]}" || rc=$?

if [[ -x $build/bin/bridge_bench ]] && command -v nats-server >/dev/null; then
  echo
  bridge_flags=(--bin "$build/bin" --json "$out/bridge.json")
  ((smoke)) && bridge_flags+=(--smoke)
  "$build/bin/bridge_bench" "${bridge_flags[@]}" | tee "$out/bridge.md" || rc=$?
fi

if command -v gnuplot >/dev/null && [[ -f $out/latency16.gp ]]; then
  if gnuplot "$out/latency16.gp" 2>"$out/logs/gnuplot.log"; then
    echo "wrote $out/latency16.png"
  else
    echo "run.sh: gnuplot failed (see $out/logs/gnuplot.log)" >&2
  fi
else
  echo "run.sh: gnuplot not installed: no latency16.png (the data is in $out/lat16_percentiles.dat)" >&2
fi
exit $rc
