#!/usr/bin/env bash
# scripts/install-deps.sh: the one place that names every Debian package
# segstream uses to build, test and benchmark. README and .ci/run both call it.
# Idempotent: skips apt when everything is already installed.
set -euo pipefail

PKGS=(
  # toolchain
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev valgrind
  # libraries
  librdkafka-dev libuv1-dev libmsgpack-dev libhiredis-dev libyaml-dev libjsmn-dev libh2o-dev
  # tests
  libcriterion-dev redis-server redis-tools kcat python3-kafka python3-lz4 python3-sklearn python3-numpy
  docker-compose curl
  # benchmarks only: the JSON parsers measured against jsmn, and hyperfine
  libcjson-dev libjansson-dev libjson-c-dev libyajl-dev hyperfine
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's redis-server package starts a system instance on :6379; segstream's
# tests start their own on free ports, so that instance is left as the user has it.
echo "install-deps: done"
