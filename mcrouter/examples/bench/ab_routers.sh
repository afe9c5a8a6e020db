#!/usr/bin/env bash
# Two router builds side by side: CPU per request of each under the same load, in pairs
# whose order alternates, and the median of the per-pair ratios (B / A).
#
#   Why alternate: measured one after the other in a fixed order, the second build came
#   out 5-7% worse on a 2-vCPU VM whichever build it was. On such a machine single pairs
#   vary by about +-10%, so 10-12 pairs resolve differences of about 3-4%, not less.
#
#   Load: `memcaslap -T 1 -c $CONC -t ${SECS}s` (90% get / 10% set) through each router, in
#   front of the same three `memcached -m 1024` backends (KetamaMd5, as
#   compare_twemproxy.sh); CPU = utime+stime of the router process per memcaslap op.
#
# Usage: mcrouter/examples/bench/ab_routers.sh BIN_A BIN_B [pairs=10] [secs=3] [conc=32]
#   (a BIN may be a wrapper script that execs a router with extra flags or env)
# Needs: memcached, memcaslap (Debian: memcached libmemcached-tools), python3.
set -euo pipefail
A=$1; B=$2; PAIRS=${3:-10}; SECS=${4:-3}; CONC=${5:-32}
. "$(dirname "$0")/lib.sh"
start_backends
router_config "$WORK/router.json"
start_router "$A" "$WORK/router.json" "$WORK/a.out"; PA=$STARTED_PID; AA=$STARTED_ADDR
start_router "$B" "$WORK/router.json" "$WORK/b.out"; PB=$STARTED_PID; AB=$STARTED_ADDR

echo "pair  a_cpu_us/op  b_cpu_us/op  b/a"
RATIOS=()
for r in $(seq "$PAIRS"); do
  if [ $((r % 2)) = 1 ]; then a=$(cpu_per_op "$AA" "$PA"); b=$(cpu_per_op "$AB" "$PB")
  else b=$(cpu_per_op "$AB" "$PB"); a=$(cpu_per_op "$AA" "$PA"); fi
  q=$(python3 -c "print(round($b/$a, 3))"); RATIOS+=("$q")
  echo "$r     $a        $b        $q"
done
echo "median b/a: $(median "${RATIOS[@]}")"
