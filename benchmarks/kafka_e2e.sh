#!/usr/bin/env bash
# benchmarks/kafka_e2e.sh [BUILD_DIR] [EVENTS]: end-to-end events/s of
# `segstream run` (in-memory state) through the embedded broker, side by side
# in one run with kcat's raw consume rate from the same broker and the same
# data. Not part of the test suite. REDIS_URL=redis://127.0.0.1:PORT puts
# the state in that Redis (an empty one: the group is new each run).
#   rate(run)  = records / (time of the last record consumed - time of the first)
#                and the same up to the moment every change event is acknowledged
#   rate(kcat) = records / wall time of `kcat -C -e` writing them to /dev/null
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
events=${2:-1000000}
bin=$(realpath "$build/cmd/segstream")
work=$(mktemp -d /tmp/segstream-e2e-XXXXXX)
trap 'kill $bpid $rpid 2>/dev/null || true; rm -rf "$work"' EXIT
rpid=
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"

$bin broker --partitions 32 > "$work/b.out" 2> "$work/b.err" &
bpid=$!
for _ in $(seq 50); do grep -q bootstrap= "$work/b.out" 2>/dev/null && break; sleep 0.1; done
B=$(sed -n 's/bootstrap=//p' "$work/b.out")
$bin gen --customers $((events / 20)) --events "$events" --seed 3 --out kafka:events --brokers "$B" 2>/dev/null
n=$(kcat -C -b "$B" -t events -e -q -o beginning -f '\n' | wc -l)
echo "broker $B: $n of $events records retained (32 partitions, lz4)"

for i in ${KCAT_RUNS:-1 2 3}; do
  t0=$(date +%s.%N)
  kcat -C -b "$B" -t events -e -q -o beginning > /dev/null
  t1=$(date +%s.%N)
  echo "kcat -C raw consume: $(echo "$n / ($t1 - $t0)" | bc -l | xargs printf '%.0f') records/s"
done

cat > "$work/run.yaml" <<YAML
kafka:
  brokers: "$B"
  group_id: bench-$$
  properties: {${PROPS:-}}
redis:
  url: "${REDIS_URL:-}"
watermark:
  idle_timeout: 2s
http:
  listen: "127.0.0.1:0"
YAML
$bin run -c "$work/run.yaml" 2> "$work/run.log" &
rpid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's|.*serving http://[^:]*:\([0-9]*\)/metrics.*|\1|p' "$work/run.log")
  [ -n "$port" ] && break; sleep 0.1
done
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
first= last= acked=
while :; do
  now=$(date +%s.%N)
  got=$(metric 'segstream_events_in_total{topic="events"}'); got=${got:-0}
  [ -z "$first" ] && [ "$got" != 0 ] && first=$now first_n=$got
  if [ "$got" -ge "$n" ] && [ -z "$last" ]; then last=$now; fi
  if [ -n "$last" ] && [ "$(metric segstream_producer_queue)" = 0 ]; then acked=$now; break; fi
  sleep 0.02
done
changes=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^segstream_changes_total/ {s += $2} END {print s}')
echo "segstream run: $(echo "($n - $first_n) / ($last - $first)" | bc -l | xargs printf '%.0f') records/s consumed and applied," \
  "$(echo "($n - $first_n) / ($acked - $first)" | bc -l | xargs printf '%.0f') records/s until all $changes change events were acknowledged"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^segstream_(batch_size_(sum|count)|consumer_pauses_total|loop_lag_max|merge_waits_total)'
kill -TERM $rpid; wait $rpid || true; rpid=
