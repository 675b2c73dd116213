"""The connection log (README "Connection log") against the real binary:
one JSON line per finished session with the right fields and close cause
for every way a session ends (client or backend EOF, client or backend
reset, idle timeout, connect failed, no backend, drain deadline, disable
with close, shutdown, this host's fd limit), bytes that match what was sent, periodic "flush"
lines, SIGUSR1 reopening the file after a rename (logrotate), stdout by
default, and a full ring that drops and counts lines without stalling
traffic."""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, Sluice, connect, echo_handler, free_port, listen_port, payload, recv_all,
                     recv_exactly, simple_config, wait_until)
from test_admin import Api

LOGROTATE_SNIPPET = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "logrotate",
                                 "sluice")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = {"time", "event", "listener", "pool", "client", "backend", "backend_address", "bytes_in",
          "bytes_out", "connect_ms", "first_byte_ms", "duration_ms", "retries", "cause"}
CAUSES = {"client_eof", "backend_eof", "client_reset", "backend_reset", "idle_timeout",
          "connect_failed", "no_backend", "drain_deadline", "disabled", "shutdown", "max_age",
          "limit"}


def read_lines(path):
    """Every complete line of the log, parsed (a line still being written is
    left for the next look)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.split(b"\n")[:-1]:
        out.append(json.loads(raw))
    return out


def reset_close(sock):
    """Closes with a RST: SO_LINGER {1, 0}."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def poller_sum(api, key):
    return sum(p[key] for p in api.get("/api/v1/pollers")[1])


