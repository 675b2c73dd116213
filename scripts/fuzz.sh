#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] — builds the libFuzzer targets (clang-14, ASan +
# UBSan; preset "fuzz") and runs each for SECONDS (default 60) from its seed
# corpus in tests/fuzz/corpus/. Fails on any crash, leak, timeout or OOM and
# keeps the reproducer. Prints executions per target.
#   bash scripts/fuzz.sh 60                    # CI's short profile
#   FUZZ_RUNS=10000000 bash scripts/fuzz.sh    # the long profile: 10M executions each
#   FUZZ_TARGETS="admin linkbuf" bash scripts/fuzz.sh 30   # some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
runs=${FUZZ_RUNS:-}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" >/dev/null
work=$(mktemp -d /tmp/sluice-fuzz.XXXXXX)
status=0
for t in ${FUZZ_TARGETS:-config admin linkbuf health_expect proxy_proto tls_hello}; do
  mkdir -p "$work/$t"
  opts=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/$t-")
  [ "$t" = linkbuf ] && opts+=(-max_len=512)
  [ "$t" = tls_hello ] && opts+=(-max_len=17408) # past TLS_HELLO_MAX: the oversized paths
  if [ -n "$runs" ]; then opts+=(-runs="$runs"); else opts+=(-max_total_time="$seconds"); fi
  if ! build-fuzz/fuzz/fuzz_"$t" "${opts[@]}" "$work/$t" "tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
    echo "fuzz_$t: FAILED (log and reproducer in $work)"; tail -40 "$work/$t.log"; status=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  echo "fuzz_$t: ok, ${execs:-?} executions"
done
[ $status -eq 0 ] && rm -rf "$work"
exit $status
