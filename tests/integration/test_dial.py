"""Upstream dial: retry on refusal with the client's early bytes replayed,
every backend down, connect timeout on a backend that never answers, idle
timeout, the per-listener connection limit, a backend whose banner and
close come with the connect's completion, and a backend named localhost:PORT
that listens on one of localhost's addresses only."""

import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, free_port, listen_port, payload, raise_nofile, recv_all,
                     sha, simple_config, wait_until)
from test_admin import Api

HERE = os.path.dirname(os.path.abspath(__file__))


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


def firehose(conn, backend):
    """Sends zeros until the test stops: keeps a sub-reactor busy."""
    chunk = bytes(1 << 20)
    while not backend.stopping:
        conn.sendall(chunk)


def read_to_end(socks, timeout):
    """Reads every socket until EOF, reset or the deadline; closes a socket
    as soon as it ended, as a client would. Returns {sock: (bytes, how)}
    with how "eof", "reset" or None (still open at the deadline)."""
    sel = selectors.DefaultSelector()
    got = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, bytearray())
        got[s] = (b"", None)
    deadline = time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            s, buf = key.fileobj, key.data
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data, how = None, "reset"
            else:
                how = "eof"
            if data:
                buf += data
                got[s] = (bytes(buf), None)
                continue
            sel.unregister(s)
            s.close()
            got[s] = (bytes(buf), how)
    sel.close()
    return got


class BannerAndClose(ProxyTest):
    """A backend that accepts, writes one line and closes (Redis at
    maxclients, SMTP 421) while the only sub-reactor is busy relaying bulk
    streams: the connect's completion, the line and the FIN then often come
    as one event. Every client must get the line and then EOF, with no idle
    timeout to end a session that missed it, and the backend's slots must
    all come back."""

    extra = {}  # pool options of the banner pool (BannerAndCloseSplice: zero_copy)
    BANNER = "-ERR max number of clients reached\r\n"
    ROUNDS, CLIENTS, STREAMS = 4, 150, 4
    EOF_WAIT = 30  # seconds for a round's clients to see EOF: generous, never reached when fixed

    def setUp(self):
        super().setUp()
        raise_nofile()
        self.proc = None
        self.streams, self.readers = [], []

    def tearDown(self):
        for s in self.streams:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.readers:
            t.join(10)
        for s in self.streams:
            s.close()
        if self.proc:
            self.proc.kill()
            self.proc.wait(10)
            self.proc.stdout.close()
        super().tearDown()

    def start_bulk_streams(self, port):
        def drain(s):
            buf = bytearray(1 << 20)
            try:
                while s.recv_into(buf):
                    pass
            except OSError:
                pass
        for _ in range(self.STREAMS):
            s = connect(port, timeout=60)
            self.streams.append(s)
            t = threading.Thread(target=drain, args=(s,), daemon=True)
            t.start()
            self.readers.append(t)

    def test_every_client_gets_the_banner_then_eof_from_a_busy_poller(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "harness.py"), "banner",
                                      self.BANNER], stdout=subprocess.PIPE, text=True)
        banner_port = int(self.proc.stdout.readline())
        bulk = self.backend(firehose)
        cfg = simple_config([banner_port], pollers=1, idle_timeout_ms=0, **self.extra)
        cfg["pools"].append({"name": "bulk", "backends": [
            {"name": "f", "address": f"127.0.0.1:{bulk.port}"}]})
        cfg["listeners"].append({"name": "bulk", "listen": f"127.0.0.1:{free_port()}",
                                 "pool": "bulk"})
        self.sluice(cfg)
        api = Api(cfg)
        self.start_bulk_streams(listen_port(cfg, 1))
        wait_until(lambda: bulk.accepted == self.STREAMS, what="bulk streams")
        expected = self.BANNER.encode()
        for r in range(self.ROUNDS):
            socks = [connect(listen_port(cfg)) for _ in range(self.CLIENTS)]
            try:
                got = read_to_end(socks, self.EOF_WAIT)
                stuck = sum(how is None for _, how in got.values())
                self.assertEqual(stuck, 0, f"round {r}: {stuck} of {self.CLIENTS} clients "
                                 "never saw EOF")
                for data, how in got.values():
                    self.assertEqual((data, how), (expected, "eof"), f"round {r}")
                # Every session ended: the backend's slots are all back.
                wait_until(lambda: api.get("/api/v1/pools/p/backends/b0")[1]
                           ["active_connections"] == 0, timeout=10, what="slots back")
            finally:
                for s in socks:
                    s.close()


