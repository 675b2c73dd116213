"""Latency histograms against the real binary: every session that reaches a
backend is counted once in its connect, first-byte and duration histograms
(and in its poller's adopt-wait), a backend that never connects has none, a
backend added at run time gets its own, the JSON summaries are ordered
(p50 <= p90 <= p99 <= max) and the first-byte one measures the backend's
delay; /metrics exposes them as Prometheus histograms (_bucket with
cumulative, increasing `le` ending in +Inf, _sum, _count) that Debian's
prometheus_client parser reads."""

import json
import math
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, free_port, listen_port, round_trip,
                     simple_config, wait_until)

SUMMARY_KEYS = {"count", "p50", "p90", "p99", "max"}
BACKEND_HISTOS = ("connect_ms", "first_byte_ms", "duration_ms")
POLLER_HISTOS = ("loop_ms", "adopt_wait_ms")
DELAY_S = 0.3  # the slow backend's pause before its first byte
# Debian's python3-prometheus-client lives with Debian's python3, which may
# not be the one running the tests.
DEBIAN_PYTHON = "/usr/bin/python3"
PARSER = """
import json, sys
from prometheus_client.parser import text_string_to_metric_families
print(json.dumps({f.name: {"type": f.type, "samples": [[s.name, s.labels, s.value]
                                                     for s in f.samples]}
                  for f in text_string_to_metric_families(sys.stdin.read())}))
"""


def parse_metrics(test, text):
    """The exposition as prometheus_client's own parser reads it: {family:
    {"type", "samples": [[name, labels, value]]}}."""
    p = subprocess.run([DEBIAN_PYTHON, "-c", PARSER], input=text, capture_output=True, text=True,
                       timeout=60)
    if "No module named 'prometheus_client'" in p.stderr:
        test.skipTest("python3-prometheus-client not installed")
    test.assertEqual(p.returncode, 0, p.stderr)
    return json.loads(p.stdout)


