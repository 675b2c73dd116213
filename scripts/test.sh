#!/usr/bin/env bash
# scripts/test.sh — README command 2: install what is missing, then build and
# run every test, stopping at the first failing step:
#   format check (clang-format) and static analysis (cppcheck, zero findings);
#   the include graph (no cycle, layers point down: scripts/check-includes.sh);
#   unit + integration tests in the release build, then again under ASan+UBSan;
#   soak (ASan build) and a valgrind scenario (release build);
#   every libFuzzer target for SLUICE_FUZZ_SECONDS (default 60) each;
#   the container image built and run with podman (skipped without podman,
#   required under CI=true).
# Long profiles: SLUICE_SOAK=long, SLUICE_FUZZ_SECONDS=3600 or FUZZ_RUNS=10000000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

echo "== format check (clang-format)"
# Every C source of the tree, found on disk: the check needs no git and works
# the same in a clone, an unpacked archive or a container build context.
find reactor proxy config admin src tests -type f -name '*.[ch]' -print0 |
  xargs -0 -r clang-format --dry-run -Werror

echo "== static analysis (cppcheck)"
cppcheck --quiet --enable=warning,style,performance,portability --std=c11 --inline-suppr \
  --error-exitcode=1 -I. reactor proxy config admin src

echo "== include graph"
bash scripts/check-includes.sh

echo "== release build + tests"
bash scripts/build.sh release
ctest --preset release -j 2

echo "== ASan+UBSan build + tests"
bash scripts/build.sh asan
ctest --preset asan -j 2

echo "== soak (ASan build, profile ${SLUICE_SOAK:-short}) and valgrind (release build)"
SLUICE_BIN=build-asan/sluice SLUICE_BIN_RELEASE=build/sluice python3 tests/soak/test_soak.py

echo "== fuzz (${SLUICE_FUZZ_SECONDS:-60} s per target)"
bash scripts/fuzz.sh "${SLUICE_FUZZ_SECONDS:-60}"

echo "== container image (podman; skipped without it unless CI=true)"
python3 tests/container/test_container.py

echo "all tests passed"
