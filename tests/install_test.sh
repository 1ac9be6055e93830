#!/usr/bin/env bash
# `cmake --install` the build, then build a consumer with find_package(wire) and another
# with pkg-config, and run both. Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$source/tests/consumer" -B "$work/consumer" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_FLAGS="${WIRE_CONSUMER_FLAGS:-}" >/dev/null
cmake --build "$work/consumer" >/dev/null
[[ "$("$work/consumer/consumer")" == installed ]]
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig:$work/prefix/lib/x86_64-linux-gnu/pkgconfig"
# shellcheck disable=SC2046
c++ ${WIRE_CONSUMER_FLAGS:-} "$source/tests/consumer/main.cpp" -o "$work/pc-consumer" \
  $(pkg-config --cflags --libs wire)
[[ "$("$work/pc-consumer")" == installed ]]
echo "install, find_package(wire) and pkg-config all work"
