#!/usr/bin/env bash
# scripts/build-pgo.sh [BUILD_DIR] [cmake args...]: the profile-guided build
# (gcc), for packaging and the Docker image; the plain build
# (scripts/build.sh) gives the same output, 5-13 % slower on the hot path
# (benchmarks/README.md). Three steps in one build directory (default
# build-pgo):
#   1. segstream built with -fprofile-generate (SEGSTREAM_PGO=generate);
#   2. a training run: replays of generated populations, JSON and msgpack,
#      with and without the example rules (gen's synthetic shop, as the
#      benchmarks use it, but never their files: other seeds, so the
#      benchmark does not measure the events it was trained on);
#   3. everything rebuilt with the profile (SEGSTREAM_PGO=use).
# PGO_TARGETS (default: all) limits step 3, e.g. PGO_TARGETS="segstream".
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-pgo}
shift || true
prof=$(realpath -m "$dir")/pgo-profile
train=$dir/pgo-train
conf() {
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" -DCMAKE_C_COMPILER=gcc \
    -DSEGSTREAM_PGO="$1" -DSEGSTREAM_PGO_DIR="$prof" "${@:2}" >/dev/null
}

echo "== profile-guided build in $dir: 1/3 instrumented segstream"
conf generate "$@"
cmake --build "$dir" -j2 --target segstream
rm -rf "$prof" "$train"
mkdir -p "$train"

echo "== 2/3 training run"
bin=$dir/cmd/segstream
"$bin" gen --customers 50000 --events 1000000 --seed 11 --format msgpack --out "$train/t.msgpack"
"$bin" gen --customers 5000 --events 150000 --seed 12 --out "$train/t.jsonl"
for input in "$train/t.msgpack" "$train/t.jsonl"; do
  "$bin" replay --input "$input" --out /dev/null --state memory --quiet
done
"$bin" replay --input "$train/t.msgpack" --out /dev/null --state memory --quiet \
  -c config/segstream.example.yaml
[ -n "$(find "$prof" -name '*.gcda' -print -quit)" ] || {
  echo "build-pgo: the training run wrote no profile under $prof" >&2
  exit 1
}

echo "== 3/3 build with the profile"
conf use "$@"
if [ -n "${PGO_TARGETS:-}" ]; then
  # shellcheck disable=SC2086
  cmake --build "$dir" -j2 --target $PGO_TARGETS
else
  cmake --build "$dir" -j2
fi
echo "build-pgo: $dir/cmd/segstream"