def api(cfg, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request("http://" + cfg["admin"]["listen"] + path, data=data,
                                 method=method)
    if data:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode()
        return json.loads(text) if "json" in r.headers.get("Content-Type", "") and text else text



def slow_banner(conn, backend):
    time.sleep(DELAY_S)
    conn.sendall(b"late hello\n")
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass


class Latency(ProxyTest):
    def backends(self, cfg):
        return {b["name"]: b for b in api(cfg, "GET", "/api/v1/pools/p")["backends"]}

    def idle(self, cfg):
        return api(cfg, "GET", "/api/v1/pools/p")["active_connections"] == 0

    def check_summary(self, s, what):
        self.assertEqual(set(s), SUMMARY_KEYS, what)
        self.assertIsInstance(s["count"], int, what)
        for k in ("p50", "p90", "p99", "max"):
            self.assertIsInstance(s[k], float, f"{what} {k}")
        self.assertTrue(0 <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"], f"{what}: {s}")
        if s["count"]:
            self.assertGreater(s["max"], 0, what)

    def test_every_session_is_counted_once_per_histogram(self):
        echo = self.backend()
        dead = free_port()  # nothing listens: every connect there is refused
        cfg = simple_config([echo.port, dead], retries=3)
        self.sluice(cfg)
        port = listen_port(cfg)
        n = 20
        for i in range(n):
            self.assertEqual(round_trip(port, b"m%d" % i), b"m%d" % i)
        wait_until(lambda: self.idle(cfg), what="sessions to close")
        bs = wait_until(lambda: (lambda b: b if b["b0"]["latency"]["duration_ms"]["count"] == n
                                 else None)(self.backends(cfg)), what="durations")
        lat = bs["b0"]["latency"]
        self.assertEqual(set(lat), set(BACKEND_HISTOS))
        for h in BACKEND_HISTOS:
            self.check_summary(lat[h], "b0 " + h)
            self.assertEqual(lat[h]["count"], n, h)
        # Each session's interval contains its connect and its wait for the
        # first byte: the exact maxima keep that order.
        self.assertGreaterEqual(lat["duration_ms"]["max"], lat["first_byte_ms"]["max"])
        self.assertGreaterEqual(lat["duration_ms"]["max"], lat["connect_ms"]["max"])
        # The refusing backend was dialed but never connected: no sample.
        self.assertGreater(bs["b1"]["connect_failures"], 0)
        for h in BACKEND_HISTOS:
            self.check_summary(bs["b1"]["latency"][h], "b1 " + h)
            self.assertEqual(bs["b1"]["latency"][h]["count"], 0, h)
        pollers = api(cfg, "GET", "/api/v1/pollers")
        for p in pollers:
            self.assertEqual(set(p["latency"]), set(POLLER_HISTOS))
            for h in POLLER_HISTOS:
                self.check_summary(p["latency"][h], f"poller {p['id']} {h}")
            self.assertGreater(p["latency"]["loop_ms"]["count"], 0)
        self.assertEqual(sum(p["latency"]["adopt_wait_ms"]["count"] for p in pollers), n)
        self.assertEqual(pollers[0]["latency"]["adopt_wait_ms"]["count"], 0)  # main adopts none

    def test_first_byte_is_the_backends_delay(self):
        slow = self.backend(slow_banner)
        cfg = simple_config([slow.port])
        self.sluice(cfg)
        for _ in range(3):
            self.assertEqual(round_trip(listen_port(cfg), b""), b"late hello\n")
        wait_until(lambda: self.idle(cfg), what="sessions to close")
        lat = self.backends(cfg)["b0"]["latency"]
        self.assertEqual(lat["first_byte_ms"]["count"], 3)
        # The backend waited DELAY_S after accepting before it wrote; a
        # lower bound only (a loaded machine makes times longer, not shorter),
        # with a wide margin for a poller that saw the connect late.
        self.assertGreaterEqual(lat["first_byte_ms"]["max"], DELAY_S * 1000 / 3)
        self.assertGreaterEqual(lat["duration_ms"]["max"], DELAY_S * 1000 / 3)

    def test_a_backend_added_at_run_time_gets_its_own(self):
        first, extra = self.backend(), self.backend()
        cfg = simple_config([first.port])
        self.sluice(cfg)
        port = listen_port(cfg)
        self.assertEqual(round_trip(port), b"ping")
        b = api(cfg, "POST", "/api/v1/pools/p/backends",
                {"name": "new", "address": f"127.0.0.1:{extra.port}"})
        self.assertEqual(b["latency"]["connect_ms"]["count"], 0)
        api(cfg, "POST", "/api/v1/pools/p/backends/b0/disable")
        m = 8
        for i in range(m):
            self.assertEqual(round_trip(port, b"n%d" % i), b"n%d" % i)
        wait_until(lambda: self.idle(cfg), what="sessions to close")
        bs = wait_until(lambda: (lambda b: b if b["new"]["latency"]["duration_ms"]["count"] == m
                                 else None)(self.backends(cfg)), what="durations")
        for h in BACKEND_HISTOS:
            self.assertEqual(bs["new"]["latency"][h]["count"], m, h)
            self.assertEqual(bs["b0"]["latency"][h]["count"], 1, h)
        # Deleting it frees its blocks (the ASan build checks for leaks).
        api(cfg, "POST", "/api/v1/pools/p/backends/new/disable")
        api(cfg, "DELETE", "/api/v1/pools/p/backends/new")
        self.assertNotIn("new", self.backends(cfg))

    @unittest.skipUnless(os.path.exists(DEBIAN_PYTHON), "Debian python3 missing")
    def test_metrics_are_prometheus_histograms(self):
        echo = self.backend()
        cfg = simple_config([echo.port])
        self.sluice(cfg)
        n = 5
        for _ in range(n):
            round_trip(listen_port(cfg))
        wait_until(lambda: self.idle(cfg), what="sessions to close")
        wait_until(lambda: self.backends(cfg)["b0"]["latency"]["duration_ms"]["count"] == n,
                   what="durations")
        fams = parse_metrics(self, api(cfg, "GET", "/metrics"))
        want = {"sluice_backend_connect_seconds": {"pool", "backend"},
                "sluice_backend_first_byte_seconds": {"pool", "backend"},
                "sluice_backend_session_seconds": {"pool", "backend"},
                "sluice_poller_loop_seconds": {"poller", "role"},
                "sluice_poller_adopt_wait_seconds": {"poller", "role"}}
        counts = {}
        for name, labels in want.items():
            self.assertIn(name, fams)
            self.assertEqual(fams[name]["type"], "histogram", name)
            series = {}
            for sname, slabels, value in fams[name]["samples"]:
                key = tuple(sorted((k, v) for k, v in slabels.items() if k != "le"))
                self.assertEqual({k for k, _ in key}, labels, name)
                series.setdefault(key, {"buckets": []})
                if sname == name + "_bucket":
                    series[key]["buckets"].append((float(slabels["le"]), value))
                else:
                    series[key][sname[len(name) + 1:]] = value
            self.assertTrue(series, name)
            for key, s in series.items():
                les = [le for le, _ in s["buckets"]]
                self.assertEqual(les[-1], math.inf, name)
                self.assertEqual(les, sorted(set(les)), f"{name}: le must increase")
                self.assertLess(les[0], 2e-6, name)  # from about a microsecond
                self.assertGreater(les[-2], 60, name)  # past a minute
                vals = [v for _, v in s["buckets"]]
                self.assertEqual(vals, sorted(vals), f"{name}: buckets must be cumulative")
                self.assertEqual(vals[-1], s["count"], name)
                self.assertGreaterEqual(s["sum"], 0, name)
                counts[(name, key)] = s["count"]
        b0 = (("backend", "b0"), ("pool", "p"))
        for name in ("connect", "first_byte", "session"):
            self.assertEqual(counts[(f"sluice_backend_{name}_seconds", b0)], n, name)
        adopted = sum(v for (name, _), v in counts.items()
                      if name == "sluice_poller_adopt_wait_seconds")
        self.assertEqual(adopted, n)


if __name__ == "__main__":
    unittest.main()
