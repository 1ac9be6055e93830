#!/usr/bin/env bash
# wire sockets against ss and lsof on a machine with many sockets: CONNECTIONS TCP
# connections on loopback (a python3 server accepting them all), then the median wall time
# of RUNS runs of each command, printed with wire's time as a ratio of the other tool's.
# Pairs: `wire sockets -t` / `ss -tan`, `wire sockets -tp` / `ss -tanp` (the /proc/*/fd
# scan), `wire sockets -tp` / `lsof -nP -i`.
# Usage: bench/sockets.sh [BUILD_DIR]   (CONNECTIONS, RUNS override; default 10000, 5)
set -euo pipefail
build=$(cd "${1:-build/release}" && pwd)
wire="$build/tools/wire/wire"
connections=${CONNECTIONS:-10000}
runs=${RUNS:-5}
# Each connection is two fds: the accepting ends are held by one process and the connecting
# ends by another, so each needs CONNECTIONS fds (a hard limit of 20,000 is common).
ulimit -n $((connections + 256))
work=$(mktemp -d)
python3 - "$connections" "$work/ready" <<'PY' &
import socket, struct, sys, time, os
# Closed with a reset when the bench ends (SO_LINGER 0): 20,000 TIME-WAIT sockets left
# behind would be dumped by the next run, for a minute.
def abortive(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return s
count, ready = int(sys.argv[1]), sys.argv[2]
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4096)
port = server.getsockname()[1]
if os.fork() == 0:  # the connecting side, in a process of its own
    server.close()
    held = [abortive(socket.create_connection(("127.0.0.1", port))) for _ in range(count)]
    time.sleep(3600)
    os._exit(0)
held = [abortive(server.accept()[0]) for _ in range(count)]
open(ready, "w").write(str(port))
time.sleep(3600)
PY
holder=$!
trap 'pkill -P $holder 2>/dev/null || true; kill $holder 2>/dev/null || true; rm -rf "$work"' EXIT
while [[ ! -s "$work/ready" ]]; do
  kill -0 $holder 2>/dev/null || { echo "bench/sockets.sh: the connection holder died" >&2; exit 1; }
  sleep 0.2
done

# Seconds one run of the command takes, output discarded (bash's clock: no fork of date).
seconds() {
  local start=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || true
  echo "$EPOCHREALTIME - $start" | bc -l
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# The two commands run in turns, so a machine that slows down or speeds up part-way (this
# one does, by 20 % and more) slows both alike; the ratio is the median of the runs' ratios.
compare() {
  local label=$1 other_label=$2
  shift 2
  local split
  for ((split = 1; split <= $#; split++)); do [[ ${!split} == -- ]] && break; done
  local mine=("${@:1:split-1}") theirs=("${@:split+1}")
  local a b ours=() others=() ratios=()
  for ((i = 0; i < runs; i++)); do
    a=$(seconds "${mine[@]}")
    b=$(seconds "${theirs[@]}")
    ours+=("$a") others+=("$b") ratios+=("$(echo "$a / $b" | bc -l)")
  done
  printf '%-18s %8.3f s   %-14s %8.3f s   ratio %.2f\n' "$label" \
    "$(printf '%s\n' "${ours[@]}" | median)" "$other_label" \
    "$(printf '%s\n' "${others[@]}" | median)" "$(printf '%s\n' "${ratios[@]}" | median)"
}

echo "$connections connections ($((connections * 2 + 1)) TCP sockets), median of $runs runs in turns"
compare "wire sockets -t" "ss -tan" "$wire" sockets -t -- ss -tan
compare "wire sockets -tp" "ss -tanp" "$wire" sockets -tp -- ss -tanp
compare "wire sockets -tp" "lsof -nP -i" "$wire" sockets -tp -- lsof -nP -i
