#!/usr/bin/env bash
# demo.sh — a live tour of bus: starts a private busd, three `bus sub` processes with different
# wildcard patterns, publishes a few orders with `bus pub`, then shows who received what and why;
# two queue-group workers sharing jobs; a `bus reply` service and `bus req` (and no responders);
# survives kill -9 of the broker mid-stream; keeps acknowledged messages in a stream across
# another kill -9 (de-duplication, a subject's last message, an optimistic-concurrency update,
# a consumer with acknowledgements and a redelivery); shows monitoring; and, when nats-server is
# installed, bridges the bus and a second one ("another host") through NATS: a request answered
# across, orders published on one bus and received on the other, the bridge's counters.
#   BUILD_DIR=build (relative to the repository root)   DEMO_TIMEOUT=10 (seconds, every wait)
# Exits 0 when every subscriber got exactly what NATS matching says it should and busd stopped
# cleanly on SIGTERM; 1 otherwise. Every wait is bounded; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
bus=$build_dir/bin/bus
busd=$build_dir/bin/busd
wait_s=${DEMO_TIMEOUT:-10}
name=demo-$$  # a private bus: the demo never touches a bus someone else is using
work=$(mktemp -d "${TMPDIR:-/tmp}/bus-demo.XXXXXX")

busd_pid=
sub_pids=()
log_shown=0

say() { printf '\n== %s\n' "$*"; }

die() {
  echo "demo: $*" >&2
  if ((!log_shown)) && [[ -s $work/busd.log ]]; then
    echo "demo: busd's log:" >&2
    sed 's/^/  busd | /' "$work/busd.log" >&2
  fi
  exit 1
}

# Running and not yet a zombie (kill -0 still succeeds on an exited child nobody waited for).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# wait_exit PID SECONDS: returns the process's exit status, or 124 if it is still running.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2)) status=0
  while alive "$pid"; do
    ((SECONDS < deadline)) || return 124
    sleep 0.05
  done
  { wait "$pid"; } 2>/dev/null || status=$?
  return "$status"
}

