"""Close semantics (README "Close semantics"): a session that sluice cuts
(drain deadline, disable with close, the end of the shutdown grace, connect
exhausted, an idle timeout that drops buffered bytes) is reset on both sides,
so no peer that reads to EOF takes a truncated stream for a complete one; a
session that ends with nothing thrown away ends with a FIN."""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import ProxyTest, connect, listen_port, simple_config, wait_until
from test_admin import Api
from test_dial import blackhole

MIB = 1 << 20


def how_it_ends(sock, timeout=20, limit=1 << 30):
    """Reads to the end: "eof" for a FIN, "reset" for ECONNRESET."""
    sock.settimeout(timeout)
    n = 0
    try:
        while n < limit:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return "eof"
            n += len(chunk)
    except ConnectionResetError:
        return "reset"
    raise AssertionError(f"still reading after {limit} bytes")


def poller_sum(api, key):
    return sum(p[key] for p in api.get("/api/v1/pollers")[1])


class Close(ProxyTest):
    def held_backend(self):
        """A backend that echoes one byte, then records how its side ended."""
        ends = []

        def handler(conn, backend):
            conn.sendall(conn.recv(1))
            ends.append(how_it_ends(conn, 60))
        return self.backend(handler), ends

    def held_session(self, cfg):
        s = connect(listen_port(cfg))
        s.sendall(b"k")
        self.assertEqual(s.recv(1), b"k")
        return s

    def test_drain_deadline_resets_both_sides(self):
        b, ends = self.held_backend()
        cfg = simple_config([b.port])
        self.sluice(cfg)
        api = Api(cfg)
        s = self.held_session(cfg)
        st, _ = api.post("/api/v1/pools/p/backends/b0/drain", {"deadline_ms": 300})
        self.assertEqual(st, 200)
        self.assertEqual(how_it_ends(s), "reset")
        s.close()
        wait_until(lambda: ends, what="the backend's side to end")
        self.assertEqual(ends, ["reset"])
        self.assertEqual(api.get("/api/v1/pools/p/backends/b0")[1]["drain_forced"], 1)

    def test_disable_with_close_resets_both_sides(self):
        b, ends = self.held_backend()
        cfg = simple_config([b.port])
        self.sluice(cfg)
        api = Api(cfg)
        s = self.held_session(cfg)
        st, _ = api.post("/api/v1/pools/p/backends/b0/disable", {"close": True})
        self.assertEqual(st, 200)
        self.assertEqual(how_it_ends(s), "reset")
        s.close()
        wait_until(lambda: ends, what="the backend's side to end")
        self.assertEqual(ends, ["reset"])

    def test_end_of_shutdown_grace_resets_both_sides(self):
        b, ends = self.held_backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 300
        sl = self.sluice(cfg)
        s = self.held_session(cfg)
        sl.signal(signal.SIGTERM)
        self.assertEqual(how_it_ends(s), "reset")
        s.close()
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)
        wait_until(lambda: ends, what="the backend's side to end")
        self.assertEqual(ends, ["reset"])

    def test_connect_exhausted_resets_a_client_whose_bytes_were_read(self):
        # The connect hangs until connect_timeout_ms, so sluice has long read
        # the client's bytes into its buffer when it gives up: the kernel
        # alone would have sent a FIN.
        l, fillers, hole = blackhole()
        try:
            cfg = simple_config([hole], connect_timeout_ms=500, retries=0)
            self.sluice(cfg)
            api = Api(cfg)
            s = connect(listen_port(cfg))
            s.sendall(b"a request that will never be delivered")
            self.assertEqual(how_it_ends(s), "reset")
            s.close()
            self.assertEqual(poller_sum(api, "connect_exhausted"), 1)
        finally:
            for f in fillers:
                f.close()
            l.close()

    def test_no_backend_at_all_resets_the_client(self):
        b, _ = self.held_backend()
        cfg = simple_config([b.port])
        self.sluice(cfg)
        api = Api(cfg)
        self.assertEqual(api.post("/api/v1/pools/p/backends/b0/disable")[0], 200)
        try:
            c = connect(listen_port(cfg))
        except ConnectionResetError:
            return  # reset before connect() even returned: as good
        self.assertEqual(how_it_ends(c), "reset")
        c.close()

    def idle_with_bytes_stuck(self, **pool):
        """A backend pours bytes at a client that reads nothing: once every
        buffer on the way is full nothing moves, the idle timeout fires with
        bytes in sluice's buffer, and dropping them must not look like an end."""
        fire = self.async_backend("firehose", total=64 * MIB)
        cfg = simple_config([fire.port], idle_timeout_ms=1500, **pool)
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        api = Api(cfg)
        wait_until(lambda: poller_sum(api, "idle_timeouts") >= 1, timeout=30, step=0.1,
                   what="the idle timeout")
        self.assertEqual(how_it_ends(s), "reset")
        s.close()

    def test_idle_timeout_with_bytes_buffered_resets(self):
        self.idle_with_bytes_stuck()

    def test_idle_timeout_with_bytes_in_a_splice_pipe_resets(self):
        self.idle_with_bytes_stuck(zero_copy="splice")

    def test_idle_timeout_with_nothing_buffered_is_a_fin_both_ways(self):
        b, ends = self.held_backend()
        cfg = simple_config([b.port], idle_timeout_ms=400)
        self.sluice(cfg)
        s = self.held_session(cfg)
        self.assertEqual(how_it_ends(s), "eof")
        s.close()
        wait_until(lambda: ends, what="the backend's side to end")
        self.assertEqual(ends, ["eof"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
