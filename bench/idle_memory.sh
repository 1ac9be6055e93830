#!/usr/bin/env bash
# RSS per idle connection: start a server, open N connections that each do one round trip
# and then sit idle, and divide the server's RSS growth by N. Echo: wire's echo server
# against the hand-written epoll reference; HTTP: wire serve against nginx (1 worker), each
# connection after one keep-alive GET. Usage: bench/idle_memory.sh [BUILD_DIR] [N]
set -euo pipefail
build=${1:-build/release}
n=${2:-10000}
ulimit -n "$(ulimit -Hn)"
port=17600

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

measure() {  # name command... -> prints "name KiB-per-connection"
  local name=$1
  shift
  port=$((port + 1))
  "$@" "$port" &
  local server=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.02
  done
  sleep 0.2
  local before after fifo
  before=$(rss_kib "$server")
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$build/bench/idle_clients" 127.0.0.1 "$port" "$n" $mode <"$fifo" >"$fifo.out" &
  local clients=$!
  exec 4>"$fifo"
  for _ in $(seq 600); do
    grep -q ready "$fifo.out" 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.5
  after=$(rss_kib "$server")
  exec 4>&-
  wait "$clients" || true
  kill "$server"
  wait "$server" 2>/dev/null || true
  rm -f "$fifo" "$fifo.out"
  awk -v name="$name" -v b="$before" -v a="$after" -v n="$n" \
    'BEGIN {printf "%-10s RSS %7d -> %7d KiB: %.3f KiB per idle connection\n", name, b, a, (a - b) / n}'
}

wire_server() { exec "$build/tools/wire/wire" echo -q "tcp://127.0.0.1:$1"; }
reference_server() { exec "$build/bench/epoll_echo" "$1" 2>/dev/null; }
www=$(mktemp -d)
trap 'rm -rf "$www"' EXIT
chmod 755 "$www"
printf 'Hello, world!' >"$www/hello.txt"
wire_http() { exec "$build/tools/wire/wire" serve "$www" -q --bind "127.0.0.1:$1" 2>/dev/null; }
nginx_http() {
  mkdir -p "$www/tmp"
  cat >"$www/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $www/nginx.pid; error_log $www/err;
worker_rlimit_nofile 30000;
events { worker_connections 20000; }
http { access_log off; keepalive_timeout 300s; keepalive_requests 1000000;
  client_body_temp_path $www/tmp; proxy_temp_path $www/tmp; fastcgi_temp_path $www/tmp;
  uwsgi_temp_path $www/tmp; scgi_temp_path $www/tmp;
  server { listen 127.0.0.1:$1; root $www; } }
CONF
  exec nginx -c "$www/nginx.conf" -p "$www"
}
mode=
echo "$n idle connections, each after one 1-byte echo"
measure reference reference_server
measure wire wire_server
mode=http
echo "$n idle keep-alive HTTP connections, each after one GET of a 13-byte file"
measure nginx nginx_http
measure wire wire_http
