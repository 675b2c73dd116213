#!/usr/bin/env bash
# scripts/test.sh — README command 2: install what is missing, then build and
# run every test: the formatting check, unit suites and integration tests in
# the release build, the same again under ASan+UBSan, then the container image
# built and run with podman. Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

echo "== format check (clang-format)"
git ls-files -z '*.c' '*.h' 2>/dev/null | xargs -0 -r clang-format --dry-run -Werror

echo "== release build + tests"
bash scripts/build.sh release
ctest --preset release -j 2

echo "== ASan+UBSan build + tests"
bash scripts/build.sh asan
ctest --preset asan -j 2

echo "== container image (podman; skipped without it unless CI=true)"
python3 tests/container/test_container.py

echo "all tests passed"
