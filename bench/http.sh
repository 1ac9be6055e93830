#!/usr/bin/env bash
# HTTP benchmark: wire serve against nginx and h2o (Debian's, 1 worker each, access logs
# off, their own configs on 127.0.0.1). Server pinned to CPU 1, `wrk -t1` to CPU 0. Judged
# by requests per server CPU-second (utime+stime of the server process over the run), with
# req/s and latency beside it. Cases: a 13-byte file (keep-alive) at -c50 and -c200, and a
# 1 MiB file at -c50 (MB/s and MB per server CPU-second). Interleaved rounds; medians.
# `wire` runs as users get it on loopback, counting for its status page; `wire-off` is the
# same with --status off: their ratio is what the counting costs.
# Usage: bench/http.sh [BUILD_DIR]   (ROUNDS, DURATION override)
set -euo pipefail
build=$(cd "${1:-build/release}" && pwd)
rounds=${ROUNDS:-3}
duration=${DURATION:-5}
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www" "$work/tmp"
printf 'Hello, world!' >"$work/www/hello.txt"  # 13 bytes
head -c $((1 << 20)) /dev/urandom >"$work/www/big.bin"
# h2o started as root drops to nobody: the files must be world-readable (a 0700 temp dir
# gave it 403s, which would have been benchmarked as very fast error pages).
chmod 755 "$work" "$work/www"
chmod 644 "$work/www/"*
port=17800
hz=$(getconf CLK_TCK)

nginx_conf() {
  cat >"$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  types { text/plain txt; application/octet-stream bin; }
  server { listen 127.0.0.1:$1; root $work/www; }
}
CONF
}
h2o_conf() {
  cat >"$work/h2o.conf" <<CONF
num-threads: 1
listen:
  host: 127.0.0.1
  port: $1
error-log: $work/h2o.err
hosts:
  default:
    paths:
      /:
        file.dir: $work/www
CONF
}

start() {  # name -> server_pid
  port=$((port + 1))
  case $1 in
    wire) taskset -c 1 "$build/tools/wire/wire" serve "$work/www" --quiet --bind "127.0.0.1:$port" 2>/dev/null & ;;
    wire-off) taskset -c 1 "$build/tools/wire/wire" serve "$work/www" --quiet --status off --bind "127.0.0.1:$port" 2>/dev/null & ;;
    nginx) nginx_conf "$port"; taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" 2>/dev/null & ;;
    h2o) h2o_conf "$port"; taskset -c 1 h2o -c "$work/h2o.conf" >/dev/null 2>&1 & ;;
    ceiling) taskset -c 1 "$build/bench/epoll_http" "$port" 2>/dev/null & ;;
  esac
  server_pid=$!
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "$1 did not start" >&2
  exit 1
}
stop() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; }
# CPU ticks of a process and all its descendants (h2o and nginx may fork workers).
ticks() {
  local total=0 pid child
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    for child in $(pgrep -P "$pid" || true); do total=$((total + $(ticks "$child"))); done
  done
  echo "$total"
}

results="$work/results"
for round in $(seq "$rounds"); do
  for case in "hello.txt 50" "hello.txt 200" "big.bin 50"; do
    read -r file conns <<<"$case"
    # The order turns each round, so a drift in the machine's speed favours no server.
    # The ceiling (bench/epoll_http.cpp: canned replies, no parsing, no files) only
    # knows the 13-byte answer.
    servers=(wire wire-off nginx h2o)
    [[ $file == hello.txt ]] && servers+=(ceiling)
    shift_by=$(((round - 1) % ${#servers[@]}))
    for name in "${servers[@]:shift_by}" "${servers[@]:0:shift_by}"; do
      start "$name"
      sleep 0.2  # let forked workers start
      # A benchmark of error pages would be worthless: check the body first.
      got=$(curl -s -o /dev/null -w "%{http_code} %{size_download}" "http://127.0.0.1:$port/$file")
      [[ "$got" == "200 $(stat -c %s "$work/www/$file")" ]] || { echo "$name answered $got for $file" >&2; exit 1; }
      before=$(ticks "$server_pid")
      out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/$file")
      after=$(ticks "$server_pid")
      stop
      rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
      mbps=$(awk '/^Transfer\/sec/ {v=$2; if (v ~ /GB/) v*=1024; else if (v ~ /KB/) v/=1024; print v+0}' <<<"$out")
      p50=$(awk '$1=="50%" {print $2}' <<<"$out")
      cpu=$(awk -v a="$after" -v b="$before" -v hz="$hz" 'BEGIN {printf "%.3f", (a - b) / hz}')
      echo "$file $conns $name $round $rps $mbps $cpu $p50" >>"$results"
    done
  done
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "wire serve vs nginx and h2o: server on CPU 1, wrk -t1 on CPU 0, $rounds rounds x ${duration}s, medians"
for case in "hello.txt 50" "hello.txt 200" "big.bin 50"; do
  read -r file conns <<<"$case"
  echo
  echo "$file, -c$conns"
  printf "%-8s %12s %10s %14s %16s %10s\n" server "req/s" "MB/s" "server CPU s" "req per CPU-s" "p50"
  names=(wire wire-off nginx h2o)
  [[ $file == hello.txt ]] && names+=(ceiling)
  for name in "${names[@]}"; do
    sel() { awk -v f="$file" -v c="$conns" -v n="$name" -v k="$1" '$1==f && $2==c && $3==n {print $k}' "$results"; }
    rps=$(sel 5 | median); mb=$(sel 6 | median); cpu=$(sel 7 | median)
    per=$(awk -v f="$file" -v c="$conns" -v n="$name" -v d="$duration" '$1==f && $2==c && $3==n && $7>0 {print $5*d/$7}' "$results" | median)
    p50=$(sel 8 | head -1)
    printf "%-8s %12.0f %10.1f %14.3f %16.0f %10s\n" "$name" "$rps" "$mb" "$cpu" "$per" "$p50"
  done
  pairs=("wire wire-off" "wire nginx" "wire h2o")
  [[ $file == hello.txt ]] && pairs+=("wire ceiling" "ceiling h2o")
  for pair in "${pairs[@]}"; do
    read -r one ref <<<"$pair"
    ratio=$(for r in $(seq "$rounds"); do
      awk -v f="$file" -v c="$conns" -v r="$r" -v one="$one" -v ref="$ref" -v d="$duration" \
        '$1==f && $2==c && $4==r {per[$3]=($7>0 ? $5*d/$7 : 0)} END {if (per[ref]>0) printf "%.3f\n", per[one]/per[ref]}' "$results"
    done | median)
    echo "  $one / $ref in requests per server CPU-second (median of paired rounds): $ratio"
  done
done
