"""Data path: byte-exact relay both ways at once through 2 pollers, half-close
from either side, reset forwarding, backpressure memory bound, fd hygiene."""

import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, echo_handler, listen_port, payload, recv_all,
                     recv_exactly, sha, simple_config, wait_until)

MIB = 1 << 20
PIPE_CACHE_MAX = 32  # proxy/pipe_cache.h: empty splice pipes kept per poller


def pollers_total(cfg, key):
    """The sum of one counter over every poller, from the admin API."""
    from test_admin import Api
    return sum(p[key] for p in Api(cfg).get("/api/v1/pollers")[1])


def echoed_once(test, cfg, msg):
    """A client whose msg came back through the echo backend, kept open."""
    s = connect(listen_port(cfg))
    s.sendall(msg)
    test.assertEqual(recv_exactly(s, len(msg)), msg)
    return s


class Relay(ProxyTest):
    extra = {}  # pool options every test's config gets (RelaySplice: zero_copy)
    top = {}  # top-level keys every test's config gets (RelayUring: io)

    def cfg_for(self, ports, **kw):
        cfg = simple_config(ports, **{**self.extra, **kw})
        cfg.update(self.top)
        return cfg
    def test_64_mib_each_way_concurrently_is_byte_exact(self):
        b1, b2 = self.backend(), self.backend()
        cfg = self.cfg_for([b1.port, b2.port], pollers=2)
        self.sluice(cfg)
        sessions, size = 32, 2 * MIB  # 64 MiB each way, all at once
        results = [None] * sessions

        def one(i):
            data = payload(1000 + i, size)
            s = connect(listen_port(cfg), timeout=60)
            got = bytearray()

            def reader():
                got.extend(recv_all(s))
            t = threading.Thread(target=reader)
            t.start()
            view = memoryview(data)
            for off in range(0, size, 64 * 1024):
                s.sendall(view[off:off + 64 * 1024])
            s.shutdown(socket.SHUT_WR)
            t.join(120)
            s.close()
            results[i] = (sha(data), sha(bytes(got)), len(got))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, f"session {i} did not finish")
            self.assertEqual(r[2], size, f"session {i}: got {r[2]} bytes back")
            self.assertEqual(r[0], r[1], f"session {i}: bytes differ")
        # Each backend received exactly what the clients sent, in order.
        sent = sorted(sha(payload(1000 + i, size)) for i in range(sessions))
        wait_until(lambda: len(b1.received) + len(b2.received) == sessions, what="backends done")
        self.assertEqual(sorted(b1.received + b2.received), sent)
        self.assertGreater(len(b1.received), 0)
        self.assertGreater(len(b2.received), 0)

    def test_client_half_close_still_gets_full_reply(self):
        reply = payload(7, 3 * MIB)

        def request_then_reply(conn, backend):
            req = recv_all(conn)  # until the client's EOF reaches us
            conn.sendall(struct.pack("!Q", len(req)) + reply)
            conn.shutdown(socket.SHUT_WR)

        b = self.backend(request_then_reply)
        cfg = self.cfg_for([b.port])
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        req = payload(8, 100000)
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        s.close()
        self.assertEqual(struct.unpack("!Q", got[:8])[0], len(req))
        self.assertEqual(sha(got[8:]), sha(reply))

    def test_backend_half_close_still_receives_client_bytes(self):
        greeting = payload(9, MIB)
        seen = {}

        def greet_then_listen(conn, backend):
            conn.sendall(greeting)
            conn.shutdown(socket.SHUT_WR)
            seen["data"] = recv_all(conn)

        b = self.backend(greet_then_listen)
        cfg = self.cfg_for([b.port])
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        got = recv_all(s)  # the backend's EOF is forwarded after its bytes
        self.assertEqual(sha(got), sha(greeting))
        late = payload(10, 500000)
        s.sendall(late)  # the other direction is still open
        s.shutdown(socket.SHUT_WR)
        wait_until(lambda: "data" in seen, what="backend to read to EOF")
        s.close()
        self.assertEqual(sha(seen["data"]), sha(late))

    def test_backend_reset_reaches_client_as_reset(self):
        def reset_after_hello(conn, backend):
            conn.recv(100)
            conn.sendall(b"bye")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        b = self.backend(reset_after_hello)
        cfg = self.cfg_for([b.port])
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"hello")
        with self.assertRaises(ConnectionResetError):
            while s.recv(1024):
                pass
        s.close()

    def test_client_reset_reaches_backend_as_reset(self):
        outcome = {}

        def wait_for_end(conn, backend):
            try:
                while conn.recv(1024):
                    pass
                outcome["end"] = "eof"
            except ConnectionResetError:
                outcome["end"] = "reset"

        b = self.backend(wait_for_end)
        cfg = self.cfg_for([b.port])
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"hello")
        wait_until(lambda: b.accepted == 1, what="backend connection")
        time.sleep(0.1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        wait_until(lambda: "end" in outcome, what="backend to see the end")
        self.assertEqual(outcome["end"], "reset")

    def test_backpressure_bounds_memory_for_a_reader_that_never_reads(self):
        pushed = {"bytes": 0}

        def firehose(conn, backend):
            chunk = b"x" * (256 * 1024)
            conn.settimeout(2)
            try:
                while pushed["bytes"] < 400 * MIB:
                    conn.sendall(chunk)
                    pushed["bytes"] += len(chunk)
            except (socket.timeout, OSError):
                pass  # the proxy stopped reading: that is the point

        b = self.backend(firehose)
        cfg = self.cfg_for([b.port], buffer_high_watermark=256 * 1024,
                            buffer_low_watermark=64 * 1024)
        sl = self.sluice(cfg)
        rss_before = sl.rss_kib()
        clients = []
        for _ in range(4):
            c = connect(listen_port(cfg))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            clients.append(c)
        # Wait until the backends' sends stall: kernel buffers and linkbufs are full.
        last = -1
        for _ in range(100):
            time.sleep(0.1)
            if pushed["bytes"] == last:
                break
            last = pushed["bytes"]
        growth = sl.rss_kib() - rss_before
        # 4 sessions x (256 KiB watermark + one read span) is ~2 MiB; allow slack
        # for thread stacks and allocator pages, far below what was pushed.
        self.assertLess(growth, 16 * 1024, f"RSS grew {growth} KiB")
        self.assertLess(pushed["bytes"], 100 * MIB)
        # Reading resumes the flow: drain 8 MiB from one client.
        got = recv_exactly(clients[0], 8 * MIB)
        self.assertEqual(len(got), 8 * MIB)
        for c in clients:
            c.close()

    def test_late_reader_with_a_large_watermark_gets_every_byte(self):
        # Regression: with more buffered than one writev covers (16 blocks),
        # the pump used to stop writing while the socket was still writable,
        # and no edge-triggered event ever came back for the rest.
        total = 8 * MIB

        def firehose(conn, backend):
            conn.sendall(payload(5, total))
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)

        b = self.backend(firehose)
        cfg = self.cfg_for([b.port], buffer_high_watermark=4 * MIB,
                            buffer_low_watermark=1 * MIB)
        self.sluice(cfg)
        s = connect(listen_port(cfg), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        time.sleep(0.5)  # let sluice buffer far more than 16 blocks
        got = recv_all(s)
        s.close()
        self.assertEqual(len(got), total)
        self.assertEqual(sha(got), sha(payload(5, total)))

    def test_reuseport_accept_on_every_sub_reactor(self):
        b = self.backend()
        cfg = self.cfg_for([b.port], pollers=2)
        cfg["accept"] = "reuseport"
        sl = self.sluice(cfg)
        before = sl.fd_count()
        for i in range(200):
            s = connect(listen_port(cfg))
            s.sendall(b"r%d" % i)
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"r%d" % i)
            s.close()
        from test_admin import Api
        pollers = Api(cfg).get("/api/v1/pollers")[1]
        self.assertEqual(pollers[0]["accepted"], 0)  # the main reactor accepts nothing
        self.assertEqual(sum(p["accepted"] for p in pollers), 200)
        for p in pollers[1:]:
            self.assertGreater(p["accepted"], 20)  # the kernel spreads them
            self.assertEqual(p["accepted"], p["total_connections"])  # and they stay there
        wait_until(lambda: sl.fd_count() == before, what="fds back")
        sl.signal(__import__("signal").SIGTERM)
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)
        with self.assertRaises(OSError):
            connect(listen_port(cfg), timeout=2).recv(1)

    def test_shared_accept_relays_on_sub_reactors_and_keeps_them_even(self):
        """accept "shared": the sub-reactors watch one socket; whichever is
        woken accepts and keeps the connection, unless it carries clearly
        more than another. Connections that arrive one by one while every
        sub-reactor is idle would all wake the first one (EPOLLEXCLUSIVE
        wakes waiters in order): they must still end up spread."""
        b = self.backend()
        cfg = self.cfg_for([b.port], pollers=2)
        cfg["accept"] = "shared"
        sl = self.sluice(cfg)
        before = sl.fd_count()
        held = [echoed_once(self, cfg, b"s%d" % i) for i in range(40)]
        from test_admin import Api
        pollers = Api(cfg).get("/api/v1/pollers")[1]
        self.assertEqual(pollers[0]["accepted"], 0)  # the main reactor accepts nothing
        self.assertEqual(sum(p["accepted"] for p in pollers), 40)
        for p in pollers[1:]:  # even within a session or two, not 40 / 0
            self.assertGreaterEqual(p["total_connections"], 17, pollers)
        for s in held:
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(s), b"")
            s.close()
        wait_until(lambda: sl.fd_count() == before, what="fds back")
        sl.signal(__import__("signal").SIGTERM)
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)
        with self.assertRaises(OSError):  # every dup of the socket was closed
            connect(listen_port(cfg), timeout=2).recv(1)

    def test_many_small_writes_to_a_stalled_client_all_arrive(self):
        """The backend sends 6000 1000-byte messages, one segment each, to a client
        that does not read yet, then waits for the client's answer. Each
        arrival is its own pipe slot in splice mode: a full pipe must not be
        taken for an empty socket, or the last messages are never read."""
        count, msg = 6000, b"m" * 1000

        def talker(conn, backend):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(count):
                conn.sendall(msg)
                time.sleep(0.0001)  # separate arrivals, not one coalesced skb
            conn.settimeout(30)
            if conn.recv(4) == b"done":
                conn.sendall(b"bye")
        b = self.backend(talker)
        cfg = self.cfg_for([b.port])
        self.sluice(cfg)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few messages
        s.settimeout(10)
        s.connect(("127.0.0.1", listen_port(cfg)))
        time.sleep(3.0)  # let every message be sent while the client reads nothing
        self.assertEqual(recv_exactly(s, count * len(msg)), msg * count)
        s.sendall(b"done")
        self.assertEqual(recv_exactly(s, 3), b"bye")
        s.close()

    def test_a_bursts_buffer_blocks_go_back_after_a_quiet_second(self):
        """A client that stalls makes sluice buffer megabytes; once the burst
        is over, the blocks wait in the poller's cache for one quiet second
        and are then freed (blocks_cached back to 0)."""
        b = self.backend()
        cfg = self.cfg_for([b.port], pollers=1, buffer_high_watermark=4 * MIB,
                           buffer_low_watermark=MIB)
        self.sluice(cfg)
        size = 4 * MIB
        data = payload(7, size)
        s = connect(listen_port(cfg), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        t = threading.Thread(target=s.sendall, args=(data,))
        t.start()
        time.sleep(1.0)  # the echo piles up in sluice while the client reads nothing
        got = recv_exactly(s, size)
        t.join(30)
        s.close()
        self.assertEqual(sha(got), sha(data))

        self.assertGreater(pollers_total(cfg, "blocks_cached"), 0)  # kept for reuse
        wait_until(lambda: pollers_total(cfg, "blocks_cached") == 0, timeout=10, step=0.1,
                   what="the burst's blocks freed")

    def test_no_fd_leak_after_thousands_of_sessions(self):
        b = self.backend()
        cfg = self.cfg_for([b.port])
        sl = self.sluice(cfg)
        before = sl.fd_count()
        for i in range(2000):
            s = connect(listen_port(cfg))
            s.sendall(b"ping %d" % i)
            self.assertEqual(s.recv(100), b"ping %d" % i)
            if i % 3 == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif i % 3 == 1:
                s.shutdown(socket.SHUT_WR)
                recv_all(s)
            s.close()

        def expected():  # splice mode keeps a few empty pipes per poller for reuse
            if pollers_total(cfg, "splice_pipes_in_use"):
                return None  # sessions still closing
            return before + 2 * pollers_total(cfg, "splice_pipes_cached")
        wait_until(lambda: sl.fd_count() == expected(), timeout=10,
                   what=f"fd count back to {expected()} (now {sl.fd_count()})")
        if self.extra.get("zero_copy") == "splice":
            self.assertLessEqual(sl.fd_count() - before, 2 * PIPE_CACHE_MAX * 2)


class RelaySplice(Relay):
    """The same relay tests with pools[].zero_copy "splice"."""
    extra = {"zero_copy": "splice"}

    def test_reuseport_accept_on_every_sub_reactor(self):
        self.skipTest("accept mode is independent of the relay mode")

    def test_shared_accept_relays_on_sub_reactors_and_keeps_them_even(self):
        self.skipTest("accept mode is independent of the relay mode")

    def test_a_bursts_buffer_blocks_go_back_after_a_quiet_second(self):
        self.skipTest("pipes, not linkbuf blocks, buffer a splice relay")

    def test_idle_sessions_hold_no_pipes(self):
        """A direction holds a pipe only while bytes are in it: 200 sessions
        that relayed and went quiet cost their two sockets each, plus at most
        the pollers' pipe caches (2 fds per cached pipe)."""
        b = self.backend()
        cfg = self.cfg_for([b.port], pollers=2)
        sl = self.sluice(cfg)
        before = sl.fd_count()
        held = [echoed_once(self, cfg, b"p%d" % i) for i in range(200)]
        # The last echo reaches its client a moment before its pass ends.
        wait_until(lambda: pollers_total(cfg, "splice_pipes_in_use") == 0,
                   what="no pipe in use")
        cached = pollers_total(cfg, "splice_pipes_cached")
        self.assertGreater(cached, 0)  # the pipes were used, and kept for reuse
        self.assertLessEqual(cached, PIPE_CACHE_MAX * 2)
        self.assertLessEqual(sl.fd_count() - before, 2 * 200 + 2 * PIPE_CACHE_MAX * 2)
        for s in held:
            s.close()


class UringMixin:
    """Runs a relay class's tests with "io": "io_uring", and makes sure it is
    really in use (a silent fallback to epoll would pass them all): no
    fallback line at start, and "io" in every poller's stats at the end of
    each test that left sluice running (at the end: the admin connection
    must not count in the fd counts the tests take)."""
    top = {"io": "io_uring"}

    def sluice(self, config, **kw):
        sl = super().sluice(config, **kw)
        self.assertNotIn("io_uring cannot be set up", sl.output())
        return sl

    def tearDown(self):
        try:
            from test_admin import Api
            for sl in self._sluices:
                if sl.proc.poll() is None:
                    ios = [p["io"] for p in Api(sl.config).get("/api/v1/pollers")[1]]
                    self.assertEqual(set(ios), {"io_uring"}, sl.output())
        finally:
            super().tearDown()


class RelayUring(UringMixin, Relay):
    """The relay tests through the io_uring poll backend."""


class RelayUringSplice(UringMixin, RelaySplice):
    """The splice relay tests through the io_uring poll backend."""


if __name__ == "__main__":
    unittest.main(verbosity=2)
