#!/usr/bin/env bash
# scripts/demo.sh — README command 1: install what is missing, build, and run
# sluice with the shipped example config in front of two local redis-servers
# (ports 6379 and 6381). Ctrl-C stops sluice gracefully and the redis-servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
bash scripts/build.sh release

work=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for port in 6379 6381; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "redis already answers on 127.0.0.1:$port: using it"
    continue
  fi
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >"$work/redis-$port.log" 2>&1 &
  pids+=($!)
done
for port in 6379 6381; do
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

cat <<MSG

  sluice is starting with config/sluice.example.json:
    listener "redis" on 127.0.0.1:6380  ->  pool "redis": 127.0.0.1:6379, 127.0.0.1:6381

  try it, from another terminal:
    redis-cli -p 6380 ping
    redis-benchmark -p 6380 -t get,set -n 100000 -q
  admin API (stats, drain):   http://127.0.0.1:9090/api/v1/stats
  stop with Ctrl-C (graceful: open sessions get shutdown_grace_ms to finish).

MSG
./build/sluice -c config/sluice.example.json
