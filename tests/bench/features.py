#!/usr/bin/env python3
"""tests/bench/features.py — what sluice's optional features cost, measured
side by side in one run (peers interleaved, medians kept): plain sluice
against the same sluice with the connection log on, with per-source limits
that never refuse, with a DNS name re-resolved by the resolver (when the
binary has one), and with a routed listener (a TLS ClientHello peeked per
connection). Never a pass/fail test.

  python3 tests/bench/features.py                 # 3 rounds, 1 poller
  python3 tests/bench/features.py --rounds 5 -n 100000

Reported per variant: redis GET at 50 connections (req/s) and sluice's CPU
per request; connection churn, one request per connection (redis-benchmark
-k 0; conn/s) and CPU per connection; for the routed listener, churn with a
canned ClientHello as the first bytes (the plain listener gets the same bytes,
so only the peek differs) and CPU per connection, which holds even when the
Python client is the bottleneck.
"""

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402

# A TLS 1.2/1.3 ClientHello for "bench.example" with ALPN h2 (hand-built:
# lengths as the record, handshake and extension fields say).
def client_hello(name=b"bench.example"):
    sni = b"\x00" + len(name).to_bytes(2, "big") + name
    sni_ext = b"\x00\x00" + (len(sni) + 2).to_bytes(2, "big") + len(sni).to_bytes(2, "big") + sni
    alpn_list = b"\x02h2"
    alpn_ext = b"\x00\x10" + (len(alpn_list) + 2).to_bytes(2, "big") + \
        len(alpn_list).to_bytes(2, "big") + alpn_list
    exts = sni_ext + alpn_ext
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + \
        len(exts).to_bytes(2, "big") + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


HELLO = client_hello()


class Variant(bench.Sluice):
    """bench.Sluice with config changes: extra keys on the listeners, pools,
    the top level."""
    listener_extra = {}
    top_extra = {}
    backend_address = None

    def command(self):
        cmd = super().command()
        path = cmd[-1]
        with open(path) as f:
            cfg = json.load(f)
        for l in cfg["listeners"]:
            if l["name"] == "redis":
                l.update(self.listener_extra)
                if "routes" in self.listener_extra:
                    l.pop("pool")
        if self.backend_address:
            for p in cfg["pools"]:
                if p["name"] == "redis":
                    p["backends"][0]["address"] = self.backend_address % self.be.redis
                    p["backends"][0].update(self.backend_extra)
        cfg.update(self.top_extra)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return cmd


class Plain(Variant):
    name = "plain"


class PlainAgain(Variant):
    """The same plain sluice once more: the control, whose ratio to plain is
    the run's noise floor."""
    name = "plain_again"


class Logged(Variant):
    name = "log_on"

    def command(self):
        self.top_extra = {"log": {"connections": True,
                                  "path": os.path.join(self.tmp, "connections.log")}}
        return super().command()


class PerSource(Variant):
    name = "per_source"
    listener_extra = {"per_source": {"max_connections": 100000, "rate_per_s": 1000000,
                                     "burst": 1000000}}


class Resolved(Variant):
    """The backend as a host name that the resolver re-resolves every second."""
    name = "dns_name"
    backend_address = "localhost:%d"
    backend_extra = {}
    top_extra = {"resolver": {"resolve_min_ms": 1000, "resolve_max_ms": 1000}}


class Routed(Variant):
    name = "routed"
    listener_extra = {"routes": [{"sni": "bench.example", "pool": "redis"},
                                 {"default": True, "pool": "redis"}]}


def hello_worker(port, n, out):
    done = 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(HELLO)
            s.shutdown(socket.SHUT_WR)  # redis closes at the EOF; sluice forwards it
            s.recv(64)
            s.close()
            done += 1
        except OSError:
            pass
    out.put(done)


def hello_churn(port, n, procs=4):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=hello_worker, args=(port, n // procs, q))
          for _ in range(procs)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    done = sum(q.get(timeout=300) for _ in ps)
    for p in ps:
        p.join(30)
    return done, time.monotonic() - t0


def run(peer, n):
    r = {}
    port = peer.ports["redis"]
    routed = isinstance(peer, Routed)  # redis-benchmark sends no ClientHello
    c0 = bench.cpu_s(peer.pids)
    r["get_50"] = None if routed else bench.redis_bench(port, ["-t", "get", "-c", "50"], n)
    r["cpu_us_per_req"] = None if routed else (bench.cpu_s(peer.pids) - c0) / n * 1e6
    c0 = bench.cpu_s(peer.pids)
    churn_n = n // 4
    if routed:
        r["churn_k0"] = None
    else:
        r["churn_k0"] = bench.redis_bench(port, ["-t", "ping_inline", "-c", "50", "-k", "0"],
                                          churn_n)
    r["cpu_us_per_conn"] = (bench.cpu_s(peer.pids) - c0) / churn_n * 1e6 \
        if r["churn_k0"] is not None else None
    c0 = bench.cpu_s(peer.pids)
    done, secs = hello_churn(port, churn_n // 2)
    r["hello_churn"] = done / secs if secs else None
    r["cpu_us_per_hello_conn"] = (bench.cpu_s(peer.pids) - c0) / done * 1e6 if done else None
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=60000)
    ap.add_argument("--pollers", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sluice-features-")
    be = bench.Backends(tmp)
    kinds = [Plain, Logged, PerSource, Routed, Resolved, PlainAgain]
    res = {k.name: [] for k in kinds}
    try:
        for rnd in range(args.rounds):
            order = kinds if rnd % 2 == 0 else list(reversed(kinds))
            for cls in order:
                peer = cls(be, args.pollers, tmp)
                try:
                    peer.start()
                except Exception as e:  # e.g. a binary without a resolver
                    print(f"{cls.name}: not run ({e})", file=sys.stderr)
                    continue
                try:
                    res[cls.name].append(run(peer, args.n))
                finally:
                    peer.stop()
                print(f"round {rnd + 1} {cls.name}: {res[cls.name][-1]}", file=sys.stderr)
    finally:
        be.stop()
    keys = ["get_50", "cpu_us_per_req", "churn_k0", "cpu_us_per_conn", "hello_churn",
            "cpu_us_per_hello_conn"]
    med = {}
    for name, runs in res.items():
        if runs:
            med[name] = {k: statistics.median([r[k] for r in runs if r[k] is not None])
                         if any(r[k] is not None for r in runs) else None for k in keys}
    print(f"features, {args.pollers} poller(s), medians of {args.rounds} rounds")
    print("%-12s" % "variant" + "".join("%22s" % k for k in keys))
    base = med.get("plain", {})
    for name, m in med.items():
        row = "%-12s" % name
        for k in keys:
            v, b = m.get(k), base.get(k)
            row += "%22s" % ("-" if v is None else
                              f"{v:,.1f}" + (f" ({v / b:.3f}x)" if b and name != "plain" else ""))
        print(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"medians": med, "runs": res}, f, indent=1)


if __name__ == "__main__":
    main()
