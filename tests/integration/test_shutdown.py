"""Graceful shutdown: SIGTERM stops accepting at once, lets open sessions
finish byte-exact within shutdown_grace_ms and exits 0; after the grace the
rest is closed; a second signal exits at once."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, listen_port, payload, recv_all, sha, simple_config,
                     wait_until)


def admin_call(cfg, method, path, timeout=10):
    """One admin request on its own connection: {"status", "body"} (the JSON
    body, or {} when there is none), or {"error"} when no HTTP answer came."""
    host, port = cfg["admin"]["listen"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None)
        r = conn.getresponse()
        text = r.read().decode()
        return {"status": r.status, "body": json.loads(text) if text else {}}
    except (OSError, http.client.HTTPException) as e:
        return {"error": repr(e)}
    finally:
        conn.close()


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

    def test_sigterm_ends_a_pending_drain_wait(self):
        # A drain?wait=20 is pending on a backend with an open session. SIGTERM
        # must answer it at once (not hold the exit for 20 s): the process
        # exits after its 500 ms grace, and the waiter gets an HTTP answer.
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 500
        sl = self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"x")
        self.assertEqual(s.recv(1), b"x")
        answer = {}
        waiter = threading.Thread(target=lambda: answer.update(
            admin_call(cfg, "POST", "/api/v1/pools/p/backends/b0/drain?wait=20", timeout=30)))
        waiter.start()
        # The lock is released only inside the wait loop: once another call sees
        # "draining", the waiter is waiting.
        wait_until(lambda: admin_call(cfg, "GET", "/api/v1/pools/p/backends/b0")["body"]
                   .get("state") == "draining", what="b0 draining")
        sl.signal(signal.SIGTERM)
        try:
            sl.proc.wait(10)  # an outcome bound far below the 20 s wait
        except subprocess.TimeoutExpired:
            self.fail("sluice still running 10 s after SIGTERM with a drain?wait=20 pending")
        waiter.join(10)
        self.assertFalse(waiter.is_alive())
        self.assertNotIn("error", answer, answer)
        self.assertIn(answer["status"], (202, 503), answer)
        if answer["status"] == 202:
            self.assertEqual(answer["body"]["state"], "draining")
        else:
            self.assertEqual(answer["body"]["error"], "shutting down")
        self.assertEqual(sl.proc.returncode, 0)
        self.assertIn("grace period over", sl.output())
        s.close()

    def test_drain_wait_during_shutdown_does_not_wait(self):
        # After SIGTERM the admin API still answers, but a new ?wait= returns
        # at once instead of holding the exit.
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["shutdown_grace_ms"] = 60000
        sl = self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"x")
        self.assertEqual(s.recv(1), b"x")
        sl.signal(signal.SIGTERM)
        wait_until(lambda: "no longer accepting" in sl.output(), what="shutdown to begin")
        # timeout 10: an outcome bound far below the 20 s asked for.
        answer = admin_call(cfg, "POST", "/api/v1/pools/p/backends/b0/drain?wait=20", timeout=10)
        self.assertEqual((answer.get("status"), answer.get("body", {}).get("state")), (202, "draining"),
                         answer)
        s.close()  # the last session ends: sluice exits on its own
        sl.proc.wait(15)
        self.assertEqual(sl.proc.returncode, 0)

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
