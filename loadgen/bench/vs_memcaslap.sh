#!/usr/bin/env bash
# loadgen vs memcaslap (libmemcached-tools) against the same memcached (-t 2), same
# threads and connections (2 x 32 in all), no pipelining, 1:9 set:get, 100-byte values,
# alternating A B A B. Prints each client's ops/s and its own CPU per request (user+sys of
# the client process, from getrusage), then the ratios loadgen/memcaslap.
#   cargo build --release -p loadgen && loadgen/bench/vs_memcaslap.sh
# LG_ARGS adds loadgen options (e.g. LG_ARGS="--conn-order block").
set -u
LG=${LG:-$(dirname "$0")/../../target/release/loadgen}
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; }
# cpu_of CMD...: run it, print its stdout, then "CPU <seconds>" (user+sys of the child).
cpu_of() { python3 -c '
import resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True, text=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(out.stdout + out.stderr)
print("CPU %.3f" % (r.ru_utime + r.ru_stime))' "$@"; }
port=$(free_port)
memcached -u "$(id -un)" -U 0 -l 127.0.0.1 -p "$port" -t 2 -m 256 >/dev/null 2>&1 &
mc=$!
trap 'kill $mc 2>/dev/null' EXIT
wait_port "$port"
tmp=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  out=$(cpu_of memcaslap -s "127.0.0.1:$port" -t "${DUR}s" -T 2 -c 32 -X 100)
  ops=$(echo "$out" | awk '/^Run time/ {for(i=1;i<=NF;i++) if ($i=="Ops:") print $(i+1)}')
  cpu=$(echo "$out" | awk '/^CPU/ {print $2}')
  echo "memcaslap round $r: ops=$ops ops/s=$(echo "$ops/$DUR" | bc) cpu_s=$cpu us_per_req=$(echo "scale=3; $cpu*1000000/$ops" | bc)"
  echo "$ops $cpu" >> "$tmp/a"
  out=$(cpu_of "$LG" --server "127.0.0.1:$port" --threads 2 --connections 16 --ratio 1:9 \
        --value-size 100 --key-space 100000 --duration "${DUR}s" --json-out "$tmp/lg.json" ${LG_ARGS:-})
  ops=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["totals"]; print(int(t.get("ops", t["ops_per_sec"]*'"$DUR"')))' "$tmp/lg.json")
  cpu=$(echo "$out" | awk '/^CPU/ {print $2}')
  echo "loadgen   round $r: ops=$ops ops/s=$(echo "$ops/$DUR" | bc) cpu_s=$cpu us_per_req=$(echo "scale=3; $cpu*1000000/$ops" | bc)"
  echo "$ops $cpu" >> "$tmp/b"
done
paste "$tmp/a" "$tmp/b" | awk '{ oa+=$1; ca+=$2; ob+=$3; cb+=$4 }
  END { printf "ratio loadgen/memcaslap: ops/s %.2fx, CPU per request %.2fx\n", ob/oa, (cb/ob)/(ca/oa) }'
rm -rf "$tmp"
