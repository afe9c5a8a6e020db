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
. "$(dirname "$0")/lib.sh"
start_backends
NP=$(free_port)
{
  echo "bench:"; echo "  listen: 127.0.0.1:$NP"; echo "  hash: md5"; echo "  distribution: ketama"
  echo "  timeout: 1000"; echo "  servers:"; for s in "${SERVERS[@]}"; do echo "   - $s:1"; done
} > "$WORK/nutcracker.yml"
nutcracker -c "$WORK/nutcracker.yml" -o "$WORK/nutcracker.log" & NPID=$!; PIDS+=($NPID)
wait_port "$NP"
router_config "$WORK/mcrouter.json"
start_router "$MCROUTER" "$WORK/mcrouter.json" "$WORK/mcrouter.out"
MPID=$STARTED_PID; MA=$STARTED_ADDR

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
echo "median cpu ratio (mcrouter/twemproxy): $(median "${CPU_R[@]}")"
echo "median added-latency ratio (mcrouter/twemproxy): $(median "${LAT_R[@]}")"
