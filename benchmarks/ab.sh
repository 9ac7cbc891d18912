#!/usr/bin/env bash
# benchmarks/ab.sh OLD_BUILD NEW_BUILD [RUNS] [FILE] [bench_core args...]:
# the "before" columns of benchmarks/README.md. Runs bench_core of two builds
# in turn (old, new, old, new, ...) so both see the same minutes of a machine
# whose speed drifts, then prints each run and the best of each.
#   benchmarks/ab.sh /tmp/old/build build 7 /tmp/segstream-bench/b1m.msgpack --single
set -euo pipefail
old=$1/benchmarks/bench_core new=$2/benchmarks/bench_core
runs=${3:-7} file=${4:-/tmp/segstream-bench/b1m.msgpack}
shift $(($# < 4 ? $# : 4))
ns() {
  local bin=$1
  shift
  "$bin" "$file" "$@" | sed -n 's/.* \([0-9.]*\) ns\/event.*/\1/p'
}
best_a=inf best_b=inf
for _ in $(seq "$runs"); do
  a=$(ns "$old" "$@") b=$(ns "$new" "$@")
  echo "$a $b"
  best_a=$(awk -v x="$a" -v y="$best_a" 'BEGIN { print (y == "inf" || x < y) ? x : y }')
  best_b=$(awk -v x="$b" -v y="$best_b" 'BEGIN { print (y == "inf" || x < y) ? x : y }')
done
echo "best: old $best_a ns/event, new $best_b ns/event"
