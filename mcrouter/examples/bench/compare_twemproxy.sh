#!/usr/bin/env bash
# mcrouter vs twemproxy (Debian `nutcracker`), side by side in one run: the same three
# `memcached` backends, the same placement (KetamaMd5 = twemproxy ketama+md5), the same
# load, alternating rounds.
#
#   The backends must be in the same state for both proxies' turns: they get 1 GiB each
#   (`-m 1024`, never full during a run, so no evictions start half-way: memaslap's sets
#   fill a 64 MiB memcached within seconds, and a memcached that evicts changes every
#   proxy's cost per request), and the order alternates (twemproxy first in odd rounds,
#   mcrouter first in even ones), so neither always meets the fuller cache.
#
#   CPU per request: `memcaslap -T 1 -c $CONC -t ${SECS}s` (90% get / 10% set) through each
#     proxy; utime+stime of the proxy process (/proc/PID/stat) divided by memcaslap's ops.
#   Latency: `bench_driver` (mcrouter/examples/bench_driver.rs) at a fixed rate of $RATE
#     requests/s over 16 connections; median round trip through each proxy minus the median
#     straight to a memcached ("added median latency").
#
# Usage: mcrouter/examples/bench/compare_twemproxy.sh [rounds=3] [secs=5] [conc=32] [rate=10000]
# Needs: memcached, nutcracker, memcaslap (Debian: memcached nutcracker libmemcached-tools), python3.
set -euo pipefail
ROUNDS=${1:-3}; SECS=${2:-5}; CONC=${3:-32}; RATE=${4:-10000}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p mcrouter --bin mcrouter --example bench_driver)
MCROUTER=${MCROUTER:-$TARGET/release/mcrouter}
DRIVER=$TARGET/release/examples/bench_driver
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$1),0.1)" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

SERVERS=()
for _ in 1 2 3; do
  p=$(free_port)
  memcached -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 1024 $( [ "$(id -u)" = 0 ] && echo "-u root" ) & PIDS+=($!)
  wait_port "$p"; SERVERS+=("127.0.0.1:$p")
done
NP=$(free_port)
{
  echo "bench:"; echo "  listen: 127.0.0.1:$NP"; echo "  hash: md5"; echo "  distribution: ketama"
  echo "  timeout: 1000"; echo "  servers:"; for s in "${SERVERS[@]}"; do echo "   - $s:1"; done
} > "$WORK/nutcracker.yml"
nutcracker -c "$WORK/nutcracker.yml" -o "$WORK/nutcracker.log" & NPID=$!; PIDS+=($NPID)
wait_port "$NP"
printf '{"pools": {"A": {"servers": ["%s", "%s", "%s"], "hash": "KetamaMd5"}}, "route": "PoolRoute|A"}\n' "${SERVERS[@]}" > "$WORK/mcrouter.json"
"$MCROUTER" --config-file "$WORK/mcrouter.json" -p 0 > "$WORK/mcrouter.out" & MPID=$!; PIDS+=($MPID)
for _ in $(seq 200); do grep -q "listening on" "$WORK/mcrouter.out" 2>/dev/null && break; sleep 0.05; done
MA=$(head -1 "$WORK/mcrouter.out" | sed 's/listening on //')

cpu_per_op() { # addr pid -> microseconds of proxy CPU per memcaslap op
  local t0 t1 ops
  t0=$(ticks "$2")
  ops=$(memcaslap -s "$1" -T 1 -c "$CONC" -t "${SECS}s" 2>/dev/null | awk '/^Run time/ {print $5}')
  t1=$(ticks "$2")
  python3 -c "print(round(($t1-$t0)*1e6/$(getconf CLK_TCK)/$ops, 3))"
}
p50() { "$DRIVER" "$1" 16 "$SECS" 10000 1 "$RATE" | awk '{print $8}'; }

echo "backends: ${SERVERS[*]}  twemproxy: 127.0.0.1:$NP  mcrouter: $MA"
echo "round  twem_cpu_us/op  mcr_cpu_us/op  cpu_ratio  direct_p50_us  twem_p50_us  mcr_p50_us  added_latency_ratio"
CPU_R=(); LAT_R=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    tc=$(cpu_per_op "127.0.0.1:$NP" "$NPID"); mc=$(cpu_per_op "$MA" "$MPID")
    d=$(p50 "${SERVERS[0]}"); tl=$(p50 "127.0.0.1:$NP"); ml=$(p50 "$MA")
  else
    mc=$(cpu_per_op "$MA" "$MPID"); tc=$(cpu_per_op "127.0.0.1:$NP" "$NPID")
    d=$(p50 "${SERVERS[0]}"); ml=$(p50 "$MA"); tl=$(p50 "127.0.0.1:$NP")
  fi
  cr=$(python3 -c "print(round($mc/$tc, 3))")
  lr=$(python3 -c "print(round(max($ml-$d,0.001)/max($tl-$d,0.001), 3))")
  CPU_R+=("$cr"); LAT_R+=("$lr")
  echo "$r      $tc           $mc          $cr      $d          $tl         $ml        $lr"
done
median() { python3 -c "import statistics,sys;print(statistics.median(map(float,sys.argv[1:])))" "$@"; }
echo "median cpu ratio (mcrouter/twemproxy): $(median "${CPU_R[@]}")"
echo "median added-latency ratio (mcrouter/twemproxy): $(median "${LAT_R[@]}")"
