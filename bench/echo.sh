#!/usr/bin/env bash
# Echo benchmark: wire's single-threaded echo server against a hand-written epoll echo
# server (bench/epoll_echo.cpp), 64-byte messages on loopback, interleaved rounds.
#  (1) same core: server and load generator both pinned to CPU 1, so every server cycle
#      shows in messages/s;
#  (2) fixed load: server on CPU 1, generator on CPU 0 offering RATE msgs/s; compares the
#      server's CPU time (utime+stime from /proc/PID/stat).
# Prints medians and the median of the paired ratios wire/reference.
# Usage: bench/echo.sh [BUILD_DIR]   (ROUNDS, SECONDS, RATE override the defaults)
set -euo pipefail
build=${1:-build/release}
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-3}
rate=${RATE:-100000}
load=$build/bench/echo_load
port=17300

start_server() {  # name cpu -> sets server_pid
  local name=$1 cpu=$2
  port=$((port + 1))
  if [[ $name == reference ]]; then
    taskset -c "$cpu" "$build/bench/epoll_echo" "$port" 2>/dev/null &
  else
    taskset -c "$cpu" "$build/tools/wire/wire" echo -q "tcp://127.0.0.1:$port" &
  fi
  server_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "server $name did not start" >&2
  exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
cases=("1 1" "100 1" "100 16")
for round in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    read -r conns flight <<<"$c"
    for name in reference wire; do
      start_server "$name" 1
      rate_same=$(taskset -c 1 "$load" 127.0.0.1 "$port" "$conns" "$flight" "$seconds")
      stop_server
      echo "same $conns x $flight $name $round $rate_same" >>"$results"
    done
  done
  for name in reference wire; do
    start_server "$name" 1
    before=$(cpu_ticks "$server_pid")
    achieved=$(taskset -c 0 "$load" 127.0.0.1 "$port" 100 16 "$seconds" "$rate")
    after=$(cpu_ticks "$server_pid")
    stop_server
    echo "fixed 100 x 16 $name $round $((after - before)) $achieved" >>"$results"
  done
done

echo "Echo, 64-byte messages, single-threaded servers, $rounds rounds of ${seconds}s"
echo
echo "(1) same core (messages/s, higher is better)"
printf "%-14s %14s %14s %16s\n" case reference wire "wire/reference"
for c in "${cases[@]}"; do
  read -r conns flight <<<"$c"
  label="$conns x $flight"
  ref=$(awk -v l="$conns x $flight" '$1=="same" && $2" "$3" "$4==l && $5=="reference" {print $7}' "$results" | median)
  wire=$(awk -v l="$conns x $flight" '$1=="same" && $2" "$3" "$4==l && $5=="wire" {print $7}' "$results" | median)
  ratio=$(for r in $(seq "$rounds"); do
    awk -v l="$conns x $flight" -v r="$r" '$1=="same" && $2" "$3" "$4==l && $6==r {v[$5]=$7} END {printf "%.4f\n", v["wire"]/v["reference"]}' "$results"
  done | median)
  printf "%-14s %14.0f %14.0f %16.4f\n" "$label" "$ref" "$wire" "$ratio"
done
echo
echo "(2) fixed offered load of $rate msgs/s, 100 x 16 (server CPU ticks, lower is better)"
ref=$(awk '$1=="fixed" && $5=="reference" {print $7}' "$results" | median)
wire=$(awk '$1=="fixed" && $5=="wire" {print $7}' "$results" | median)
ratio=$(for r in $(seq "$rounds"); do
  awk -v r="$r" '$1=="fixed" && $6==r {v[$5]=$7} END {printf "%.4f\n", (v["reference"] > 0 ? v["wire"]/v["reference"] : 0)}' "$results"
done | median)
ach_ref=$(awk '$1=="fixed" && $5=="reference" {print $8}' "$results" | median)
ach_wire=$(awk '$1=="fixed" && $5=="wire" {print $8}' "$results" | median)
printf "%-14s %14s %14s %16s\n" "" reference wire "wire/reference"
printf "%-14s %14s %14s %16s\n" "CPU ticks" "$ref" "$wire" "$ratio"
printf "%-14s %14.0f %14.0f\n" "achieved/s" "$ach_ref" "$ach_wire"
