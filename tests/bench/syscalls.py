#!/usr/bin/env python3
"""tests/bench/syscalls.py — syscalls per proxied connection, sluice against
HAProxy, counted with `strace -c -f` over N one-request connections
(redis-benchmark -k 0). Counts, not timings: the census holds on a noisy
machine. Never a pass/fail test.

  python3 tests/bench/syscalls.py                  # 10000 connections, 1 poller / nbthread 1
  python3 tests/bench/syscalls.py -n 2000 --reuseport
  SLUICE_BIN=other/build/sluice python3 tests/bench/syscalls.py

Prints, per proxy, each syscall's calls per connection (and errors), sorted.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402  (reuses its peers, ports and backends)


def census(peer, n):
    out = os.path.join(peer.tmp, "strace.txt")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-qq", "-o", out, "-p", str(peer.proc.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # strace attaches to every thread
    bench.redis_bench(peer.ports["redis"], ["-t", "ping_inline", "-c", "20", "-k", "0"], n,
                      timeout=600)
    time.sleep(0.5)
    tracer.terminate()
    tracer.wait(30)
    calls = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                # % time, seconds, usecs/call, calls, [errors,] syscall
                name = parts[-1]
                ncalls = int(parts[3])
                errors = int(parts[4]) if len(parts) == 6 else 0
                calls[name] = (ncalls / n, errors / n)
    return calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10000, help="connections")
    ap.add_argument("--reuseport", action="store_true", help="sluice with accept reuseport too")
    ap.add_argument("--shared", action="store_true", help="sluice with accept shared too")
    ap.add_argument("--io-uring", action="store_true", help="sluice with io io_uring too")
    args = ap.parse_args()
    for tool in ("strace", "redis-server", "redis-benchmark", "haproxy"):
        if not bench.shutil.which(tool):
            sys.exit(f"{tool} is missing")
    tmp = tempfile.mkdtemp(prefix="sluice-syscalls-")
    be = bench.Backends(tmp)
    peers = [bench.Sluice, bench.HAProxy] + ([bench.SluiceReuseport] if args.reuseport else []) + \
        ([bench.SluiceShared] if args.shared else []) + \
        ([bench.SluiceIoUring] if args.io_uring else [])
    results = {}
    try:
        for cls in peers:
            peer = cls(be, 1, tmp)
            peer.start()
            try:
                results[peer.name] = census(peer, args.n)
            finally:
                peer.stop()
    finally:
        be.stop()
    names = sorted({k for r in results.values() for k in r},
                   key=lambda k: -max(r.get(k, (0, 0))[0] for r in results.values()))
    cols = list(results)
    print(f"syscalls per connection over {args.n} connections (errors in brackets)")
    print("%-18s" % "syscall" + "".join("%20s" % c for c in cols))
    for k in names:
        row = "%-18s" % k
        for c in cols:
            v, e = results[c].get(k, (0, 0))
            row += "%20s" % (f"{v:.2f}" + (f" [{e:.2f}]" if e else ""))
        print(row)
    print("%-18s" % "total" + "".join(
        "%20.2f" % sum(v for v, _ in results[c].values()) for c in cols))


if __name__ == "__main__":
    main()
