#!/usr/bin/env bash
# scripts/test.sh: installs the Debian packages, builds with gcc and runs
# every test (unit, fuzz corpora, integration) with ctest; then builds with
# clang under ASan+UBSan and runs the unit tests and fuzz corpora again.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CTEST_OUTPUT_ON_FAILURE=1

echo "== gcc build, all tests"
./scripts/build.sh build -DCMAKE_C_COMPILER=gcc
(cd build && ctest -j2 --timeout 1200 --output-on-failure)

echo "== clang ASan+UBSan build, unit tests and fuzz corpora"
BUILD_TYPE=Asan ./scripts/build.sh build-asan -DCMAKE_C_COMPILER=clang
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest -j2 -L unit --timeout 1200 --output-on-failure)

echo "== clang-format check"
cmake --build build --target format-check
