#!/usr/bin/env bash
# Whether viewing the status page holds up other requests: the hostile review's repro.
# `wire serve --workers 4` on 127.0.0.1, 32 loops fetching /_wire/status nonstop, and
# meanwhile 50 fetches of a 6-byte file with curl, one after another: prints their slowest,
# median and fastest time_total, and how many fd-table reads the page made (fd_table_reads).
# Before the fd table was read off the workers, the file took 0.5 to 8.7 s on a host with
# ~13,000 sockets; it should now take what it takes without viewers.
# Usage: bench/status_stall.sh [BUILD_DIR]   (VIEWERS, FETCHES override)
set -euo pipefail
build=$(cd "${1:-build/release}" && pwd)
viewers=${VIEWERS:-32}
fetches=${FETCHES:-50}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/www"
printf 'small\n' >"$work/www/small.txt"  # 6 bytes

"$build/tools/wire/wire" serve 0 "$work/www" --workers 4 -q 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 50); do
  url=$(sed -n 's/^Serving .* at \(http:[^ ]*\)$/\1/p' "$work/serve.log")
  [[ -n $url ]] && break
  sleep 0.1
done
[[ -n $url ]] || { echo "wire serve did not start" >&2; exit 1; }

for _ in $(seq "$viewers"); do
  (while :; do curl -s -o /dev/null --max-time 30 "${url}_wire/status" || true; done) &
  pids+=($!)
done
sleep 2  # let the viewers get going

for _ in $(seq "$fetches"); do
  curl -s -o /dev/null --max-time 30 -w '%{time_total}\n' "${url}small.txt"
done | sort -n >"$work/times"
echo "small.txt with $viewers viewers: slowest $(tail -1 "$work/times") s," \
  "median $(sed -n "$(((fetches + 1) / 2))p" "$work/times") s, fastest $(head -1 "$work/times") s"
curl -s "${url}_wire/status.json" | grep -o '"fd_table_reads": [0-9]*'
