#!/usr/bin/env bash
# Relay benchmark: `wire relay` against socat (TCP-LISTEN:P,fork,reuseaddr TCP:127.0.0.1:Q),
# both forwarding SIZE_MB of zeros from a client to a sink over loopback, interleaved rounds.
# Reports the relay process's throughput per CPU-second (MB / (utime + stime), from
# /proc/PID/stat, children included: socat copies in a forked child), and the median of the
# paired ratios wire/socat (higher is better for wire).
# The relay runs on CPU 1, the client and the sink on CPU 0.
# Usage: bench/relay.sh [BUILD_DIR]   (ROUNDS, SIZE_MB override the defaults)
set -euo pipefail
build=${1:-build/release}
rounds=${ROUNDS:-3}
size_mb=${SIZE_MB:-2048}
wire=$build/tools/wire/wire
port=17400
command -v socat >/dev/null || { echo "socat is needed" >&2; exit 1; }

wait_port() {  # port
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "nothing listens on $1" >&2
  exit 1
}
# utime + stime + cutime + cstime, in clock ticks.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

run_one() {  # name -> prints "MB/CPU-s"
  local name=$1 sink_port relay_port relay_pid sink_pid before after
  port=$((port + 2))
  sink_port=$port
  relay_port=$((port + 1))
  taskset -c 0 socat -u "TCP-LISTEN:$sink_port,reuseaddr,fork" OPEN:/dev/null &
  sink_pid=$!
  wait_port "$sink_port"
  if [[ $name == wire ]]; then
    taskset -c 1 "$wire" relay -q "tcp://127.0.0.1:$relay_port" "tcp://127.0.0.1:$sink_port" &
  else
    taskset -c 1 socat "TCP-LISTEN:$relay_port,fork,reuseaddr" "TCP:127.0.0.1:$sink_port" &
  fi
  relay_pid=$!
  sleep 0.2
  before=$(cpu_ticks "$relay_pid")
  taskset -c 0 head -c "$((size_mb * 1048576))" /dev/zero |
    taskset -c 0 socat -u - "TCP:127.0.0.1:$relay_port"
  sleep 0.3  # the relay flushes what it holds; socat reaps its child (CPU in cutime/cstime)
  after=$(cpu_ticks "$relay_pid")
  kill "$relay_pid" "$sink_pid"
  wait "$relay_pid" "$sink_pid" 2>/dev/null || true
  awk -v mb="$size_mb" -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.1f\n", (t > 0) ? mb / (t / hz) : 0}'
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
  for name in socat wire; do
    echo "$name $round $(run_one "$name")" >>"$results"
  done
done

echo "Relay, $size_mb MB client -> relay -> sink on loopback, $rounds rounds"
echo "(MB per CPU-second of the relay process, higher is better)"
printf "%-8s %14s\n" relay "MB/CPU-s"
for name in socat wire; do
  printf "%-8s %14s\n" "$name" "$(awk -v n="$name" '$1==n {print $3}' "$results" | median)"
done
ratio=$(for r in $(seq "$rounds"); do
  awk -v r="$r" '$2==r {v[$1]=$3} END {printf "%.4f\n", (v["socat"] > 0) ? v["wire"]/v["socat"] : 0}' "$results"
done | median)
printf "%-8s %14s\n" wire/socat "$ratio"