# wait_for_listening PID FILE: waits until FILE has a "Listening on" line; fails if PID exits
# or the time is up.
wait_for_listening() {
  local pid=$1 file=$2 deadline=$((SECONDS + wait_s))
  until grep -q '^Listening on' "$file" 2>/dev/null; do
    alive "$pid" || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# stop PGID...: SIGTERM to each process group, then SIGKILL whatever is left after 3 s.
stop() {
  local pid
  local -a stopping=()
  for pid in "$@"; do
    if [[ -n $pid ]] && alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null && stopping+=("$pid")
    fi
  done
  for pid in "${stopping[@]}"; do
    wait_exit "$pid" 3 || kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

cleanup() {
  local status=$? pid
  local -a clients=()
  trap - EXIT INT TERM
  # Every background job, from bash's own table: a signal can land between `cmd &` and the
  # line that records $!, so the pid variables alone could miss one.
  for pid in $(jobs -p); do
    [[ $pid == "$busd_pid" ]] || clients+=("$pid")
  done
  stop "${clients[@]}"
  stop "$busd_pid"  # last, so the clients leave first
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# matches PATTERN SUBJECT: NATS subject matching (`*` one token, `>` one or more at the end),
# used to work out what each subscriber should receive before anything is published.
matches() {
  local -a p s
  local i
  IFS=. read -ra p <<<"$1"
  IFS=. read -ra s <<<"$2"
  for ((i = 0; i < ${#p[@]}; i++)); do
    if [[ ${p[i]} == '>' ]]; then ((${#s[@]} > i)); return; fi
    ((i < ${#s[@]})) || return 1
    [[ ${p[i]} == '*' || ${p[i]} == "${s[i]}" ]] || return 1
  done
  ((${#p[@]} == ${#s[@]}))
}

[[ -x $bus && -x $busd ]] ||
  die "no build in $build_dir (build first: cmake -S . -B build -G Ninja && cmake --build build)"

# --- the cast -----------------------------------------------------------------------------------
labels=(A B C)
declare -A pattern=([A]='orders.>' [B]='orders.*.created' [C]='orders.eu.*')
declare -A why=(
  [A]="'>' matches one or more trailing tokens: every subject under orders."
  [B]="'*' matches exactly one token: any region, but only 'created' events"
  [C]="'*' as the last token: any event, but only in region eu"
)
# subject|body|count: the body is a template, {{Count}} becomes 1..count.
publications=(
  'orders.eu.created|eu order #{{Count}}: 2 x widget|3'
  'orders.us.created|us order #1: 1 x gadget|1'
  'orders.eu.shipped|eu order #1 shipped|1'
  'inventory.eu.low|widget stock is low in eu|1'
)

declare -A expected
for label in "${labels[@]}"; do
  expected[$label]=0
  for publication in "${publications[@]}"; do
    IFS='|' read -r subject _ count <<<"$publication"
    if matches "${pattern[$label]}" "$subject"; then
      expected[$label]=$((expected[$label] + count))
    fi
  done
done

prefix() { printf '%s %-17s| ' "$1" "${pattern[$1]}"; }

# --- the broker ---------------------------------------------------------------------------------
say "Starting busd on the private bus '$name'"
echo "\$ busd --bus $name --ring-bytes 1MiB --max-payload 64KiB --store-dir \$work/store --http 127.0.0.1:0"
# set -m around each `&`: the job gets its own process group (stop() ends a whole pipeline
# with one kill) and, with job control off again, bash prints no "[1] Done" notices.
set -m
"$busd" --bus "$name" --ring-bytes 1MiB --max-payload 64KiB --store-dir "$work/store" --http 127.0.0.1:0 2>"$work/busd.log" &
busd_pid=$!
set +m

# Ready means a subscriber can connect and a publish reaches it: probe exactly that.
probe_deadline=$((SECONDS + wait_s))
while :; do
  alive "$busd_pid" || die "busd exited during start-up"
  set -m
  "$bus" sub --bus "$name" --timeout 1s --count 1 demo.probe >/dev/null 2>"$work/probe.err" &
  probe_pid=$!
  set +m
  if wait_for_listening "$probe_pid" "$work/probe.err"; then
    "$bus" pub --bus "$name" --timeout 2s demo.probe ready || die "could not publish the probe"
    wait_exit "$probe_pid" "$wait_s" || die "the probe subscriber did not get the probe message"
    break
  fi
  wait_exit "$probe_pid" 2 || true
  ((SECONDS < probe_deadline)) || die "busd was not ready after ${wait_s}s: $(cat "$work/probe.err")"
  sleep 0.1
done
echo "busd is up (pid $busd_pid): a probe subscriber connected and got a probe message"

# --- the subscribers ----------------------------------------------------------------------------
say "Starting three subscribers (each exits after the messages it should get)"
run_subscriber() {
  local label=$1
  "$bus" sub --bus "$name" --count "${expected[$label]}" "${pattern[$label]}" \
    2>"$work/$label.err" | tee "$work/$label.out" | sed -u "s/^/$(prefix "$label")/"
  return "${PIPESTATUS[0]}"
}
for label in "${labels[@]}"; do
  printf '%s  $ bus sub %-17s --count %s\n' "$label" "'${pattern[$label]}'" "${expected[$label]}"
  set -m
  run_subscriber "$label" &
  sub_pids+=($!)
  set +m
done
for i in "${!labels[@]}"; do
  label=${labels[i]}
  wait_for_listening "${sub_pids[i]}" "$work/$label.err" ||
    die "subscriber $label did not start: $(cat "$work/$label.err")"
  echo "$(prefix "$label")$(head -n 1 "$work/$label.err")"
done

# --- the publishes ------------------------------------------------------------------------------
say "Publishing (every subscriber is listening, so nothing can be missed)"
for publication in "${publications[@]}"; do
  IFS='|' read -r subject body count <<<"$publication"
  args=(pub --bus "$name" --timeout 2s "$subject" "$body")
  ((count == 1)) || args+=(--count "$count")
  echo
  echo "\$ bus pub $subject '$body'$( ((count == 1)) || echo " --count $count")"
  "$bus" "${args[@]}" || die "bus pub $subject failed"
  sleep 0.3  # only so each message's output shows up under the command that sent it
done

say "Waiting for the subscribers to exit"
failed=0
for i in "${!labels[@]}"; do
  label=${labels[i]} status=0
  wait_exit "${sub_pids[i]}" "$wait_s" || status=$?
  if ((status == 124)); then
    echo "subscriber $label is still waiting after ${wait_s}s: a message was lost" >&2
    stop "${sub_pids[i]}"
    failed=1
  elif ((status != 0)); then
    echo "subscriber $label failed (exit $status): $(tail -n 1 "$work/$label.err")" >&2
    failed=1
  fi
done

# --- what happened ------------------------------------------------------------------------------
say "Summary: who received what, and why"
for label in "${labels[@]}"; do
  received=$(sed -n 's/^\[#[0-9]*\] Received on "\([^"]*\)".*/\1/p' "$work/$label.out")
  got=$(grep -c . <<<"$received" || true)
  tally=$(awk 'NF { if (!n[$0]++) order[++k] = $0 }
               END { for (i = 1; i <= k; i++) printf "%s%s%s", (i > 1 ? ", " : ""), order[i],
                                                      (n[order[i]] > 1 ? " x" n[order[i]] : "") }' \
    <<<"$received")
  printf '%s %-17s got %s of %s: %s\n' "$label" "${pattern[$label]}" "$got" \
    "${expected[$label]}" "${tally:-nothing}"
  printf '  %-19s %s\n' "" "${why[$label]}"
  while read -r subject; do
    [[ -z $subject ]] || matches "${pattern[$label]}" "$subject" || {
      echo "  but '$subject' does not match '${pattern[$label]}'!" >&2
      failed=1
    }
  done <<<"$received"
  ((got == expected[$label])) || failed=1
  if grep -v '^Listening on' "$work/$label.err" | grep -q .; then
    grep -v '^Listening on' "$work/$label.err" | sed 's/^/  stderr: /'
  fi
done
for publication in "${publications[@]}"; do
  IFS='|' read -r subject _ _ <<<"$publication"
  nobody=1
  for label in "${labels[@]}"; do
    if matches "${pattern[$label]}" "$subject"; then nobody=0; fi
  done
  ((nobody == 0)) ||
    echo "$subject matched no subscription: dropped without error, as NATS does (no interest)"
done

# --- queue groups -------------------------------------------------------------------------------
say "Queue groups: two workers share 'jobs.*', each job goes to exactly one of them"
jobs_total=20
worker_pids=()
for w in 1 2; do
  echo "worker $w  \$ bus sub 'jobs.*' --queue workers --raw      # in the background"
  set -m
  "$bus" sub --bus "$name" --queue workers --raw 'jobs.*' >"$work/worker$w.out" 2>"$work/worker$w.err" &
  worker_pids+=($!)
  set +m
done
for w in 1 2; do
  wait_for_listening "${worker_pids[w - 1]}" "$work/worker$w.err" ||
    die "worker $w did not start: $(cat "$work/worker$w.err")"
done
echo "\$ bus pub jobs.resize 'job {{Count}}' --count $jobs_total"
"$bus" pub --bus "$name" --timeout 2s jobs.resize 'job {{Count}}' --count "$jobs_total" >/dev/null ||
  die "publishing the jobs failed"
deadline=$((SECONDS + wait_s))
until (($(cat "$work/worker1.out" "$work/worker2.out" | grep -c .) >= jobs_total)); do
  ((SECONDS < deadline)) || die "the workers got $(cat "$work/worker1.out" "$work/worker2.out" | grep -c .) of $jobs_total jobs"
  sleep 0.05
done
stop "${worker_pids[@]}"
[[ -z $(cat "$work/worker1.out" "$work/worker2.out" | sort | uniq -d) ]] || die "a job went to both workers"
[[ $(cat "$work/worker1.out" "$work/worker2.out" | sort -t' ' -k2n | paste -sd,) == $(seq -f 'job %g' 1 "$jobs_total" | paste -sd,) ]] ||
  die "the workers did not get every job exactly once"
echo "worker 1 got $(grep -c . "$work/worker1.out") jobs, worker 2 got $(grep -c . "$work/worker2.out"): all $jobs_total, none twice"

# --- request/reply ------------------------------------------------------------------------------
say "Request/reply: a service answers; a request nobody serves fails at once (no responders)"
echo "\$ bus reply demo.greet 'hello from the service (request {{Count}})' --quiet   # in the background"
set -m
"$bus" reply --bus "$name" --quiet demo.greet 'hello from the service (request {{Count}})' 2>"$work/reply.err" &
reply_pid=$!
set +m
wait_for_listening "$reply_pid" "$work/reply.err" || die "bus reply did not start: $(cat "$work/reply.err")"
echo "\$ bus req demo.greet hi --count 2 --raw"
"$bus" req --bus "$name" demo.greet hi --count 2 --raw | tee "$work/replies.out" || die "bus req failed"
[[ $(paste -sd, "$work/replies.out") == "hello from the service (request 1),hello from the service (request 2)" ]] ||
  die "unexpected replies: $(paste -sd, "$work/replies.out")"
echo "\$ bus req demo.nobody hi"
if "$bus" req --bus "$name" --timeout 2s demo.nobody hi 2>&1; then
  die "a request nobody serves succeeded"
fi
stop "$reply_pid"

# --- surviving a broker crash -------------------------------------------------------------------
say "kill -9 the broker in the middle of a stream, then start a new one: nothing is lost"
stream=400
echo "\$ bus sub demo.stream --raw --count $stream      # in the background"
set -m
"$bus" sub --bus "$name" --raw --count "$stream" demo.stream >"$work/stream.out" 2>"$work/stream.err" &
stream_sub=$!
set +m
wait_for_listening "$stream_sub" "$work/stream.err" || die "the stream subscriber did not start"
echo "\$ bus pub demo.stream '{{Count}}' --count $stream --sleep 5ms   # about 2 s"
set -m
"$bus" pub --bus "$name" --timeout 5s demo.stream '{{Count}}' --count "$stream" --sleep 5ms \
  2>"$work/stream-pub.err" &
stream_pub=$!
set +m
sleep 0.5
echo "\$ kill -9 $busd_pid    # busd dies; publisher and subscriber go on through the segment"
kill -KILL "$busd_pid"
wait_exit "$busd_pid" "$wait_s" || true
sleep 0.3
echo "\$ busd --bus $name ...   # a new broker adopts the segment; the clients reconnect"
set -m
"$busd" --bus "$name" --ring-bytes 1MiB --max-payload 64KiB --store-dir "$work/store" --http 127.0.0.1:0 2>"$work/busd2.log" &
busd_pid=$!
set +m
pub_status=0
wait_exit "$stream_pub" "$wait_s" || pub_status=$?
((pub_status == 0)) || die "bus pub across the restart failed (exit $pub_status): $(cat "$work/stream-pub.err")"
sub_status=0
wait_exit "$stream_sub" "$wait_s" || sub_status=$?
((sub_status == 0)) || die "the stream subscriber did not get all $stream messages (exit $sub_status)"
if [[ $(seq 1 "$stream" | paste -sd,) != $(paste -sd, "$work/stream.out") ]]; then
  die "the stream arrived with gaps or out of order: $(paste -sd, "$work/stream.out" | head -c 300)"
fi
echo "the subscriber got all $stream messages, in order; what it said on stderr:"
grep -v '^Listening on' "$work/stream.err" | sed 's/^/  sub | /'
echo "the new broker's log:"
sed 's/^/  busd | /' "$work/busd2.log"
cat "$work/busd2.log" >>"$work/busd.log"

# --- streams ------------------------------------------------------------------------------------
say "Streams: messages kept on disk, acknowledged, and still there after kill -9 of the broker"
echo "\$ bus stream add DEMO --subjects 'demo.kept.>'"
"$bus" stream add --bus "$name" DEMO --subjects 'demo.kept.>' >"$work/stream-add.out" ||
  die "bus stream add failed"
head -n 1 "$work/stream-add.out"
echo "\$ bus pub --ack demo.kept.order 'kept order {{Count}}' --count 3"
"$bus" pub --bus "$name" --ack demo.kept.order 'kept order {{Count}}' --count 3 | tee "$work/acks.out" ||
  die "bus pub --ack failed"
[[ $(paste -sd, "$work/acks.out") == "stream DEMO sequence 1,stream DEMO sequence 2,stream DEMO sequence 3" ]] ||
  die "unexpected acknowledgements: $(paste -sd, "$work/acks.out")"
echo "\$ kill -9 $busd_pid; busd --bus $name ...   # the journal is a file: the new broker serves it again"
kill -KILL "$busd_pid"
wait_exit "$busd_pid" "$wait_s" || true
set -m
"$busd" --bus "$name" --ring-bytes 1MiB --max-payload 64KiB --store-dir "$work/store" --http 127.0.0.1:0 2>"$work/busd3.log" &
busd_pid=$!
set +m
deadline=$((SECONDS + wait_s))
until grep -q 'serving bus' "$work/busd3.log" 2>/dev/null; do
  alive "$busd_pid" || die "the third busd exited: $(cat "$work/busd3.log")"
  ((SECONDS < deadline)) || die "the third busd did not start"
  sleep 0.05
done
cat "$work/busd3.log" >>"$work/busd.log"
echo "\$ bus stream info DEMO"
"$bus" stream info --bus "$name" DEMO | tee "$work/info.out" | sed -n '/^State:/,$p'
grep -q 'Messages: 3$' "$work/info.out" || die "the stream does not hold its 3 messages after the restart"
echo "\$ bus stream get DEMO 2"
"$bus" stream get --bus "$name" DEMO 2 | tee "$work/get.out"
grep -q '^kept order 2$' "$work/get.out" || die "bus stream get DEMO 2 did not print message 2"
echo "\$ bus pub --ack nothing.captures.this x     # no stream: an error, not a silent success"
if "$bus" pub --bus "$name" --ack nothing.captures.this x 2>&1; then
  die "bus pub --ack to a subject no stream captures succeeded"
fi
echo "\$ bus pub --ack demo.kept.order retry -H Nats-Msg-Id:order-7   # twice: stored once"
"$bus" pub --bus "$name" --ack demo.kept.order retry -H Nats-Msg-Id:order-7 | tee "$work/dedupe.out" || die "bus pub --ack with a Nats-Msg-Id failed"
"$bus" pub --bus "$name" --ack demo.kept.order retry -H Nats-Msg-Id:order-7 | tee -a "$work/dedupe.out" || die "the retry failed"
[[ $(paste -sd, "$work/dedupe.out") == "stream DEMO sequence 4,stream DEMO sequence 4 duplicate" ]] ||
  die "a Nats-Msg-Id retry was not de-duplicated: $(paste -sd, "$work/dedupe.out")"
echo "\$ bus stream get DEMO --last-for demo.kept.order    # a subject's last message, from the index"
"$bus" stream get --bus "$name" DEMO --last-for demo.kept.order | tee "$work/last.out" | head -n 1
grep -q 'DEMO#4' "$work/last.out" || die "the last message on demo.kept.order is not #4: $(cat "$work/last.out")"
echo "\$ bus pub --ack demo.kept.order update -H Nats-Expected-Last-Subject-Sequence:3   # stale: refused"
if "$bus" pub --bus "$name" --ack demo.kept.order update -H Nats-Expected-Last-Subject-Sequence:3 2>&1; then
  die "an update against a stale last sequence was stored"
fi
echo "\$ bus pub --ack demo.kept.order update -H Nats-Expected-Last-Subject-Sequence:4   # current: stored"
"$bus" pub --bus "$name" --ack demo.kept.order update -H Nats-Expected-Last-Subject-Sequence:4 | tee "$work/cas.out" ||
  die "an update against the current last sequence was refused"
grep -q '^stream DEMO sequence 5$' "$work/cas.out" || die "unexpected acknowledgement: $(cat "$work/cas.out")"

say "Consumers: the broker tracks what each worker got and acknowledged, across restarts"
echo "\$ bus consumer add DEMO billing --pull --ack explicit --wait 1s"
"$bus" consumer add --bus "$name" DEMO billing --pull --ack explicit --wait 1s >"$work/consumer.out" ||
  die "bus consumer add failed"
echo "\$ bus consumer next DEMO billing --count 2     # fetched and acknowledged"
"$bus" consumer next --bus "$name" DEMO billing --count 2 --raw | tee "$work/next.out" || die "bus consumer next failed"
[[ $(paste -sd, "$work/next.out") == "kept order 1,kept order 2" ]] || die "unexpected consumer delivery: $(paste -sd, "$work/next.out")"
echo "\$ bus consumer next DEMO billing --no-ack      # taken, never acknowledged ..."
"$bus" consumer next --bus "$name" DEMO billing --raw --no-ack | tee "$work/noack.out" || die "bus consumer next --no-ack failed"
echo "\$ sleep 1.2; bus consumer next DEMO billing   # ... so it comes back after the ack wait"
sleep 1.2
"$bus" consumer next --bus "$name" DEMO billing | tee "$work/again.out" | head -n 1
grep -q 'tries: 2' "$work/again.out" || die "the unacknowledged message was not redelivered"
echo "\$ bus consumer info DEMO billing"
"$bus" consumer info --bus "$name" DEMO billing | sed -n '/^State:/,$p'

# --- monitoring ---------------------------------------------------------------------------------
say "Monitoring: the bus's counters, the broker's \$SYS events and its HTTP port (as nats-server's)"
echo "\$ bus events --count 2 &       # then a client connects, publishes and closes"
set -m
"$bus" events --bus "$name" --count 2 >"$work/events.out" 2>"$work/events.err" &
events_pid=$!
set +m
wait_for_listening "$events_pid" "$work/events.err" || die "bus events did not start: $(cat "$work/events.err")"
"$bus" pub --bus "$name" demo.watch.hello hi || die "bus pub failed"
wait_exit "$events_pid" "$wait_s" || die "bus events did not see the connect and the disconnect"
sed 's/^/  /' "$work/events.out"
grep -q 'DISCONNECT.* closed' "$work/events.out" || die "no disconnect event with reason 'closed'"

echo "\$ bus sub 'demo.watch.>' &   and 100 messages published to it"
set -m
"$bus" sub --bus "$name" --raw 'demo.watch.>' >/dev/null 2>"$work/watch.err" &
watch_pid=$!
set +m
wait_for_listening "$watch_pid" "$work/watch.err" || die "the watching subscriber did not start"
"$bus" pub --bus "$name" demo.watch.tick 'tick {{Count}}' --count 100 || die "bus pub failed"
deadline=$((SECONDS + wait_s))
until "$bus" server report subscriptions --bus "$name" --json | grep -q '"msgs": 100,'; do
  ((SECONDS < deadline)) || die "the subscription did not report 100 messages"
  sleep 0.1
done
echo "\$ bus server info"
"$bus" server info --bus "$name" | sed 's/^/  /'
echo "\$ bus server report subscriptions"
"$bus" server report subscriptions --bus "$name" | sed 's/^/  /'
echo "\$ bus top --once           # one frame of the live view"
"$bus" top --once --bus "$name" --interval 200ms | sed 's/^/  /'
port=$("$bus" server info --bus "$name" --json | grep -o '"http_port": [0-9]*' | grep -o '[0-9]*$')
[[ -n $port && $port != 0 ]] || die "busd reported no monitoring port"
echo "\$ curl -s http://127.0.0.1:$port/varz   # (a few of its fields)"
curl -sf "http://127.0.0.1:$port/varz" | grep -E '"(server_name|connections|in_msgs|out_msgs|slow_consumers)"' | sed 's/^/  /' ||
  die "the monitoring port did not answer /varz"
echo "\$ curl -s http://127.0.0.1:$port/metrics | grep bus_subscription_msgs_total"
curl -sf "http://127.0.0.1:$port/metrics" | grep '^bus_subscription_msgs_total' | sed 's/^/  /' ||
  die "the monitoring port did not answer /metrics"
stop "$watch_pid"
watch_pid=

# --- two hosts over NATS ------------------------------------------------------------------------
if command -v nats-server >/dev/null && "$bus" bridge --help 2>/dev/null | grep -- '--nats' >/dev/null; then
  say "Two hosts: a second bus bridged to this one through a NATS server (docs/scale-out.md)"
  other=$name-b
  echo "\$ nats-server -a 127.0.0.1 -p -1              # any free port"
  set -m
  nats-server -a 127.0.0.1 -p -1 >"$work/nats.log" 2>&1 &
  nats_pid=$!
  set +m
  deadline=$((SECONDS + wait_s))
  until nats_port=$(grep -o 'Listening for client connections on [0-9.]*:[0-9]*' "$work/nats.log" 2>/dev/null | grep -o '[0-9]*$'); do
    ((SECONDS < deadline)) || die "nats-server did not start: $(cat "$work/nats.log")"
    sleep 0.05
  done
  nats_url=nats://127.0.0.1:$nats_port
  echo "\$ busd --bus $other                              # the other host's broker"
  set -m
  "$busd" --bus "$other" -q 2>"$work/busd-b.log" &
  other_pid=$!
  set +m
  for b in "$name" "$other"; do
    echo "\$ bus --bus $b bridge --nats $nats_url --export 'orders.>' --import 'orders.>'"
    set -m
    "$bus" --bus "$b" --wait-for-broker 5s bridge --nats "$nats_url" --export 'orders.>' --import 'orders.>' \
      --bridge-name "host-${b##*-}" 2>"$work/bridge-$b.log" >/dev/null &
    set +m
  done
  echo "\$ bus --bus $other reply orders.quote 'quote from the other host'   # in the background"
  set -m
  "$bus" --bus "$other" --wait-for-broker 5s reply --quiet orders.quote 'quote from the other host' 2>"$work/quote.err" &
  quote_pid=$!
  "$bus" --bus "$other" --wait-for-broker 5s sub 'orders.*.created' >"$work/far.out" 2>"$work/far.err" &
  far_pid=$!
  set +m
  wait_for_listening "$far_pid" "$work/far.err" || die "the far subscriber did not start: $(cat "$work/far.err")"
  # Interest crosses asynchronously (the bridge watches the bus's subscriptions, NATS propagates
  # them): ask until the other host answers.
  echo "\$ bus req orders.quote ''                     # on this host; answered on the other"
  deadline=$((SECONDS + wait_s))
  until answer=$("$bus" req --bus "$name" --timeout 1s --raw orders.quote '' 2>/dev/null); do
    ((SECONDS < deadline)) || die "no answer across the bridge: $(cat "$work/bridge-$name.log")"
    sleep 0.1
  done
  echo "  $answer"
  [[ $answer == "quote from the other host" ]] || die "unexpected answer across the bridge: $answer"
  echo "\$ bus pub orders.eu.created 'order {{Count}}' --count 3   # on this host"
  "$bus" pub --bus "$name" --timeout 2s orders.eu.created 'order {{Count}}' --count 3 >/dev/null
  deadline=$((SECONDS + wait_s))
  until (($(grep -c '^order [0-9]' "$work/far.out" 2>/dev/null || true) >= 3)); do
    ((SECONDS < deadline)) || die "the other host did not get the orders: $(cat "$work/far.out")"
    sleep 0.05
  done
  echo "the other host's 'bus sub orders.*.created' printed:"
  grep -E '^(\[#|order )' "$work/far.out" | sed 's/^/  /'
  echo "\$ bus req '\$BUS.BRIDGE.host-${name##*-}.STATUSZ' ''   # this host's bridge, its counters"
  "$bus" req --bus "$name" --timeout 2s --raw "\$BUS.BRIDGE.host-${name##*-}.STATUSZ" '' |
    grep -oE '"(nats_connected|nats_subscriptions|direction|msgs|dropped|loops_stopped|replies)":[^,]*' | paste -sd' ' | sed 's/^/  /'
  stop "$far_pid" "$quote_pid"
  for pid in $(jobs -p); do
    [[ $pid == "$busd_pid" || $pid == "$other_pid" || $pid == "$nats_pid" ]] || stop "$pid"
  done
  stop "$other_pid" "$nats_pid"
else
  say "Two hosts over NATS: skipped (nats-server or the bridge is not installed; scripts/setup.sh installs them)"
fi

# --- shutdown -----------------------------------------------------------------------------------
say "Stopping busd with SIGTERM"
kill -TERM "$busd_pid"
status=0
wait_exit "$busd_pid" "$wait_s" || status=$?
busd_pid=
((status == 124)) && die "busd did not exit within ${wait_s}s of SIGTERM"
((status == 0)) || die "busd exited with status $status after SIGTERM"
echo "busd exited 0; with no broker serving the bus, a publish now fails as it should:"
if "$bus" pub --bus "$name" --timeout 1s orders.eu.created late 2>&1; then
  die "bus pub still succeeded after busd stopped"
fi
say "busd's log (stderr)"
sed 's/^/busd | /' "$work/busd.log"
log_shown=1

((failed == 0)) || die "some subscriber did not get what it should have (see above)"
say "Demo finished: every subscriber got exactly the messages its pattern matches"
