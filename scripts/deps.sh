#!/usr/bin/env bash
# scripts/deps.sh [demo] — installs, with apt, whatever of sluice's build,
# test and demo dependencies is missing on a Debian 12 machine (with "demo",
# only what the demo needs). Idempotent and quiet when nothing is missing.
# Used by demo.sh ("demo") and test.sh.
set -euo pipefail

# What the demo needs (build, run, redis): `deps.sh demo` installs only these.
demo_packages=(build-essential cmake pkg-config libjansson-dev libmicrohttpd-dev check
               redis-server redis-tools curl libc-ares-dev liburing-dev)
# ... and every test step besides.
test_packages=(python3 python3-prometheus-client python3-yaml python3-jsonschema clang-format
               clang-14 libfuzzer-14-dev libclang-rt-14-dev valgrind cppcheck
               chromium chromium-driver python3-selenium prometheus haproxy openssl python3-grpcio
               logrotate iproute2 dnsmasq-base)
packages=("${demo_packages[@]}")
[ "${1:-all}" = demo ] || packages+=("${test_packages[@]}")
# Installed with --no-install-recommends, as on a lean machine: every package a
# build or test step needs is named here, even one that a fuller install would
# pull in as a recommendation (libclang-rt-14-dev: clang's libFuzzer and
# sanitizer runtimes, only recommended by clang-14). chromium, chromium-driver
# and python3-selenium: the dashboard's test in a real headless browser.
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
