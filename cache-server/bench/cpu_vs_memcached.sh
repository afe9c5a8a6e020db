#!/usr/bin/env bash
# Server CPU per request under identical memcaslap load (libmemcached-tools), memcached vs
# cache-server, both -t 2 -m 64, alternating A B A B. CPU = utime+stime from /proc/PID/stat.
#   cargo build --release -p cache-server && cache-server/bench/cpu_vs_memcached.sh
#   env: CS (binary), DUR (8s), ROUNDS (3), CONC (32)
set -u
CS=${CS:-$(dirname "$0")/../../target/release/cache-server}
DUR=${DUR:-8s}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-32} # memcaslap connections (over 2 threads)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; }
run_one() { # name port cmd...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 &
  local pid=$!
  wait_port "$port"
  local t0; t0=$(ticks $pid)
  local out; out=$(memcaslap -s "127.0.0.1:$port" -t "$DUR" -T 2 -c "$CONC" -X 100 2>&1)
  local t1; t1=$(ticks $pid)
  kill $pid; wait $pid 2>/dev/null
  local ops; ops=$(echo "$out" | awk '/^Run time/ {for(i=1;i<=NF;i++) if ($i=="Ops:") print $(i+1)}')
  echo "$name ops=$ops cpu_ticks=$((t1-t0)) us_per_req=$(echo "scale=3; ($t1-$t0)*(1000000/$(getconf CLK_TCK))/$ops" | bc)"
}
for _ in $(seq "$ROUNDS"); do
  p=$(free_port); run_one memcached "$p" memcached -u "$(id -un)" -U 0 -l 127.0.0.1 -p "$p" -t 2 -m 64
  p=$(free_port); run_one cache-server "$p" "$CS" -U 0 -l 127.0.0.1 -p "$p" -t 2 -m 64
done