class ConnLog(ProxyTest):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="sluice-connlog-")
        self.path = os.path.join(self.dir, "conn.log")

    def start(self, backend_ports, log=None, **pool_opts):
        cfg = simple_config(backend_ports, **pool_opts)
        cfg["log"] = {"connections": True, "path": self.path}
        cfg["log"].update(log or {})
        self.cfg = cfg
        self.port = listen_port(cfg)
        self.proc = self.sluice(cfg)
        self.api = Api(cfg)
        return cfg

    def line_for(self, client_port, event="close", timeout=15):
        """Waits for the line of the session from client_port."""
        want = f"127.0.0.1:{client_port}"

        def find():
            for ln in read_lines(self.path):
                if ln["client"] == want and ln["event"] == event:
                    return ln
            return None
        return wait_until(find, timeout=timeout, what=f"a {event} line for {want}")

    def check_line(self, ln, cause, backend_port=None):
        self.assertEqual(set(ln), FIELDS)
        self.assertRegex(ln["time"], TIME_RE)
        self.assertEqual(ln["event"], "close")
        self.assertEqual((ln["listener"], ln["pool"]), ("l", "p"))
        self.assertEqual(ln["cause"], cause)
        self.assertIn(ln["cause"], CAUSES)
        self.assertIsInstance(ln["duration_ms"], (int, float))
        self.assertGreaterEqual(ln["duration_ms"], 0)
        if backend_port is None:
            self.assertIsNone(ln["backend"])
            self.assertIsNone(ln["backend_address"])
            self.assertIsNone(ln["connect_ms"])
        else:
            self.assertEqual(ln["backend"], "b0")
            self.assertEqual(ln["backend_address"], f"127.0.0.1:{backend_port}")

    def refused_session(self):
        """A client that sluice resets, maybe before connect() returns: its
        port is taken before connecting, so the line can be found anyway."""
        c = socket.socket()
        try:
            c.bind(("127.0.0.1", 0))
            me = c.getsockname()[1]
            c.settimeout(15)
            c.connect(("127.0.0.1", self.port))
            recv_all(c)
        except ConnectionResetError:
            pass
        finally:
            c.close()
        return me

    # --- how a session ends ---------------------------------------------------------------

    def test_client_eof_with_bytes_each_way(self):
        b = self.backend()
        self.start([b.port])
        data = payload(1, 300000)
        c = connect(self.port)
        me = c.getsockname()[1]
        c.sendall(data)
        self.assertEqual(recv_exactly(c, len(data)), data)
        c.shutdown(socket.SHUT_WR)  # the client ends first; the echo backend follows
        self.assertEqual(recv_all(c), b"")
        c.close()
        ln = self.line_for(me)
        self.check_line(ln, "client_eof", b.port)
        self.assertEqual((ln["bytes_in"], ln["bytes_out"]), (len(data), len(data)))
        self.assertIsInstance(ln["connect_ms"], (int, float))
        self.assertIsInstance(ln["first_byte_ms"], (int, float))
        self.assertEqual(ln["retries"], 0)
        self.assertGreaterEqual(ln["duration_ms"], ln["connect_ms"])

    def test_backend_eof(self):
        def greet_and_close(conn, backend):
            conn.sendall(b"hello")
            conn.shutdown(socket.SHUT_WR)
            recv_all(conn)
        b = self.backend(greet_and_close)
        self.start([b.port])
        c = connect(self.port)
        me = c.getsockname()[1]
        self.assertEqual(recv_all(c), b"hello")  # the backend ended first
        c.sendall(b"bye")
        c.shutdown(socket.SHUT_WR)
        c.close()
        ln = self.line_for(me)
        self.check_line(ln, "backend_eof", b.port)
        self.assertEqual((ln["bytes_in"], ln["bytes_out"]), (3, 5))
        self.assertIsInstance(ln["first_byte_ms"], (int, float))

    def test_ipv6_client_and_backend(self):
        b = self.backend(host="::1")
        port = free_port()
        cfg = simple_config([b.port])
        cfg["listeners"][0]["listen"] = f"[::1]:{port}"
        cfg["pools"][0]["backends"][0]["address"] = f"[::1]:{b.port}"
        cfg["log"] = {"connections": True, "path": self.path}
        self.sluice(cfg)
        c = socket.create_connection(("::1", port), timeout=10)
        me = c.getsockname()[1]
        c.sendall(b"six")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(c), b"six")
        c.close()
        want = f"[::1]:{me}"
        ln = wait_until(lambda: next((x for x in read_lines(self.path) if x["client"] == want),
                                     None), what="the IPv6 session's line")
        self.assertEqual(ln["backend_address"], f"[::1]:{b.port}")
        self.assertEqual((ln["bytes_in"], ln["bytes_out"], ln["cause"]), (3, 3, "client_eof"))

    def test_no_first_byte_is_null(self):
        def silent(conn, backend):
            recv_all(conn)
        b = self.backend(silent)
        self.start([b.port])
        c = connect(self.port)
        me = c.getsockname()[1]
        c.sendall(b"x")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(c), b"")
        c.close()
        ln = self.line_for(me)
        self.check_line(ln, "client_eof", b.port)
        self.assertIsNone(ln["first_byte_ms"])
        self.assertEqual((ln["bytes_in"], ln["bytes_out"]), (1, 0))

    def test_client_reset(self):
        b = self.backend()
        self.start([b.port])
        c = connect(self.port)
        me = c.getsockname()[1]
        c.sendall(b"ping")
        self.assertEqual(recv_exactly(c, 4), b"ping")
        reset_close(c)
        self.check_line(self.line_for(me), "client_reset", b.port)

    def test_backend_reset(self):
        def echo_then_reset(conn, backend):
            conn.sendall(conn.recv(4))
            reset_close(conn)
        b = self.backend(echo_then_reset)
        self.start([b.port])
        c = connect(self.port)
        me = c.getsockname()[1]
        c.sendall(b"ping")
        self.assertEqual(recv_exactly(c, 4), b"ping")
        c.settimeout(15)
        try:
            recv_all(c)
        except ConnectionResetError:
            pass
        c.close()
        self.check_line(self.line_for(me), "backend_reset", b.port)

    def closed_by_a_timer(self, cause, **pool_opts):
        """One echoed byte, then sluice ends the session on its own (a FIN:
        nothing buffered) and logs `cause`."""
        b = self.backend()
        self.start([b.port], **pool_opts)
        c = connect(self.port)
        me = c.getsockname()[1]
        c.sendall(b"k")
        self.assertEqual(c.recv(1), b"k")
        c.settimeout(15)
        self.assertEqual(recv_all(c), b"")  # nothing buffered: a FIN
        c.close()
        self.check_line(self.line_for(me), cause, b.port)

    def test_idle_timeout(self):
        self.closed_by_a_timer("idle_timeout", idle_timeout_ms=200)

    def test_max_age(self):
        self.closed_by_a_timer("max_age", max_session_age_ms=300, idle_timeout_ms=60000)

    def test_connect_failed(self):
        dead = free_port()
        self.start([dead], retries=1)
        me = self.refused_session()
        ln = self.line_for(me)
        self.check_line(ln, "connect_failed")
        self.assertEqual(ln["retries"], 1)  # the only backend, tried twice
        self.assertEqual((ln["bytes_in"], ln["bytes_out"]), (0, 0))
        self.assertIsNone(ln["first_byte_ms"])

    def test_no_backend(self):
        b = self.backend()
        self.start([b.port])
        self.assertEqual(self.api.post("/api/v1/pools/p/backends/b0/disable")[0], 200)
        me = self.refused_session()
        self.assertIsNotNone(me)
        ln = self.line_for(me)
        self.check_line(ln, "no_backend")
        self.assertEqual(ln["retries"], 0)

    def test_limit_when_this_host_has_no_fd_for_the_dial(self):
        """A session whose dial cannot get a socket (EMFILE: local_errors) is
        closed for a limit of this host, not counted as connect_failed. The
        fd limit is chosen so an odd number of fds is free: sessions take
        two each, and the last one accepted has none left for its dial."""
        import resource
        b = self.async_backend("echo")
        cfg = simple_config([b.port], pollers=1)
        cfg["log"] = {"connections": True, "path": self.path}
        self.port = listen_port(cfg)
        probe = Sluice(cfg)  # how many fds sluice holds when idle, for this build
        try:
            base = probe.fd_count()
        finally:
            probe.stop()
        limit = base + 21  # 21 free: ten sessions, then an accept with no fd to dial

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        proc = self.sluice(cfg, preexec_fn=low_limit)
        api = Api(cfg)
        held, limited = [], None
        for i in range(15):
            c = socket.socket()
            c.bind(("127.0.0.1", 0))
            me = c.getsockname()[1]
            c.settimeout(5)
            try:
                c.connect(("127.0.0.1", self.port))
                c.sendall(b"%d." % i)
                if recv_exactly(c, len(b"%d." % i)) == b"%d." % i:
                    held.append(c)
                    continue
            except (ConnectionResetError, socket.timeout, BrokenPipeError):
                pass
            c.close()
            limited = me
            break
        for c in held:
            c.close()
        self.assertIsNotNone(limited, f"every session was served ({len(held)})")
        ln = self.line_for(limited)
        self.assertEqual(ln["cause"], "limit")
        self.assertIsNone(ln["backend"])
        self.assertGreaterEqual(poller_sum(api, "local_errors"), 1)
        self.assertIsNone(proc.proc.poll())

    def held(self, b):
        c = connect(self.port)
        c.sendall(b"k")
        self.assertEqual(c.recv(1), b"k")
        return c

    def test_drain_deadline(self):
        b = self.backend()
        self.start([b.port])
        c = self.held(b)
        me = c.getsockname()[1]
        self.assertEqual(self.api.post("/api/v1/pools/p/backends/b0/drain",
                                       {"deadline_ms": 200})[0], 200)
        c.settimeout(15)
        with self.assertRaises(ConnectionResetError):
            recv_all(c)
        c.close()
        ln = self.line_for(me)
        self.check_line(ln, "drain_deadline", b.port)
        self.assertEqual((ln["bytes_in"], ln["bytes_out"]), (1, 1))

    def test_disabled_with_close(self):
        b = self.backend()
        self.start([b.port])
        c = self.held(b)
        me = c.getsockname()[1]
        self.assertEqual(self.api.post("/api/v1/pools/p/backends/b0/disable", {"close": True})[0],
                         200)
        c.settimeout(15)
        with self.assertRaises(ConnectionResetError):
            recv_all(c)
        c.close()
        self.check_line(self.line_for(me), "disabled", b.port)

    def test_shutdown_after_grace(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["log"] = {"connections": True, "path": self.path}
        cfg["shutdown_grace_ms"] = 200
        self.port = listen_port(cfg)
        proc = Sluice(cfg)  # stopped here, not by tearDown
        try:
            c = self.held(b)
            me = c.getsockname()[1]
        finally:
            self.assertEqual(proc.stop(), 0)  # the grace ends with the session open
        c.close()
        # Written before the process exited: no wait needed.
        lines = [ln for ln in read_lines(self.path) if ln["client"] == f"127.0.0.1:{me}"]
        self.assertEqual(len(lines), 1, lines)
        self.check_line(lines[0], "shutdown", b.port)

    # --- periodic lines, reopen, stdout, the ring -----------------------------------------

    def test_flush_lines_for_long_sessions(self):
        b = self.backend()
        self.start([b.port], log={"flush_interval_ms": 100})
        c = connect(self.port)
        me = c.getsockname()[1]
        sent = 0
        flushes = []

        def enough_flushes():
            nonlocal sent
            c.sendall(b"abc")
            self.assertEqual(recv_exactly(c, 3), b"abc")
            sent += 3
            flushes[:] = [ln for ln in read_lines(self.path)
                          if ln["client"] == f"127.0.0.1:{me}" and ln["event"] == "flush"]
            return len(flushes) >= 3
        wait_until(enough_flushes, timeout=20, step=0.05, what="3 flush lines")
        c.shutdown(socket.SHUT_WR)
        recv_all(c)
        c.close()
        close = self.line_for(me)
        self.assertEqual(close["cause"], "client_eof")
        self.assertEqual((close["bytes_in"], close["bytes_out"]), (sent, sent))
        for ln in flushes:
            self.assertEqual(set(ln), FIELDS)
            self.assertIsNone(ln["cause"])
            self.assertEqual(ln["backend"], "b0")
        # Bytes so far: they only grow, up to the close line's.
        seen = [ln["bytes_in"] for ln in flushes] + [close["bytes_in"]]
        self.assertEqual(seen, sorted(seen))
        # No flush line for a short session.
        c2 = connect(self.port)
        me2 = c2.getsockname()[1]
        c2.shutdown(socket.SHUT_WR)
        recv_all(c2)
        c2.close()
        self.line_for(me2)
        self.assertFalse([ln for ln in read_lines(self.path)
                          if ln["client"] == f"127.0.0.1:{me2}" and ln["event"] == "flush"])

    def one_session(self):
        c = connect(self.port)
        me = c.getsockname()[1]
        c.sendall(b"x")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(c), b"x")
        c.close()
        return me

    def test_sigusr1_reopens_after_rename(self):
        b = self.backend()
        self.start([b.port])
        first = self.one_session()
        self.line_for(first)
        rotated = self.path + ".1"
        os.rename(self.path, rotated)  # as logrotate does, before its postrotate
        self.proc.signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(self.path), what="the log to be reopened")
        wait_until(lambda: "connection log reopened" in self.proc.output(), what="the reopen")
        size = os.path.getsize(rotated)
        ports = [self.one_session() for _ in range(5)]
        for p in ports:
            self.line_for(p)  # in the new file
        self.assertEqual(os.path.getsize(rotated), size)  # the old one stopped growing
        with open(rotated) as f:
            self.assertEqual([json.loads(x)["client"] for x in f], [f"127.0.0.1:{first}"])

    @unittest.skipUnless(shutil.which("logrotate"), "logrotate not installed (scripts/deps.sh)")
    def test_the_shipped_logrotate_snippet_rotates(self):
        """Real logrotate with deploy/logrotate/sluice, pointed at this test's
        file and this sluice's pid only (never every sluice on the machine)."""
        b = self.backend()
        self.start([b.port])
        first = self.one_session()
        self.line_for(first)
        with open(LOGROTATE_SNIPPET) as f:
            conf = f.read()
        self.assertIn("kill -USR1", conf)
        conf = conf.replace("/var/log/sluice/connections.log", self.path)
        conf = conf.replace("$(pidof sluice)", str(self.proc.proc.pid))
        conf = re.sub(r"^\s*create .*$", "    create 0640", conf, flags=re.M)  # no user "sluice" here
        cpath = os.path.join(self.dir, "logrotate.conf")
        with open(cpath, "w") as f:
            f.write(conf)
        os.chmod(cpath, 0o644)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(self.dir, "state"), cpath],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rotated = self.path + ".1"
        self.assertTrue(os.path.exists(rotated), os.listdir(self.dir))
        wait_until(lambda: "connection log reopened" in self.proc.output(), what="the reopen")
        size = os.path.getsize(rotated)
        later = self.one_session()
        self.line_for(later)  # in the new file at the path
        self.assertEqual(os.path.getsize(rotated), size)

    def test_stdout_by_default_and_off_by_default(self):
        b = self.backend()
        cfg = simple_config([b.port])
        cfg["log"] = {"connections": True}
        self.port = listen_port(cfg)
        proc = self.sluice(cfg)
        me = self.one_session()
        want = f'"client":"127.0.0.1:{me}"'
        wait_until(lambda: want in proc.output(), what="the line on stdout")
        line = [x for x in proc.output().splitlines() if want in x][0]
        self.assertEqual(json.loads(line)["cause"], "client_eof")
        # Off unless asked: no line, no ring.
        cfg2 = simple_config([b.port])
        self.port = listen_port(cfg2)
        proc2 = self.sluice(cfg2)
        me2 = self.one_session()
        api2 = Api(cfg2)
        wait_until(lambda: poller_sum(api2, "active_connections") == 0, what="the session to end")
        self.assertNotIn(f"127.0.0.1:{me2}", proc2.output())
        self.assertEqual(poller_sum(api2, "log_lines"), 0)

    def test_full_ring_drops_counts_and_never_stalls(self):
        b = self.async_backend("echo")
        self.start([b.port], log={"ring_size": 1}, pollers=1)
        n = 200
        socks = []
        for i in range(n):
            s = connect(self.port)
            socks.append(s)
        for i, s in enumerate(socks):  # every session relays
            s.sendall(b"%d." % i)
        for i, s in enumerate(socks):
            want = b"%d." % i
            self.assertEqual(recv_exactly(s, len(want)), want)
        for s in socks:  # 200 closes at once against a one-line ring
            reset_close(s)
        wait_until(lambda: poller_sum(self.api, "active_connections") == 0, timeout=30,
                   what="every session to end")
        lines, dropped = poller_sum(self.api, "log_lines"), poller_sum(self.api, "log_dropped")
        self.assertEqual(lines + dropped, n)
        self.assertGreater(dropped, 0)
        wait_until(lambda: len(read_lines(self.path)) == lines, what="every kept line written")
        # Traffic went on: a new session is served at once.
        self.assertEqual(self.one_session() > 0, True)
        st, text = self.api.get("/metrics")
        self.assertEqual(st, 200)
        m = re.search(r"^sluice_poller_log_dropped_total\{[^}]*\} (\d+)", text, re.M)
        self.assertIsNotNone(m, "sluice_poller_log_dropped_total")
        self.assertIn("sluice_poller_log_lines_total", text)

    def test_bad_config(self):
        b = self.backend()
        from harness import SLUICE
        for log, err in [({"connections": "yes"}, "log.connections"),
                         ({"ring_size": 0}, "log.ring_size"),
                         ({"flush_interval_ms": -1}, "log.flush_interval_ms"),
                         ({"path": ""}, "log.path"),
                         ({"color": True}, "log"),
                         ]:
            cfg = simple_config([b.port])
            cfg["log"] = log
            p = os.path.join(self.dir, "bad.json")
            with open(p, "w") as f:
                json.dump(cfg, f)
            r = subprocess.run([SLUICE, "--check", "-c", p], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1, log)
            self.assertIn(err, r.stderr + r.stdout)
        # A path that cannot be opened stops the start, naming it.
        cfg = simple_config([b.port])
        cfg["log"] = {"connections": True, "path": os.path.join(self.dir, "no", "such", "x.log")}
        p = os.path.join(self.dir, "c.json")
        with open(p, "w") as f:
            json.dump(cfg, f)
        r = subprocess.run([SLUICE, "-c", p], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("log.path", r.stderr)


if __name__ == "__main__":
    unittest.main()
