"""Graceful shutdown: SIGTERM stops accepting at once, lets open sessions
finish byte-exact within shutdown_grace_ms and exits 0; after the grace the
rest is closed; a second signal exits at once."""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, listen_port, payload, recv_all, sha, simple_config,
                     wait_until)


class Shutdown(ProxyTest):
    def test_sigterm_lets_sessions_finish_and_refuses_new_ones(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 20000
        sl = self.sluice(cfg)
        open_sessions = []
        for i in range(10):
            s = connect(listen_port(cfg))
            s.sendall(b"warm %d" % i)
            self.assertEqual(s.recv(100), b"warm %d" % i)
            open_sessions.append(s)
        sl.signal(signal.SIGTERM)
        wait_until(lambda: "no longer accepting" in sl.output(), what="shutdown to begin")
        with self.assertRaises(OSError):
            connect(listen_port(cfg), timeout=2).recv(1)
        # The open sessions still carry data, byte-exact, then end normally.
        for i, s in enumerate(open_sessions):
            data = payload(i, 300000)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = b"warm %d" % i
            got = recv_all(s)
            self.assertEqual(sha(got), sha(data))
            s.close()
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)

    def test_grace_period_closes_what_is_left(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 300
        sl = self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"x")
        self.assertEqual(s.recv(1), b"x")
        sl.signal(signal.SIGTERM)
        s.settimeout(15)
        with self.assertRaises(ConnectionResetError):  # cut by the proxy after the grace
            recv_all(s)
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)
        self.assertIn("grace period over", sl.output())
        s.close()

    def test_second_signal_stops_at_once(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 60000
        sl = self.sluice(cfg, check_clean_exit=False)
        s = connect(listen_port(cfg))
        s.sendall(b"x")
        self.assertEqual(s.recv(1), b"x")
        sl.signal(signal.SIGINT)
        wait_until(lambda: "no longer accepting" in sl.output(), what="shutdown to begin")
        sl.signal(signal.SIGINT)
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 1)
        self.assertIn("second signal", sl.output())
        s.close()

    def test_sighup_is_harmless(self):
        b = self.backend()
        cfg = simple_config([b.port])
        sl = self.sluice(cfg)
        sl.signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP" in sl.output(), what="the SIGHUP log line")
        s = connect(listen_port(cfg))
        s.sendall(b"still here")
        self.assertEqual(s.recv(100), b"still here")
        s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
