#!/usr/bin/env bash
# benchmarks/replay_data.sh [BUILD_DIR] [DATA_DIR]: `segstream replay` of each
# data set in ../shared/data with its CSV preset; prints the best of 5 runs
# (from the replay's own summary: events applied and rows read per second
# of its elapsed time, reading and mapping included, process start not), then where a CSV replay's time goes
# (bench_csv). Reproduces the "replay of ../shared/data" table in
# benchmarks/README.md. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
data=${2:-../shared/data}
bin=$build/cmd/segstream
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"

sets=(
  "cdnow cdnow/CDNOW_master.txt"
  "online-retail online-retail-uci/online_retail_head_2010-12-01_to_2010-12-20.csv"
  "online-retail online-retail-uci/online_retail_random20k_2010-12_to_2011-12.csv"
  "rees46 rees46-multicategory/2019-Oct_head_2019-10-01T0000-0250Z.csv"
  "taobao taobao-userbehavior/UserBehavior_head_814users.csv"
  "olist olist-brazilian-ecommerce/olist_orders_dataset.csv"
)
printf '%-68s %6s %6s %6s %9s %10s %10s\n' file rows events dead ms events/s rows/s
for s in "${sets[@]}"; do
  read -r preset file <<<"$s"
  best=
  for i in 1 2 3 4 5; do
    $bin replay --input "$data/$file" --csv-preset "$preset" --out "$work/out.jsonl" \
      --dlq "$work/dlq.jsonl" 2>"$work/sum.txt"
    # the summary's "elapsed" has two decimals; records / its rate is exact
    ms=$(awk '/^records /{n=$2} /^elapsed /{gsub(/\(/,"",$4); r=$4} END{printf "%.3f", 1000*n/r}' \
      "$work/sum.txt")
    if [ -z "$best" ] || awk -v a="$ms" -v b="$best" 'BEGIN{exit !(a<b)}'; then
      best=$ms
      cp "$work/sum.txt" "$work/best.txt"
    fi
  done
  rows=$(sed -n 's/^csv: \([0-9]*\) rows.*/\1/p' "$work/best.txt")
  applied=$(sed -n 's/^records [0-9]*  applied \([0-9]*\).*/\1/p' "$work/best.txt")
  dead=$(sed -n 's/.*dead-lettered \([0-9]*\).*/\1/p' "$work/best.txt")
  printf '%-68s %6s %6s %6s %9.1f %10.0f %10.0f\n' "$file" "$rows" "$applied" "$dead" "$best" \
    "$(awk -v n="$applied" -v t="$best" 'BEGIN{print 1000*n/t}')" \
    "$(awk -v n="$rows" -v t="$best" 'BEGIN{print 1000*n/t}')"
done

echo "== where the time goes (bench_csv, best of 5 passes)"
for s in "cdnow cdnow/CDNOW_master.txt" \
  "rees46 rees46-multicategory/2019-Oct_head_2019-10-01T0000-0250Z.csv" \
  "taobao taobao-userbehavior/UserBehavior_head_814users.csv"; do
  read -r preset file <<<"$s"
  echo "-- $preset"
  "$build/benchmarks/bench_csv" "$data/$file" "$preset"
done
