"""Per-source limits (README "Per-source limits") against the real binary:
clients bound to distinct 127.0.0.x addresses (the whole 127/8 is loopback);
one source over its max_connections is refused while the others are served,
in both accept modes; a refusal is a FIN, or a RST with "reset"; sessions
give their place back when they close; the rate limit holds within bounds
counted against the elapsed time the test measures itself (no timing
assertion); prefix grouping; the table stays bounded with thousands of
distinct sources; the admin's view of the most limited sources and the
metrics."""

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import ProxyTest, admin_request, free_port, listen_port, simple_config, wait_until

TAG = b"T"


def admin_get(config, path):
    return admin_request(config, "GET", path)


def listener_stats(config):
    status, body = admin_get(config, "/api/v1/listeners")
    assert status == 200, body
    return body[0]


def sources(config, top=None):
    status, body = admin_get(config, "/api/v1/listeners/l/sources" + (f"?top={top}" if top else ""))
    assert status == 200, body
    return body


def attempt(port, src, timeout=10.0):
    """A connection from src: ("served", sock) when the backend's tag comes
    through sluice, ("fin", None) or ("reset", None) when sluice closed it at
    once. Nothing is sent, so a FIN is never turned into a reset by our data."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
        got = s.recv(1)
    except ConnectionResetError:
        s.close()
        return "reset", None
    if got == TAG:
        return "served", s
    s.close()
    if got == b"":
        return "fin", None
    raise AssertionError(f"unexpected bytes {got!r} from sluice")


def config_with(backend_port, per_source, accept="main", **listener):
    cfg = simple_config([backend_port])
    cfg["accept"] = accept
    cfg["listeners"][0]["per_source"] = per_source
    cfg["listeners"][0].update(listener)
    return cfg


class SourceLimitTest(ProxyTest):
    def setUp(self):
        super().setUp()
        self.socks = []
        self.addCleanup(self._close_socks)

    def _close_socks(self):
        for s in self.socks:
            s.close()

    def served(self, port, src):
        outcome, s = attempt(port, src)
        self.assertEqual(outcome, "served", f"from {src}")
        self.socks.append(s)
        return s

    def test_one_source_over_its_limit_is_refused_others_served(self):
        for accept in ("main", "reuseport"):
            with self.subTest(accept=accept):
                b = self.async_backend("tag", tag=TAG)
                cfg = config_with(b.port, {"max_connections": 2}, accept=accept)
                self.sluice(cfg)
                port = listen_port(cfg)
                first = [self.served(port, "127.0.0.2") for _ in range(2)]
                self.assertEqual(attempt(port, "127.0.0.2")[0], "fin")  # no reset asked
                for _ in range(2):
                    self.served(port, "127.0.0.3")
                self.served(port, "127.0.0.4")
                st = listener_stats(cfg)
                self.assertEqual(st["refused_source_limit"], 1)
                self.assertEqual(st["refused"], 1)
                self.assertEqual(st["per_source"]["max_connections"], 2)
                top = sources(cfg)
                self.assertEqual(top["sources"][0], {"source": "127.0.0.2/32", "open": 2, "refused": 1})
                self.assertEqual({(s["source"], s["open"]) for s in top["sources"]},
                                 {("127.0.0.2/32", 2), ("127.0.0.3/32", 2), ("127.0.0.4/32", 1)})
                # A session that ends gives its place back (session_close, on
                # whichever sub-reactor it lived).
                first[0].close()
                self.socks.remove(first[0])
                wait_until(lambda: {s["source"]: s["open"] for s in sources(cfg)["sources"]}
                           ["127.0.0.2/32"] == 1, what="the closed session's place back")
                self.served(port, "127.0.0.2")
                self.assertEqual(attempt(port, "127.0.0.2")[0], "fin")
                self.assertEqual(listener_stats(cfg)["refused_source_limit"], 2)
                status, metrics = admin_get(cfg, "/metrics")
                self.assertEqual(status, 200)
                self.assertIn('sluice_listener_refused_source_limit_total{listener="l"} 2\n', metrics)
                self.assertIn('sluice_listener_sources_tracked{listener="l"} 3\n', metrics)
                self._close_socks()
                self.socks = []

    def test_reset_refuses_with_a_reset(self):
        b = self.async_backend("tag", tag=TAG)
        cfg = config_with(b.port, {"max_connections": 1, "reset": True})
        self.sluice(cfg)
        port = listen_port(cfg)
        self.served(port, "127.0.0.2")
        self.assertEqual(attempt(port, "127.0.0.2")[0], "reset")
        self.served(port, "127.0.0.3")
        self.assertEqual(listener_stats(cfg)["refused_source_limit"], 1)

    def test_rate_limit_holds_within_counted_bounds(self):
        rate, burst = 40, 8
        b = self.async_backend("tag", tag=TAG)
        cfg = config_with(b.port, {"rate_per_s": rate, "burst": burst})
        self.sluice(cfg)
        port = listen_port(cfg)
        served = refused = 0
        start = time.monotonic()
        # Attempts one after another, a few ms apart (far more often than the
        # rate allows), until the limit has refused some over at least 1.5 s
        # (bounded: 20 s, 3000 attempts).
        for _ in range(3000):
            outcome, s = attempt(port, "127.0.0.5")
            if outcome == "served":
                served += 1
                s.close()
            else:
                self.assertEqual(outcome, "fin")
                refused += 1
            elapsed = time.monotonic() - start
            if (elapsed >= 1.5 and refused >= 20) or elapsed >= 20:
                break
            time.sleep(0.002)
        # Every decision was taken between start and now: GCRA admits at most
        # burst + rate * elapsed in that span; the first burst pass at once.
        elapsed = time.monotonic() - start
        if os.environ.get("SLUICE_TEST_VERBOSE"):
            print(f"served {served}, refused {refused} in {elapsed:.2f}s", file=sys.stderr)
        self.assertGreaterEqual(refused, 20, f"served {served} in {elapsed:.2f}s")
        self.assertGreaterEqual(served, burst)
        self.assertLessEqual(served, burst + rate * elapsed + 1,
                             f"served {served}, refused {refused} in {elapsed:.2f}s")
        # Per source: another address still has its whole burst.
        for _ in range(burst):
            self.served(port, "127.0.0.6").close()
        st = listener_stats(cfg)
        self.assertEqual(st["refused_source_limit"], refused)
        top = sources(cfg, top=1)["sources"]
        self.assertEqual(top, [{"source": "127.0.0.5/32", "open": 0, "refused": refused}])

    def test_sources_in_one_prefix_share_a_limit(self):
        b = self.async_backend("tag", tag=TAG)
        cfg = config_with(b.port, {"max_connections": 1}, source_prefix_v4=24)
        self.sluice(cfg)
        port = listen_port(cfg)
        self.served(port, "127.0.0.2")
        self.assertEqual(attempt(port, "127.0.0.3")[0], "fin")  # same /24
        self.served(port, "127.0.1.2")  # another /24
        got = {s["source"]: (s["open"], s["refused"]) for s in sources(cfg)["sources"]}
        self.assertEqual(got, {"127.0.0.0/24": (1, 1), "127.0.1.0/24": (1, 0)})

    def test_table_stays_bounded_with_many_sources(self):
        capacity, nsources = 256, 2000
        b = self.async_backend("tag", tag=TAG)
        cfg = config_with(b.port, {"max_connections": 4, "max_sources": capacity})
        s = self.sluice(cfg)
        port = listen_port(cfg)

        def run(lo, hi):
            for i in range(lo, hi):
                src = f"127.1.{i // 250}.{i % 250 + 1}"
                outcome, c = attempt(port, src)
                self.assertEqual(outcome, "served", src)
                c.close()

        run(0, 200)
        rss_before = s.rss_kib()
        run(200, nsources)
        rss_after = s.rss_kib()
        ps = listener_stats(cfg)["per_source"]
        self.assertLessEqual(ps["sources_tracked"], capacity)
        # Every source beyond the table's size was forgotten (closed: idle)
        # or, if its window was busy, let through untracked.
        self.assertGreaterEqual(ps["sources_evicted"] + ps["sources_untracked"], nsources - capacity)
        self.assertLessEqual(ps["sources_untracked"], nsources // 10)
        self.assertEqual(ps["table_bytes"], capacity * 48)
        if os.environ.get("SLUICE_TEST_VERBOSE"):
            print(ps, rss_before, rss_after, file=sys.stderr)
        # Flat: 1800 more sources cost no memory that grows with them.
        self.assertLess(rss_after - rss_before, 4096, f"{rss_before} -> {rss_after} KiB")

    def test_without_per_source(self):
        b = self.async_backend("tag", tag=TAG)
        cfg = simple_config([b.port])
        self.sluice(cfg)
        st = listener_stats(cfg)
        self.assertIsNone(st["per_source"])
        self.assertEqual(st["refused_source_limit"], 0)
        status, body = admin_get(cfg, "/api/v1/listeners/l/sources")
        self.assertEqual(status, 404)
        status, body = admin_get(cfg, "/api/v1/listeners/nope/sources")
        self.assertEqual(status, 404)

    def test_top_is_checked(self):
        b = self.async_backend("tag", tag=TAG)
        cfg = config_with(b.port, {})
        self.sluice(cfg)
        for bad in ("0", "1001", "x", "-1"):
            status, body = admin_get(cfg, f"/api/v1/listeners/l/sources?top={bad}")
            self.assertEqual(status, 400, bad)
            self.assertIn("top", body["detail"])
        self.served(listen_port(cfg), "127.0.0.2")
        self.assertEqual(sources(cfg, top=5)["sources"], [{"source": "127.0.0.2/32", "open": 1, "refused": 0}])


INNER = "SLUICE_SOURCE_LIMIT_NETNS"  # set when this file runs inside its namespace


class Ipv6SourcesInANamespace(ProxyTest):
    """100k clients, each from its own IPv6 /64. Binding them needs addresses
    nobody routes by default, so the test runs itself again inside a network
    namespace of its own (root: `unshare -n`), where 2001:db8::/32 is a local
    route on lo and non-local binds are allowed."""

    SOURCES = 100000
    WARM_UP = 20000
    CAPACITY = 1024

    def test_table_stays_bounded_under_100k_ipv6_sources(self):
        if os.environ.get(INNER):
            self._inside()
            return
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
            self.skipTest("needs root, unshare and ip (iproute2) for a network namespace")
        env = dict(os.environ, **{INNER: "1"})
        r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                            "Ipv6SourcesInANamespace"], env=env, capture_output=True, text=True,
                           timeout=280)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stderr)

    def _inside(self):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-6", "route", "add", "local", "2001:db8::/32", "dev", "lo"], check=True)
        with open("/proc/sys/net/ipv6/ip_nonlocal_bind", "w") as f:
            f.write("1")  # this namespace's own setting
        # No backend listens: each session dials a closed port, gives up
        # (retries 0) and resets its client; what counts is that it held a
        # place in the table and gave it back.
        cfg = simple_config([free_port()], retries=0)
        port = free_port()
        cfg["listeners"][0]["listen"] = f"[::1]:{port}"
        cfg["listeners"][0]["per_source"] = {"max_connections": 4, "max_sources": self.CAPACITY}
        # Under ASan freed memory waits in a quarantine (256 MiB by default)
        # before it is reused: cap it, and warm up past it, so what is left
        # to see is the process's own growth. Ignored by a release build.
        s = self.sluice(cfg, extra_env={
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66:quarantine_size_mb=4"})

        def run(lo, hi):
            for i in range(lo, hi):
                c = socket.socket(socket.AF_INET6)
                c.settimeout(10)
                c.bind((f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::1", 0))
                try:
                    c.connect(("::1", port))
                    self.assertEqual(c.recv(1), b"")
                except ConnectionResetError:
                    pass
                finally:
                    c.close()

        run(0, self.WARM_UP)
        rss_before = s.rss_kib()
        run(self.WARM_UP, self.SOURCES)
        rss_after = s.rss_kib()
        st = listener_stats(cfg)
        ps = st["per_source"]
        print(ps, rss_before, rss_after, file=sys.stderr)
        self.assertEqual(st["accepted"], self.SOURCES)
        self.assertLessEqual(ps["sources_tracked"], self.CAPACITY)
        self.assertGreaterEqual(ps["sources_evicted"] + ps["sources_untracked"],
                                self.SOURCES - self.CAPACITY)
        self.assertLessEqual(ps["sources_untracked"], self.SOURCES // 10)
        self.assertEqual(ps["table_bytes"], self.CAPACITY * 48)
        self.assertLess(rss_after - rss_before, 4096, f"{rss_before} -> {rss_after} KiB")


if __name__ == "__main__":
    unittest.main()
