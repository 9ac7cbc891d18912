#!/usr/bin/env bash
# scripts/test.sh: installs the Debian packages, builds with gcc and runs
# every test (unit, fuzz corpora, integration) with ctest; then the
# profile-guided build (scripts/build-pgo.sh): its unit tests, and its
# replays, which must be byte-identical to the plain build's; then builds
# with clang under ASan+UBSan and runs the unit tests and fuzz corpora
# again.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CTEST_OUTPUT_ON_FAILURE=1

echo "== gcc build, all tests"
./scripts/build.sh build -DCMAKE_C_COMPILER=gcc
(cd build && ctest -j2 --timeout 1200 --output-on-failure)

echo "== profile-guided build (scripts/build-pgo.sh): unit tests, the same output as the plain build"
./scripts/build-pgo.sh build-pgo
(cd build-pgo && ctest -j2 -L unit --timeout 1200 --output-on-failure)
same=build-pgo/same-output
mkdir -p "$same"
build/cmd/segstream gen --customers 10000 --events 200000 --seed 21 --format msgpack --out "$same/in.msgpack"
build/cmd/segstream gen --customers 3000 --events 60000 --seed 22 --out "$same/in.jsonl"
for input in in.msgpack in.jsonl; do
  for cfg in "" config/segstream.example.yaml; do
    for b in build build-pgo; do
      $b/cmd/segstream replay --input "$same/$input" --out "$same/$b.out" --state memory --quiet \
        ${cfg:+-c "$cfg"}
    done
    cmp "$same/build.out" "$same/build-pgo.out"
    echo "same output: $input ${cfg:-(defaults)}, $(wc -l <"$same/build.out") change events"
  done
done

echo "== clang ASan+UBSan build, unit tests and fuzz corpora"
BUILD_TYPE=Asan ./scripts/build.sh build-asan -DCMAKE_C_COMPILER=clang
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest -j2 -L unit --timeout 1200 --output-on-failure)

echo "== clang-format check"
cmake --build build --target format-check
