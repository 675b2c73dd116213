"""Upstream dial: retry on refusal with the client's early bytes replayed,
every backend down, connect timeout on a backend that never answers, idle
timeout, and the per-listener connection limit."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, free_port, listen_port, payload, recv_all, sha,
                     simple_config, wait_until)


def blackhole():
    """A loopback port whose accept queue is full: further SYNs are dropped,
    so a connect to it neither succeeds nor fails until it times out."""
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(0)
    port = l.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.1)
    return l, fillers, port


def ended(sock, timeout):
    """Seconds until the peer ended the connection (EOF or reset)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


class Dial(ProxyTest):
    def test_refused_backend_is_retried_with_early_bytes_intact(self):
        live = self.backend()
        dead = free_port()  # nothing listens: connect is refused
        cfg = simple_config([dead, live.port], retries=2)
        self.sluice(cfg)
        for i in range(20):  # round robin: half of these try the dead one first
            s = connect(listen_port(cfg))
            data = payload(i, 200000)
            s.sendall(data)  # sent before any backend is connected
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(sha(recv_all(s)), sha(data), f"session {i}")
            s.close()
        self.assertEqual(live.accepted, 20)

    def test_all_backends_down_closes_the_client(self):
        cfg = simple_config([free_port(), free_port()], retries=3)
        sl = self.sluice(cfg)
        for _ in range(5):
            try:
                s = connect(listen_port(cfg))
                s.sendall(b"anyone?")
            except (ConnectionResetError, BrokenPipeError):
                continue  # reset even before connect() or send() returned
            self.assertLess(ended(s, 10), 10)
            s.close()
        # The proxy itself is fine: it still accepts and closes.
        self.assertIsNone(sl.proc.poll())

    def test_connect_timeout_fires_and_fails_over(self):
        l, fillers, hole = blackhole()
        try:
            live = self.backend()
            cfg = simple_config([hole], connect_timeout_ms=300, retries=0)
            self.sluice(cfg)
            s = connect(listen_port(cfg))
            s.sendall(b"x")
            took = ended(s, 15)
            s.close()
            self.assertGreaterEqual(took, 0.25)  # not before the timeout
            self.assertLess(took, 15)            # and it does fire

            cfg2 = simple_config([hole, live.port], connect_timeout_ms=300, retries=1)
            self.sluice(cfg2)
            for i in range(4):
                s = connect(listen_port(cfg2))
                s.sendall(b"hello %d" % i)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_all(s), b"hello %d" % i)
                s.close()
            self.assertEqual(live.accepted, 4)
        finally:
            for f in fillers:
                f.close()
            l.close()

    def test_idle_timeout_closes_quiet_sessions_only(self):
        b = self.backend()
        cfg = simple_config([b.port], idle_timeout_ms=400)
        self.sluice(cfg)
        quiet = connect(listen_port(cfg))
        quiet.sendall(b"hi")
        self.assertEqual(quiet.recv(10), b"hi")
        busy = connect(listen_port(cfg))
        for i in range(12):  # ~1.2 s of traffic every 100 ms: never idle 400 ms
            busy.sendall(b"tick")
            self.assertEqual(busy.recv(10), b"tick")
            time.sleep(0.1)
        self.assertLess(ended(quiet, 15), 15)  # the quiet one was closed (by now, or soon)
        busy.sendall(b"still")  # the busy one was not
        self.assertEqual(busy.recv(10), b"still")
        busy.close()
        quiet.close()

    def test_idle_timeout_lower_bound(self):
        b = self.backend()
        cfg = simple_config([b.port], idle_timeout_ms=500)
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"hi")
        self.assertEqual(s.recv(10), b"hi")
        took = ended(s, 15)
        s.close()
        self.assertGreaterEqual(took, 0.45)
        self.assertLess(took, 15)

    def test_max_connections_refuses_beyond_the_limit(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["listeners"][0]["max_connections"] = 5
        self.sluice(cfg)
        held = []
        for i in range(5):
            s = connect(listen_port(cfg))
            s.sendall(b"k")
            self.assertEqual(s.recv(1), b"k")
            held.append(s)
        extra = connect(listen_port(cfg))
        self.assertLess(ended(extra, 10), 10)  # closed at once, never proxied
        extra.close()
        self.assertEqual(b.accepted, 5)
        held.pop().close()
        # A slot frees up once the session has ended on its sub-reactor.
        def served():
            s = connect(listen_port(cfg))
            try:
                s.settimeout(2)
                s.sendall(b"z")
                return s.recv(1) == b"z"
            except OSError:
                return False
            finally:
                s.close()
        wait_until(served, timeout=10, step=0.05, what="a freed slot")
        for s in held:
            s.close()

    def test_max_connections_holds_with_reuseport_accepts(self):
        """Both sub-reactors accept for the listener at once: a burst of
        connections still gets exactly max_connections sessions."""
        b = self.backend()
        cfg = simple_config([b.port], pollers=2)
        cfg["accept"] = "reuseport"
        cfg["listeners"][0]["max_connections"] = 5
        self.sluice(cfg)
        socks = []
        for _ in range(60):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", listen_port(cfg)))
            socks.append(s)
        served = 0
        for s in socks:
            s.settimeout(5)
            try:
                s.sendall(b"q")
                served += s.recv(1) == b"q"
            except OSError:
                pass  # refused: closed at accept
        self.assertEqual(served, 5)
        self.assertEqual(b.accepted, 5)
        for s in socks:
            s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
