#!/usr/bin/env bash
# scripts/bench.sh [bench.py args] — installs what the benchmark needs
# (haproxy, redis, iperf3, sockperf, nginx stream), builds the release binary
# and runs tests/bench/bench.py. Not part of the tests: it measures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
need=()
for p in haproxy iperf3 sockperf nginx-light libnginx-mod-stream; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts these services on install; the benchmark runs its own.
for s in haproxy nginx; do systemctl stop "$s" 2>/dev/null || true; done
bash scripts/build.sh release
exec python3 tests/bench/bench.py "$@"
