#!/bin/bash
# 1,000,000 znodes of 100 bytes in one coordd: load time, a listing of
# 100,000 children, a snapshot stream, RSS, then kill -9 and the time until
# a restarted coordd serves a read. Usage: scripts/scale-1m.sh [ZNODES]
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
N=${1:-1000000}
DIR=$(mktemp -d)
ADDR=127.0.0.1:4380
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
bin/coordd --data-dir "$DIR" --listen $ADDR --http "" > "$DIR/coordd.log" 2>&1 &
PID=$!
for _ in $(seq 100); do bin/coordctl --endpoints $ADDR status >/dev/null 2>&1 && break; sleep 0.1; done
bin/coordbench scale --endpoints $ADDR --znodes "$N" --big $((N / 10)) --pid $PID
sleep 2
echo "RSS 2 s later: $(awk '/VmRSS/ {print int($2/1024) " MB"}' /proc/$PID/status)"
kill -9 $PID; wait $PID 2>/dev/null || true
T0=$(date +%s.%N)
bin/coordd --data-dir "$DIR" --listen $ADDR --http "" > "$DIR/coordd2.log" 2>&1 &
PID=$!
until bin/coordctl --endpoints $ADDR get /scale >/dev/null 2>&1; do sleep 0.05; done
T1=$(date +%s.%N)
echo "kill -9, restart to serving a read: $(echo "$T1 - $T0" | bc) s"
sleep 2
echo "RSS after restart: $(awk '/VmRSS/ {print int($2/1024) " MB"}' /proc/$PID/status)"
