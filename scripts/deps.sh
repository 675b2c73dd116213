#!/usr/bin/env bash
# scripts/deps.sh — installs, with apt, whatever of sluice's build, test and
# demo dependencies is missing on a Debian 12 machine. Idempotent and quiet
# when nothing is missing. Used by demo.sh and test.sh.
set -euo pipefail

packages=(build-essential cmake pkg-config libjansson-dev libmicrohttpd-dev check
          python3 python3-prometheus-client redis-server redis-tools curl clang-format
          clang-14 libfuzzer-14-dev libclang-rt-14-dev valgrind cppcheck
          libc-ares-dev dnsmasq-base)
# Installed with --no-install-recommends, as on a lean machine: every package a
# build or test step needs is named here, even one that a fuller install would
# pull in as a recommendation (libclang-rt-14-dev: clang's libFuzzer and
# sanitizer runtimes, only recommended by clang-14).
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
