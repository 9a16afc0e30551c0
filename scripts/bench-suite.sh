#!/bin/bash
# The anchor workloads (../shared/perf-anchors.md) against three coordd
# processes on 127.0.0.1:4280-4282, data under a temporary directory with
# real fsync. Usage: scripts/bench-suite.sh [DURATION] [extra coordd flags]
# Prints one coordbench table row per workload, with the CPU time (user +
# system) the client process and the three servers spent per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
DUR=${1:-10s}; shift || true
DIR=$(mktemp -d)
IC=n1=127.0.0.1:4280,n2=127.0.0.1:4281,n3=127.0.0.1:4282
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for i in 1 2 3; do
  bin/coordd --name n$i --data-dir "$DIR/n$i" --listen 127.0.0.1:$((4279+i)) --http "" \
    --initial-cluster $IC "$@" > "$DIR/n$i.log" 2>&1 &
  PIDS+=($!)
done
EP=127.0.0.1:4280,127.0.0.1:4281,127.0.0.1:4282
for _ in $(seq 100); do bin/coordctl --endpoints $EP status >/dev/null 2>&1 && break; sleep 0.1; done
PIDLIST=$(IFS=,; echo "${PIDS[*]}")
run() { bin/coordbench --endpoints $EP --server-pids "$PIDLIST" --duration "$DUR" --warmup 1s "$@" 2>/dev/null | tail -n +2; }
echo "  workload  clients  ops  errors  ops/s  p50 ms  p99 ms  p99.9 ms  cpu us/op client  cpu us/op servers"
run --workload create --clients 16
run --workload set --clients 1
run --workload set --clients 16
run --workload set --clients 128
run --workload get --clients 16
run --workload get --clients 128
run --workload get-local --clients 16
run --workload get-local --clients 128
run --workload mixed --clients 64
run --workload lock --clients 8
run --workload locks --clients 64
run --workload session --clients 16
run --workload watch --clients 1
