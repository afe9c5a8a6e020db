# Shared by the router benchmark scripts in this directory (source it; needs SECS and CONC
# set before `cpu_per_op` is called). Sets WORK (a temporary directory) and PIDS (killed,
# with WORK removed, on exit).
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$1),0.1)" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
median() { python3 -c "import statistics,sys;print(statistics.median(map(float,sys.argv[1:])))" "$@"; }

# Three `memcached -m 1024` backends (never full during a run: no evictions) -> SERVERS.
start_backends() {
  SERVERS=()
  local p
  for _ in 1 2 3; do
    p=$(free_port)
    memcached -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 1024 $( [ "$(id -u)" = 0 ] && echo "-u root" ) & PIDS+=($!)
    wait_port "$p"; SERVERS+=("127.0.0.1:$p")
  done
}

# The router config over SERVERS (KetamaMd5 = twemproxy's ketama + md5 placement).
router_config() { # file
  printf '{"pools": {"A": {"servers": ["%s", "%s", "%s"], "hash": "KetamaMd5"}}, "route": "PoolRoute|A"}\n' "${SERVERS[@]}" > "$1"
}

# Start a router on a free port; sets STARTED_PID and STARTED_ADDR.
start_router() { # bin config out
  "$1" --config-file "$2" -p 0 > "$3" 2>/dev/null & STARTED_PID=$!; PIDS+=($STARTED_PID)
  for _ in $(seq 200); do grep -q "listening on" "$3" 2>/dev/null && break; sleep 0.05; done
  STARTED_ADDR=$(head -1 "$3" | sed 's/listening on //')
}

# Microseconds of the process's CPU (utime+stime) per op of a memcaslap run through it:
# `memcaslap -T 1 -c $CONC -t ${SECS}s` (90% get / 10% set).
cpu_per_op() { # addr pid
  local t0 t1 ops
  t0=$(ticks "$2")
  ops=$(memcaslap -s "$1" -T 1 -c "$CONC" -t "${SECS}s" 2>/dev/null | awk '/^Run time/ {print $5}')
  t1=$(ticks "$2")
  python3 -c "print(round(($t1-$t0)*1e6/$(getconf CLK_TCK)/$ops, 3))"
}
