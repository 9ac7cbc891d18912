#!/usr/bin/env bash
# scripts/build.sh [BUILD_DIR] [cmake args...]: configure and build with at
# most two parallel jobs (the project's machines have two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
# SEGSTREAM_PGO empty: a plain build, even in a directory build-pgo.sh used
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DSEGSTREAM_PGO= "$@" >/dev/null
cmake --build "$dir" -j2
