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
printf '{"pools": {"A": {"servers": ["%s", "%s", "%s"], "hash": "KetamaMd5"}}, "route": "PoolRoute|A"}\n' "${SERVERS[@]}" > "$WORK/router.json"
"$A" --config-file "$WORK/router.json" -p 0 > "$WORK/a.out" 2>/dev/null & PA=$!; PIDS+=($PA)
"$B" --config-file "$WORK/router.json" -p 0 > "$WORK/b.out" 2>/dev/null & PB=$!; PIDS+=($PB)
for _ in $(seq 200); do
  grep -q "listening on" "$WORK/a.out" 2>/dev/null && grep -q "listening on" "$WORK/b.out" 2>/dev/null && break
  sleep 0.05
done
AA=$(head -1 "$WORK/a.out" | sed 's/listening on //'); AB=$(head -1 "$WORK/b.out" | sed 's/listening on //')

cpu_per_op() { # addr pid -> microseconds of router CPU per memcaslap op
  local t0 t1 ops
  t0=$(ticks "$2")
  ops=$(memcaslap -s "$1" -T 1 -c "$CONC" -t "${SECS}s" 2>/dev/null | awk '/^Run time/ {print $5}')
  t1=$(ticks "$2")
  python3 -c "print(round(($t1-$t0)*1e6/$(getconf CLK_TCK)/$ops, 3))"
}

echo "pair  a_cpu_us/op  b_cpu_us/op  b/a"
RATIOS=()
for r in $(seq "$PAIRS"); do
  if [ $((r % 2)) = 1 ]; then a=$(cpu_per_op "$AA" "$PA"); b=$(cpu_per_op "$AB" "$PB")
  else b=$(cpu_per_op "$AB" "$PB"); a=$(cpu_per_op "$AA" "$PA"); fi
  q=$(python3 -c "print(round($b/$a, 3))"); RATIOS+=("$q")
  echo "$r     $a        $b        $q"
done
python3 -c "import statistics,sys;v=list(map(float,sys.argv[1:]));print('median b/a:',statistics.median(v),' mean:',round(statistics.mean(v),3))" "${RATIOS[@]}"
