#!/usr/bin/env bash
# scripts/quickstart.sh: from a fresh clone to the real pipeline running.
# Installs the Debian packages, builds, starts the embedded Kafka-protocol
# broker (`segstream broker`), a local redis-server on a free port (state in
# Redis; REDIS=0 keeps it in memory) and the daemon (`segstream run`, the
# example rules), produces a synthetic population with planted
# segments to the `events` topic (`segstream gen --out kafka:events`), and
# shows segment-change events as the daemon publishes them, then the
# daemon's metrics. Everything lands in ./out/.
#
#   KEEP=1 ./scripts/quickstart.sh   leaves broker and daemon running
#   CUSTOMERS=N EVENTS=M             population size (default 5000 / 150000)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
mkdir -p out
bin=./build/cmd/segstream
customers=${CUSTOMERS:-5000}
events=${EVENTS:-150000}
pids=()
cleanup() {
    [ "${KEEP:-0}" = 1 ] && return
    # the daemon first (it drains into the broker), then the rest
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

echo "== starting the embedded broker: segstream broker"
$bin broker --partitions 8 > out/broker.out 2> out/broker.log &
pids+=($!)
for _ in $(seq 100); do grep -q '^bootstrap=' out/broker.out 2>/dev/null && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap=//p' out/broker.out)
[ -n "$B" ] || { echo "the broker did not start (out/broker.log)"; exit 1; }
echo "   bootstrap $B"

export SEGSTREAM_KAFKA_BROKERS=$B
if [ "${REDIS:-1}" = 1 ] && [ -z "${SEGSTREAM_REDIS_URL:-}" ] && command -v redis-server > /dev/null; then
    rport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf out/redis && mkdir -p out/redis
    redis-server --bind 127.0.0.1 --port "$rport" --dir "$PWD/out/redis" --save '' \
        --appendonly yes > out/redis.log 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$rport" ping > /dev/null 2>&1 && break; sleep 0.1; done
    export SEGSTREAM_REDIS_URL=redis://127.0.0.1:$rport
    echo "== redis-server on 127.0.0.1:$rport (files in out/redis)"
fi
echo "== starting the daemon: segstream run -c config/segstream.example.yaml (log: out/run.log)"
# Port 0: any free port, so a second quickstart does not collide with a first.
SEGSTREAM_HTTP_LISTEN=127.0.0.1:0 SEGSTREAM_WATERMARK_IDLE_TIMEOUT=2s \
    $bin run -c config/segstream.example.yaml 2> out/run.log &
run_pid=$!
pids=("$run_pid" "${pids[@]}")
port=
for _ in $(seq 100); do
    port=$(sed -n 's|.*serving http://[^:]*:\([0-9]*\)/metrics.*|\1|p' out/run.log)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "the daemon did not start (out/run.log)"; exit 1; }

echo "== watching segment-changes: kcat -C -b $B -t segment-changes (-> out/changes.jsonl)"
kcat -C -b "$B" -t segment-changes -o beginning -u -q > out/changes.jsonl 2> /dev/null &
pids+=($!)

echo "== producing $customers customers, $events events (seed 42): segstream gen --out kafka:events"
$bin gen --customers "$customers" --events "$events" --seed 42 --out kafka:events \
    --truth out/truth.csv

metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
for _ in $(seq 600); do
    in=$(metric 'segstream_events_in_total{topic="events"}')
    [ "${in:-0}" -ge "$events" ] && [ "$(metric segstream_producer_queue)" = 0 ] && break
    sleep 0.2
done
sleep 3 # the idle timeout: W reaches the last event and due lapses are published
echo
echo "== change events as published (out/changes.jsonl: $(wc -l < out/changes.jsonl) so far):"
# (grep -m, not `| head`: head closing the pipe would fail the script under pipefail)
grep -m3 '"to":"at_risk"' out/changes.jsonl || true
grep -m3 '"dimension":"cluster"' out/changes.jsonl || true
grep -m2 '"dimension":"rule:' out/changes.jsonl || true
echo
echo "== metrics: curl http://127.0.0.1:$port/metrics"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^segstream_(events_(in|decoded)_total|changes_total|dead_letters_total|customers|consumer_lag|watermark_ms)' | head -20
echo
if [ -n "${SEGSTREAM_REDIS_URL:-}" ]; then
    sleep 1.5 # the next checkpoint
    echo "== one customer as a personalization engine reads it: segstream inspect c000042"
    $bin inspect c000042 || true
    echo
fi
if [ "${KEEP:-0}" = 1 ]; then
    echo "Still running (broker $B, daemon pid $run_pid). Try:"
    echo "  kcat -C -b $B -t segment-changes -o end          # changes as they happen"
    echo "  ./build/cmd/segstream gen --customers 1000 --events 20000 --seed 7 --start 2024-07-01 --out kafka:events --brokers $B"
    echo "  curl -s http://127.0.0.1:$port/metrics"
    [ -n "${SEGSTREAM_REDIS_URL:-}" ] && echo "  SEGSTREAM_REDIS_URL=$SEGSTREAM_REDIS_URL ./build/cmd/segstream inspect c000042"
    # the daemon first, waited for: it drains into the broker and checkpoints
    # into Redis, and with them already gone it ends only after its bounded
    # waits (about a minute) and exits 1 with changes undelivered
    echo "  kill $run_pid; tail --pid=$run_pid -f /dev/null; kill ${pids[*]:1}   # stop: the daemon, then the rest"
else
    echo "Stopping (SIGTERM drains, commits and exits 0). KEEP=1 leaves it running."
fi
