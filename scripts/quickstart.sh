#!/usr/bin/env bash
# scripts/quickstart.sh: from a fresh clone to segmentation happening.
# Installs the Debian packages, builds, generates a synthetic population
# with planted segments, segments it, and shows change events and the
# resulting segment sizes. Everything lands in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build
mkdir -p out
bin=./build/cmd/segstream
customers=${CUSTOMERS:-5000}
events=${EVENTS:-150000}
echo "== generating $customers customers, $events events (seed 42) -> out/events.jsonl"
$bin gen --customers "$customers" --events "$events" --seed 42 \
    --out out/events.jsonl --truth out/truth.csv
echo "== segmenting: segstream replay --input out/events.jsonl --out out/changes.jsonl"
$bin replay --input out/events.jsonl --out out/changes.jsonl \
    --snapshot out/segments.csv -c config/segstream.example.yaml
echo
echo "== a few segment-change events (out/changes.jsonl):"
# (grep -m, not `| head`: head closing the pipe would fail the script under pipefail)
grep -m3 '"to":"at_risk"' out/changes.jsonl || true
grep -m3 '"dimension":"cluster"' out/changes.jsonl || true
grep -m2 '"dimension":"rule:' out/changes.jsonl || true
echo
echo "== final segments per customer: out/segments.csv"
sed -n 1,5p out/segments.csv
