#!/usr/bin/env bash
# Runs the ping-pong benchmark as interleaved rounds (raw, wire, raw, wire, ...) and prints
# the median time per round trip of each and the median of the paired ratios wire/raw.
set -euo pipefail
bin=${1:-build/release/bench/bench_pingpong}
rounds=${ROUNDS:-5}
for i in $(seq "$rounds"); do
  for name in raw_syscalls wire_socket; do
    "$bin" --benchmark_filter="^${name}/" --benchmark_format=csv 2>/dev/null |
      awk -F, -v n="$name" '$1 ~ n {print n, $3}'
  done
done | awk '
  { t[$1, ++count[$1]] = $2 }
  function median(arr, n,   i, j, tmp) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { tmp = arr[i]; arr[i] = arr[j]; arr[j] = tmp }
    return (n % 2) ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  END {
    n = count["raw_syscalls"]
    for (i = 1; i <= n; i++) { raw[i] = t["raw_syscalls", i]; w[i] = t["wire_socket", i]; r[i] = w[i] / raw[i] }
    printf "64-byte ping-pong over Socket::pair(), %d rounds, medians:\n", n
    printf "  raw send/recv  %8.1f ns per round trip\n", median(raw, n)
    printf "  wire::Socket   %8.1f ns per round trip\n", median(w, n)
    printf "  wire / raw     %8.4f (overhead %+.2f %%)\n", median(r, n), (median(r, n) - 1) * 100
  }'
