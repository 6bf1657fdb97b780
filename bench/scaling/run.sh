#!/usr/bin/env bash
# bench/scaling/run.sh — bus's scaling curves: ONE command.
#
#   bench/scaling/run.sh [--smoke] [--out DIR] [--repeat R] [--no-build]
#
#   (default)     the full curves, 3 runs per point (median): about 2 minutes
#   --smoke       fewer points and messages, 1 run per point: ~10 s; what CI runs
#   --out DIR     where scaling.json, *.md, *.dat/*.gp, the PNGs, samples.jsonl and raw/ go
#                 (default BUILD_DIR/scaling)
#   --repeat R    runs per point (default 3; 1 with --smoke)
#   --no-build    don't (re)build busd, bus, bench_bus, peer_limit, scaling_peer, scaling_report first
#   BUILD_DIR     the CMake build directory (default: build, as scripts/setup.sh makes it)
#
# The curves (each point: a fresh busd on a private bus, the processes pinned as `bus bench`
# pins them: publishers on the first half of the allowed CPUs, subscribers on the second half;
# every run of every point is preceded by a bare cache-line ping-pong probe, peer_limit, whose
# one-way p50 tells which of its two speeds the VM was in; the tables show it as "limit"):
#  1. subscribers M = 1,2,4,8,16,64: `bus bench S --pub 1 --sub M --size 16 --json` (delivered
#     msgs/s over all subscribers and per subscriber, drops), and publish -> receive latency to
#     each of M subscriber processes (`scaling_peer fanout`, closed loop, timestamps in the
#     payload), with the default 50 us spin-then-sleep and with a 0 spin budget.
#  2. K = 0,10,...,100,000 idle non-matching subscriptions: publish + poll cost
#     (bench_bus BM_PublishRouteHit/K pinned to the publisher CPU, Google Benchmark JSON,
#     max(R,5) repetitions: its time flips between ~65 and ~125 ns), and with `scaling_peer idle`
#     holding K subscriptions, 1->1 16 B throughput and one-way latency (`bus bench --latency`).
#     Broker: 4 KiB rings, max_payload 512, room for 100,100 subscriptions (400 MiB of /dev/shm).
#  3. payload 16 B, 256 B, 4 KiB, 64 KiB, 1 MiB: 1->1 throughput (msgs/s, bytes/s) and one-way
#     latency p50/p99 (`bus bench --latency --size`), broker with max_payload 1 MiB, 16 MiB rings.
# Curves run in the order 2, 3, 1, so that the 64 busy subscriber processes of curve 1 come last.
# Then scaling_report prints one table per curve and writes OUT/scaling.json, OUT/*.md; gnuplot
# (gnuplot-nox) renders OUT/subscribers.png, subscriptions.png, payload.png.
# Exit status: non-zero if a measurement failed or timed out.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
[[ $build = /* ]] || build=$root/$build
bin=$build/bin

command="bench/scaling/run.sh $*"
smoke=0 build_first=1 out="" repeat=""
while (($#)); do
  case $1 in
    --smoke) smoke=1 ;;
    --out) out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    --repeat) repeat=$2; shift ;;
    --repeat=*) repeat=${1#--repeat=} ;;
    --no-build) build_first=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n $repeat ]] || repeat=$((smoke ? 1 : 3))
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --repeat must be a positive number" >&2; exit 2; }
out=${out:-$build/scaling}
mkdir -p "$out/raw" "$out/logs"
out=$(cd "$out" && pwd)

if [[ ! -f $build/CMakeCache.txt ]]; then
  echo "run.sh: no CMake build in $build (run scripts/setup.sh, or set BUILD_DIR)" >&2
  exit 2
fi
if ((build_first)); then
  cmake --build "$build" --target bench_scaling -j "${JOBS:-2}" >"$out/logs/build.log" 2>&1 || {
    tail -30 "$out/logs/build.log" >&2
    echo "run.sh: build failed (full log: $out/logs/build.log)" >&2
    exit 2
  }
fi
for b in busd bus bench_bus peer_limit scaling_peer scaling_report; do
  [[ -x $bin/$b ]] || { echo "run.sh: $bin/$b not built" >&2; exit 2; }
done

# ------------------------------------------------------------------------------ the points
if ((smoke)); then
  sub_points=(1 4 16)          tput_msgs=200000  fan_msgs=300
  idle_points=(0 1000 10000)   idle_tput_msgs=300000  idle_lat_msgs=5000
  size_points=(16 4096 1048576)
else
  sub_points=(1 2 4 8 16 64)   tput_msgs=1000000  fan_msgs=2000
  idle_points=(0 10 100 1000 10000 100000)  idle_tput_msgs=2000000  idle_lat_msgs=20000
  size_points=(16 256 4096 65536 1048576)
fi
max_idle=${idle_points[-1]}
# Messages per payload size (throughput; latency round trips): about 0.2-0.5 s of copying each.
size_msgs() {  # size -> "tput_msgs lat_msgs"
  local s=$1 t l
  case $s in
    16|256) t=2000000 l=20000 ;;
    4096) t=500000 l=20000 ;;
    65536) t=50000 l=5000 ;;
    *) t=4000 l=1000 ;;
  esac
  if ((smoke)); then t=$((t / 10)) l=$((l / 4)); fi
  echo "$t $l"
}
step_timeout=$((smoke ? 60 : 300))
bm_repeat=$repeat
((smoke || bm_repeat >= 5)) || bm_repeat=5

# The CPUs we may use (Cpus_allowed_list, e.g. "0-1" or "0,2-3"); as `bus bench`: publisher on
# the first, subscribers on the first of the second half.
cpus=()
IFS=, read -r -a ranges <<<"$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)"
for range in "${ranges[@]}"; do
  if [[ $range == *-* ]]; then
    for ((c = ${range%-*}; c <= ${range#*-}; c++)); do cpus+=("$c"); done
  elif [[ -n $range ]]; then
    cpus+=("$range")
  fi
done
((${#cpus[@]} > 0)) || cpus=(0)
pub_cpu=${cpus[0]}
sub_cpu=${cpus[$((${#cpus[@]} / 2))]}

# ---------------------------------------------------------------------------- plumbing
samples=$out/samples.jsonl
: >"$samples"
failed=0
busd_pid="" bus_name="" idle_pid=""
tag=$$

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

stop_idle() {
  [[ -n $idle_pid ]] || return 0
  kill -TERM "$idle_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 600; i++)); do kill -0 "$idle_pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$idle_pid" 2>/dev/null || true
  wait "$idle_pid" 2>/dev/null || true
  idle_pid=""
}

stop_busd() {
  stop_idle
  [[ -n $busd_pid ]] || return 0
  kill -TERM "$busd_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 200; i++)); do kill -0 "$busd_pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$busd_pid" 2>/dev/null; then
    echo "run.sh: busd $bus_name did not stop in 10 s: killed" >&2
    kill -KILL "$busd_pid" 2>/dev/null || true
  fi
  wait "$busd_pid" 2>/dev/null || true
  rm -f "/dev/shm/bus.$bus_name"  # only if it was killed; it is our own private bus
  busd_pid="" bus_name=""
}
trap stop_busd EXIT
trap 'exit 130' INT TERM

# start_busd NAME [busd flags...]: a private broker; waits until its segment is there.
start_busd() {
  bus_name=$1; shift
  "$bin/busd" --bus "$bus_name" -q "$@" 2>>"$out/logs/busd.log" &
  busd_pid=$!
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -e /dev/shm/bus.$bus_name ]] && return 0
    kill -0 "$busd_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "run.sh: busd --bus $bus_name $* did not start (see $out/logs/busd.log)" >&2
  return 1
}

# sample CURVE X REP KIND command...: runs the command (stdout: one JSON line) and appends
# {"curve":..,"x":..,"rep":..,"kind":..,"load":..,"data":<that line>} to samples.jsonl.
sample() {
  local curve=$1 x=$2 rep=$3 kind=$4; shift 4
  local load result rc=0 log="$out/logs/$curve-$x-$kind-$rep.log"
  load=$(loadavg)
  result=$(timeout "$step_timeout" "$@" 2>"$log" | tail -n 1) || rc=$?
  if ((rc == 0)) && [[ $result == \{* ]]; then
    printf '{"curve":"%s","x":%s,"rep":%s,"kind":"%s","load":"%s","data":%s}\n' \
      "$curve" "$x" "$rep" "$kind" "$load" "$result" >>"$samples"
  else
    local why
    why=$( { tail -n 2 "$log"; if ((rc == 124)); then echo "timed out after ${step_timeout}s"; else echo "exit status $rc"; fi; } |
      tr '\n"\\' "  /" | cut -c1-300)
    printf '{"curve":"%s","x":%s,"rep":%s,"kind":"%s","load":"%s","error":"%s"}\n' \
      "$curve" "$x" "$rep" "$kind" "$load" "$why" >>"$samples"
    echo "run.sh: $curve x=$x $kind run $rep failed: $why" >&2
    failed=$((failed + 1))
  fi
}

progress() { printf '%s  [load %s]\n' "$*" "$(loadavg)" >&2; }

# probe CURVE X REP: the bare cache-line ping-pong between the two CPUs the point uses.
probe() {
  ((${#cpus[@]} >= 2)) || return 0  # one CPU: a ping-pong between two spinning processes would crawl
  sample "$1" "$2" "$3" probe "$bin/peer_limit" latency 16 20000 --seconds 0.05 --cpus "$pub_cpu,$sub_cpu"
}

t_start=$(date +%s)
load_start=$(loadavg)
if ((smoke)); then
  progress "scaling: smoke run, $repeat run(s) per point"
else
  progress "scaling: full run, $repeat runs per point, about 2 minutes"
fi

# --------------------------------------------------------- 2. subscriptions (idle, non-matching)
progress "2. subscriptions: bench_bus BM_PublishRouteHit (${idle_points[*]}), $bm_repeat repetitions"
# BM_RingPublishConsume/16 runs first (the report ignores it): the process's first benchmark
# is often slow (start-up), and that should not be K = 0's.
filter="^(BM_RingPublishConsume/16|BM_PublishRouteHit/($(IFS='|'; echo "${idle_points[*]}"))/)"
rc=0
timeout $((step_timeout * 3)) taskset -c "$pub_cpu" "$bin/bench_bus" --benchmark_filter="$filter" \
  --benchmark_repetitions="$bm_repeat" --benchmark_min_time=0.1 --benchmark_format=json --benchmark_out_format=json \
  --benchmark_out="$out/raw/routehit.json" >/dev/null 2>"$out/logs/routehit.log" || rc=$?
if ((rc != 0)); then
  echo "run.sh: bench_bus BM_PublishRouteHit failed, exit status $rc (see $out/logs/routehit.log)" >&2
  failed=$((failed + 1))
fi
for k in "${idle_points[@]}"; do
  progress "2. subscriptions: $k idle"
  start_busd "scaling-$tag-idle$k" --max-subscriptions $((max_idle + 100)) --ring-bytes 4KiB \
    --max-payload 512 --max-fanout 64
  if ((k > 0)); then
    idle_log=$out/logs/idle-$k.out
    "$bin/scaling_peer" idle --bus "$bus_name" --count "$k" >"$idle_log" 2>"$out/logs/idle-$k.log" &
    idle_pid=$!
    for ((i = 0; i < step_timeout * 10; i++)); do
      grep -q '"ready"' "$idle_log" 2>/dev/null && break
      kill -0 "$idle_pid" 2>/dev/null || break
      sleep 0.1
    done
    if grep -q '"ready"' "$idle_log"; then
      printf '{"curve":"subscriptions","x":%s,"rep":1,"kind":"idle","load":"%s","data":%s}\n' \
        "$k" "$(loadavg)" "$(head -n 1 "$idle_log")" >>"$samples"
    else
      why=$(tail -n 2 "$out/logs/idle-$k.log" | tr '\n"\\' "  /" | cut -c1-300)
      printf '{"curve":"subscriptions","x":%s,"rep":1,"kind":"idle","load":"%s","error":"%s"}\n' \
        "$k" "$(loadavg)" "${why:-no ready line}" >>"$samples"
      echo "run.sh: holding $k idle subscriptions failed: $why" >&2
      failed=$((failed + 1))
      stop_busd
      continue
    fi
  fi
  for ((r = 1; r <= repeat; r++)); do
    probe subscriptions "$k" "$r"
    sample subscriptions "$k" "$r" tput "$bin/bus" bench scale.hit --bus "$bus_name" --pub 1 --sub 1 \
      --msgs "$idle_tput_msgs" --size 16 --json
    sample subscriptions "$k" "$r" lat "$bin/bus" bench scale.hit --bus "$bus_name" --latency \
      --msgs "$idle_lat_msgs" --size 16 --json
  done
  stop_busd
done

# ------------------------------------------------------------------------------- 3. payload
start_busd "scaling-$tag-payload" --max-payload 1MiB --ring-bytes 16MiB --max-subscriptions 16 --max-fanout 16
for s in "${size_points[@]}"; do
  progress "3. payload: $s B"
  read -r t l < <(size_msgs "$s")
  for ((r = 1; r <= repeat; r++)); do
    probe payload "$s" "$r"
    sample payload "$s" "$r" tput "$bin/bus" bench scale.size --bus "$bus_name" --pub 1 --sub 1 \
      --msgs "$t" --size "$s" --json
    sample payload "$s" "$r" lat "$bin/bus" bench scale.size --bus "$bus_name" --latency \
      --msgs "$l" --size "$s" --json
  done
done
stop_busd

# ------------------------------------------------------------------ 1. subscribers (fan-out)
for m in "${sub_points[@]}"; do
  progress "1. subscribers: $m"
  start_busd "scaling-$tag-sub$m" --max-clients $((m + 16)) --max-subscriptions $((m + 16)) \
    --max-fanout $((m + 16))
  warm=$((fan_msgs / 10)); ((warm >= 50)) || warm=50
  for ((r = 1; r <= repeat; r++)); do
    probe subscribers "$m" "$r"
    sample subscribers "$m" "$r" tput "$bin/bus" bench scale.tput --bus "$bus_name" --pub 1 --sub "$m" \
      --msgs "$tput_msgs" --size 16 --json
    sample subscribers "$m" "$r" fanout "$bin/scaling_peer" fanout --bus "$bus_name" --subs "$m" \
      --msgs "$fan_msgs" --warmup "$warm" --size 16
    sample subscribers "$m" "$r" fanout_spin0 "$bin/scaling_peer" fanout --bus "$bus_name" --subs "$m" \
      --msgs "$fan_msgs" --warmup "$warm" --size 16 --spin-us 0
  done
  stop_busd
done

# -------------------------------------------------------------------------------- report
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$root" status --porcelain 2>/dev/null | head -1) ]] || rev+="+dirty"
rc=0
"$bin/scaling_report" --out "$out" --command "$command" --label "git $rev" \
  --mode "$( ((smoke)) && echo smoke || echo full)" --repeat "$repeat" --load-start "$load_start" \
  --wall-seconds $(($(date +%s) - t_start)) || rc=$?

if command -v gnuplot >/dev/null; then
  for p in subscribers subscriptions payload; do
    if gnuplot "$out/$p.gp" 2>"$out/logs/gnuplot-$p.log"; then
      echo "wrote $out/$p.png"
    else
      echo "run.sh: gnuplot $p.gp failed (see $out/logs/gnuplot-$p.log)" >&2
    fi
  done
else
  echo "run.sh: gnuplot not installed (apt-get install gnuplot-nox): no PNGs (the data is in $out/*.dat)" >&2
fi
((failed == 0)) || { echo "run.sh: $failed measurement(s) failed" >&2; rc=1; }
exit $rc
