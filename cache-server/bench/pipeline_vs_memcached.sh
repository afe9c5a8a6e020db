#!/usr/bin/env bash
# Throughput with 16-deep pipelining (loadgen), memcached vs cache-server, both -t 2 -m 64,
# alternating A B A B.
#   cargo build --release -p cache-server -p loadgen && cache-server/bench/pipeline_vs_memcached.sh
set -u
T=$(dirname "$0")/../../target/release
CS=${CS:-$T/cache-server}
LG=${LG:-$T/loadgen}
DUR=${DUR:-5s}
ROUNDS=${ROUNDS:-3}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; }
one() { # name port cmd...
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 &
  local pid=$!
  wait_port "$port"
  local json; json=$(mktemp)
  "$LG" -s "127.0.0.1:$port" -t 1 -c 8 --pipeline 16 --ratio 1:9 --value-size 100 --key-space 10000 \
      --duration "$DUR" --warmup 1s --quiet --json-out "$json" >/dev/null 2>&1
  kill $pid; wait $pid 2>/dev/null
  python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['totals']; print(sys.argv[2], 'ops/s=%d p50_us=%s p99_us=%s' % (t['ops_per_sec'], t['p50_us'], t['p99_us']))" "$json" "$name"
  rm -f "$json"
}
for _ in $(seq "$ROUNDS"); do
  p=$(free_port); one memcached "$p" memcached -u "$(id -un)" -U 0 -l 127.0.0.1 -p "$p" -t 2 -m 64
  p=$(free_port); one cache-server "$p" "$CS" -U 0 -l 127.0.0.1 -p "$p" -t 2 -m 64
done
