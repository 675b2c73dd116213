#!/usr/bin/env bash
# scripts/build.sh PRESET — configures and builds one CMake preset
# (release → build/, debug → build-debug/, asan → build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