class BannerAndCloseSplice(BannerAndClose):
    extra = {"zero_copy": "splice"}


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def localhost_both_families(tmpdir):
    """A command prefix under which `localhost` resolves to both ::1 and
    127.0.0.1, as Debian's default /etc/hosts has it: [] when this machine's
    already does; otherwise `unshare` into a private mount namespace where
    such a hosts file is bound over /etc/hosts (only sluice sees it; the
    network is the machine's). None when neither can be had."""
    families = {ai[0] for ai in socket.getaddrinfo("localhost", 1, type=socket.SOCK_STREAM)}
    if {socket.AF_INET, socket.AF_INET6} <= families:
        return []
    if not shutil.which("unshare"):
        return None
    hosts = os.path.join(tmpdir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n")
    prefix = ["unshare", "-m" if os.geteuid() == 0 else "-rm", "sh", "-c",
              'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
    try:
        got = subprocess.run(prefix + ["getent", "ahosts", "localhost"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if got.returncode == 0 and "::1" in got.stdout and "127.0.0.1" in got.stdout:
        return prefix
    return None


class LocalhostName(ProxyTest):
    """A backend written as localhost:PORT, where localhost is ::1 and
    127.0.0.1, with a server on only one of them (an IPv4-only service on a
    Debian host): sessions and health checks must reach it, whichever address
    getaddrinfo lists first, and no failure is counted against it."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="sluice-hosts-")
        self.wrapper = localhost_both_families(self.tmp)
        if self.wrapper is None:
            self.skipTest("cannot make localhost resolve to both ::1 and 127.0.0.1")
        if not ipv6_loopback():
            self.skipTest("no IPv6 loopback")

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, host, **pool):
        b = self.backend(host=host)
        cfg = simple_config([b.port], **pool)
        cfg["pools"][0]["backends"][0]["address"] = f"localhost:{b.port}"
        self.sluice(cfg, wrapper=self.wrapper)
        return b, cfg, Api(cfg)

    def sessions_relay(self, host):
        b, cfg, api = self.start(host, retries=0)  # no other backend to hide a failure
        for i in range(6):
            s = connect(listen_port(cfg))
            s.sendall(b"hello %d" % i)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"hello %d" % i, f"session {i}")
            s.close()
        self.assertEqual(b.accepted, 6)
        st = api.get("/api/v1/pools/p/backends/b0")[1]
        self.assertEqual((st["state"], st["connect_failures"]), ("up", 0))

    def checks_pass(self, host):
        hc = {"interval_ms": 200, "timeout_ms": 200, "rise": 1, "fall": 1}
        b, cfg, api = self.start(host, health_check=hc)
        health = lambda: api.get("/api/v1/pools/p/backends/b0")[1]["health"]
        wait_until(lambda: health()["checks_total"] >= 4, timeout=20, what="four checks")
        st = api.get("/api/v1/pools/p/backends/b0")[1]
        self.assertEqual((st["state"], st["health"]["last_check"], st["health"]["checks_failed"]),
                         ("up", "ok", 0))

    def test_sessions_reach_a_server_on_127_0_0_1_only(self):
        self.sessions_relay("127.0.0.1")

    def test_sessions_reach_a_server_on_ipv6_loopback_only(self):
        self.sessions_relay("::1")

    def test_health_checks_pass_on_127_0_0_1_only(self):
        self.checks_pass("127.0.0.1")

    def test_health_checks_pass_on_ipv6_loopback_only(self):
        self.checks_pass("::1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
