#!/usr/bin/env bash
# benchmarks/run.sh [BUILD_DIR]: reproduces every figure in benchmarks/README.md.
# `benchmarks/run.sh build-pgo` gives the profile-guided build's figures
# (scripts/build-pgo.sh). Not part of the test suite. Run it on a quiet
# machine: wall-clock figures move with load; callgrind instruction counts
# do not.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$build/cmd/segstream
work=${WORK:-/tmp/segstream-bench}
mkdir -p "$work"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"

echo "== inputs: 1 000 000 generated events, 50 000 customers (seed 3)"
[ -f "$work/b1m.jsonl" ] || $bin gen --customers 50000 --events 1000000 --seed 3 --out "$work/b1m.jsonl"
[ -f "$work/b1m.msgpack" ] || $bin gen --customers 50000 --events 1000000 --seed 3 --format msgpack --out "$work/b1m.msgpack"

echo "== JSON parsers on one typical event (bench_json)"
$build/benchmarks/bench_json 2000000

# decode only; decode + apply (pl_records in batches, as replay runs it); the
# same one record at a time (pl_record, as run's loop); with the example rules
modes=("--decode-only" "" "--single" "-c config/segstream.example.yaml")

echo "== decode only, then decode + apply, best of 3"
for f in b1m.jsonl b1m.msgpack; do
  for mode in "${modes[@]}"; do
    for i in 1 2 3; do $build/benchmarks/bench_core "$work/$f" $mode; done | sort -t, -k5 -gr | head -1
  done
done

echo "== callgrind: instructions inside bench_loop (deterministic)"
for f in b1m.jsonl b1m.msgpack; do
  for mode in "${modes[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --toggle-collect=bench_loop \
      $build/benchmarks/bench_core "$work/$f" $mode --limit 300000 2>&1 | sed -n 's/.*I   refs: *//p' |
      tr -d , | awk -v f="$f" -v m="${mode:-decode+apply}" '{printf "%s %s: %.0f instructions/event (first 300 000 events)\n", f, m, $1/300000}'
  done
done

echo "== a checkpoint's per-customer work: hash fields and packed state (bench_state)"
$build/benchmarks/bench_state "$work/b1m.msgpack"

echo "== centroid step vs scikit-learn on the same vectors"
out=$($build/benchmarks/bench_centroids "$work/b1m.jsonl" "$work/vectors.f64")
echo "$out"
ours=$(echo "$out" | sed -n 's/^online step + sample refresh.*inertia \([0-9.]*\).*/\1/p')
/usr/bin/python3 benchmarks/sklearn_compare.py "$work/vectors.f64" 6 "$ours"
