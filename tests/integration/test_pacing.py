"""Shutdown and forced closes that fit Kubernetes and long-lived RPC:
readiness first (/readyz 503 while the listeners still accept for
shutdown_delay_ms), paced shedding (forced closes at shed_rate_per_s, not all
in the same millisecond) and the session age limit (max_session_age_ms)."""

import os
import select
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import ProxyTest, admin_request, connect, listen_port, simple_config, wait_until


def admin(cfg, method, path, body=None):
    return admin_request(cfg, method, path, body)


def poller_sum(cfg, key):
    return sum(p.get(key, 0) for p in admin(cfg, "GET", "/api/v1/pollers")[1])


def open_sessions(cfg, n):
    socks = []
    for i in range(n):
        s = connect(listen_port(cfg))
        s.sendall(b"hi %d" % i)
        assert s.recv(64) == b"hi %d" % i
        socks.append(s)
    return socks


def ended(s):
    """'reset', 'eof' or None (still open), without blocking."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return None
    try:
        return "eof" if s.recv(64) == b"" else None
    except ConnectionResetError:
        return "reset"


class Closings:
    """Watches client sockets until each has ended; records how many had
    ended at each look, so the test can tell paced closes from a burst."""

    def __init__(self, socks):
        self.socks = list(socks)
        self.how = {}
        self.samples = []

    def watch(self, timeout):
        deadline = time.monotonic() + timeout
        while len(self.how) < len(self.socks) and time.monotonic() < deadline:
            for i, s in enumerate(self.socks):
                if i not in self.how:
                    e = ended(s)
                    if e:
                        self.how[i] = e
            self.samples.append(len(self.how))
            time.sleep(0.02)
        return self

    def partial_seen(self):
        return any(0 < n < len(self.socks) for n in self.samples)


class ReadinessFirst(ProxyTest):
    def test_readyz_turns_503_while_listeners_still_accept_for_the_delay(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_delay_ms"] = 3000
        sl = self.sluice(cfg)
        self.assertEqual(admin(cfg, "GET", "/readyz")[0], 200)
        sl.signal(signal.SIGTERM)
        wait_until(lambda: "shutdown_delay_ms" in sl.output(), what="the delay to begin")
        status, body = admin(cfg, "GET", "/readyz")
        self.assertEqual(status, 503)
        self.assertEqual(body.get("detail"), "shutting down")
        # Still accepting and relaying during the delay.
        s = connect(listen_port(cfg))
        s.sendall(b"late")
        self.assertEqual(s.recv(16), b"late")
        s.close()
        wait_until(lambda: "no longer accepting" in sl.output(), timeout=15,
                   what="the listeners to close")
        with self.assertRaises(OSError):
            connect(listen_port(cfg), timeout=2).recv(1)
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)

    def test_second_signal_during_the_delay_exits_at_once(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_delay_ms"] = 60000
        sl = self.sluice(cfg, check_clean_exit=False)  # exit 1: the second signal cut the wait
        s = open_sessions(cfg, 1)[0]
        sl.signal(signal.SIGTERM)
        wait_until(lambda: "shutdown_delay_ms" in sl.output(), what="the delay to begin")
        sl.signal(signal.SIGTERM)
        sl.proc.wait(15)  # far below the 60 s delay
        self.assertEqual(sl.proc.returncode, 1)
        s.settimeout(10)
        with self.assertRaises(ConnectionResetError):
            s.recv(1)
        s.close()


class PacedShedding(ProxyTest):
    def test_shutdown_grace_end_sheds_at_the_rate(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 200
        cfg["shed_rate_per_s"] = 20  # 2 sub-reactors: 10 per second each
        sl = self.sluice(cfg)
        socks = open_sessions(cfg, 40)
        sl.signal(signal.SIGTERM)
        c = Closings(socks).watch(timeout=30)
        self.assertEqual(len(c.how), 40, "every session was closed")
        self.assertEqual(set(c.how.values()), {"reset"})
        self.assertTrue(c.partial_seen(), "closes were spread out, not all at once")
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)
        self.assertIn("closing 40 sessions at 20 per second", sl.output())
        for s in socks:
            s.close()

    def test_rate_zero_closes_everything_at_once(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 200
        cfg["shed_rate_per_s"] = 0
        sl = self.sluice(cfg)
        socks = open_sessions(cfg, 20)
        sl.signal(signal.SIGTERM)
        c = Closings(socks).watch(timeout=15)
        self.assertEqual(len(c.how), 20)
        self.assertEqual(set(c.how.values()), {"reset"})
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)
        for s in socks:
            s.close()

    def test_drain_deadline_is_paced_and_counted(self):
        b0, b1 = self.backend(), self.backend()
        cfg = simple_config([b0.port, b1.port], balance="round_robin")
        cfg["shed_rate_per_s"] = 20
        self.sluice(cfg)
        socks = open_sessions(cfg, 60)
        on_b0 = admin(cfg, "GET", "/api/v1/pools/p/backends/b0")[1]["active_connections"]
        self.assertGreater(on_b0, 10)
        status, _ = admin(cfg, "POST", "/api/v1/pools/p/backends/b0/drain", {"deadline_ms": 100})
        self.assertEqual(status, 200)
        c = Closings(socks).watch(timeout=30)
        self.assertEqual(len(c.how), on_b0, "exactly b0's sessions were cut")
        self.assertTrue(c.partial_seen(), "closes were spread out, not all at once")
        wait_until(lambda: admin(cfg, "GET", "/api/v1/pools/p/backends/b0")[1]["drain_forced"]
                   == on_b0, what="drain_forced to count them")
        # b1's sessions were not touched.
        for i, s in enumerate(socks):
            if i not in c.how:
                s.sendall(b"still")
                self.assertEqual(s.recv(16), b"still")
        for s in socks:
            s.close()


class MaxSessionAge(ProxyTest):
    def test_old_sessions_are_closed_and_counted(self):
        b = self.backend()
        cfg = simple_config([b.port], max_session_age_ms=1000)
        self.sluice(cfg)
        socks = open_sessions(cfg, 10)
        c = Closings(socks).watch(timeout=20)
        # Nothing was buffered: each side gets an end, not a reset.
        self.assertEqual(len(c.how), 10)
        self.assertEqual(set(c.how.values()), {"eof"})
        wait_until(lambda: poller_sum(cfg, "max_age_closes") == 10, what="max_age_closes")
        # New sessions are served as before.
        s = open_sessions(cfg, 1)[0]
        s.close()
        for s in socks:
            s.close()
        self.assertIn("sluice_poller_max_age_closes_total",
                      admin_request(cfg, "GET", "/metrics")[1])

    def test_busy_sessions_are_closed_too(self):
        b = self.backend()
        cfg = simple_config([b.port], max_session_age_ms=800, idle_timeout_ms=60000)
        self.sluice(cfg)
        s = open_sessions(cfg, 1)[0]
        s.settimeout(10)
        deadline = time.monotonic() + 20
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                s.sendall(b"ping")
                closed = s.recv(16) == b""
            except (ConnectionResetError, BrokenPipeError):
                closed = True
            time.sleep(0.05)
        self.assertTrue(closed, "a session kept busy still ends at its max age")
        wait_until(lambda: poller_sum(cfg, "max_age_closes") == 1, what="max_age_closes")
        s.close()


if __name__ == "__main__":
    unittest.main()
