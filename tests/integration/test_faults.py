"""Fault injection against the real binary: a backend SIGKILLed mid-stream,
a backend that accepts and never answers, slowloris, file-descriptor
exhaustion, slow readers, the global buffer memory cap, and a graceful stop
under streaming load. Each asserts figures, not just survival."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, cpu_seconds, free_port, listen_port, payload,
                     raise_nofile, recv_all, sha, simple_config, wait_until)
from test_admin import Api

MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


def start_echo_process(tag):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "harness.py"), "echo", tag],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    return p, port


class Faults(ProxyTest):
    def setUp(self):
        super().setUp()
        raise_nofile()
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        super().tearDown()

    def test_backend_sigkilled_while_100_sessions_stream(self):
        pa, port_a = start_echo_process("A")
        pb, port_b = start_echo_process("B")
        self.procs += [pa, pb]
        cfg = simple_config([port_a, port_b], retries=2, max_fails=1, fail_window_ms=60000)
        self.sluice(cfg)
        lp = listen_port(cfg)
        total, chunk = 2 * MIB, 16 * 1024  # 128 chunks, 25 ms apart: >3 s per session
        killed = threading.Event()
        killed_at = [0.0]
        results = {}

        def stream(i):
            s = connect(lp, timeout=30)
            tag = s.recv(1)
            data = payload(i, total)
            got = bytearray()

            def reader():
                try:
                    while True:
                        b = s.recv(1 << 16)
                        if not b:
                            break
                        got.extend(b)
                except OSError:
                    pass
                results[i]["ended"] = time.monotonic()
            results[i] = {"tag": tag}
            t = threading.Thread(target=reader)
            t.start()
            try:
                for off in range(0, total, chunk):
                    s.sendall(data[off:off + chunk])
                    time.sleep(0.025)  # slow enough to be mid-stream at the kill
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            t.join(60)
            s.close()
            results[i]["ok"] = sha(bytes(got)) == sha(data)

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        wait_until(lambda: len(results) == 100, what="100 sessions streaming")
        time.sleep(0.2)
        pa.send_signal(signal.SIGKILL)
        pa.wait(10)
        killed_at[0] = time.monotonic()
        # New sessions right after the kill all succeed, on the survivor.
        for i in range(20):
            s = connect(lp)
            self.assertEqual(s.recv(1), b"B", f"new session {i}")
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
            s.close()
        for t in threads:
            t.join(120)
        on_a = [r for r in results.values() if r["tag"] == b"A"]
        on_b = [r for r in results.values() if r["tag"] == b"B"]
        self.assertGreater(len(on_a), 20)
        self.assertGreater(len(on_b), 20)
        for r in on_a:  # cut short, and promptly
            self.assertFalse(r["ok"])
            self.assertLess(r["ended"] - killed_at[0], 2.0)
        for r in on_b:
            self.assertTrue(r["ok"], "a session on the surviving backend lost bytes")

    def test_backend_that_accepts_and_never_answers_hits_idle_timeout(self):
        silent = self.async_backend("silent")
        cfg = simple_config([silent.port], idle_timeout_ms=600)
        self.sluice(cfg)
        s = connect(listen_port(cfg))
        s.sendall(b"hello?")
        t0 = time.monotonic()
        s.settimeout(20)
        self.assertEqual(recv_all(s), b"")
        took = time.monotonic() - t0
        s.close()
        self.assertGreaterEqual(took, 0.55)
        self.assertLess(took, 20)

    def test_slowloris_does_not_starve_a_normal_client(self):
        backend = self.async_backend("echo")
        cfg = simple_config([backend.port], pollers=2)
        self.sluice(cfg)
        lp = listen_port(cfg)
        loris = []
        for i in range(1500):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", lp))
            except BlockingIOError:
                pass
            loris.append(s)
        stop = threading.Event()

        def trickle():
            k = 0
            while not stop.is_set():
                for s in loris[k % 3::3]:  # a third trickle a byte each round, the rest stay silent
                    try:
                        s.send(b"x")
                        s.recv(4096)
                    except OSError:
                        pass
                k += 1
                time.sleep(0.05)
        t = threading.Thread(target=trickle)
        t.start()
        try:
            time.sleep(0.5)
            c = connect(lp)
            lat = []
            for i in range(2000):
                msg = b"rt%06d" % i
                t0 = time.perf_counter()
                c.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    got += c.recv(64)
                lat.append(time.perf_counter() - t0)
                self.assertEqual(got, msg)
            c.close()
        finally:
            stop.set()
            t.join(30)
            for s in loris:
                s.close()
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)]
        self.assertLess(p99, 0.050, f"p99 {p99 * 1000:.1f} ms with 1500 slow clients")

    def test_fd_exhaustion_keeps_it_alive_without_spinning(self):
        self.fd_exhaustion("main")

    def test_fd_exhaustion_with_shared_accept(self):
        """accept "shared" pauses by unwatching: its exclusive registration
        cannot be modified, and must come back after the pause."""
        self.fd_exhaustion("shared")

    def fd_exhaustion(self, accept):
        backend = self.async_backend("echo")
        cfg = simple_config([backend.port], pollers=1)
        cfg["accept"] = accept

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        sl = self.sluice(cfg, preexec_fn=low_limit)
        lp = listen_port(cfg)
        clients = []
        for i in range(600):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", lp))
            except BlockingIOError:
                pass
            clients.append(s)
        wait_until(lambda: sl.fd_count() >= 240, timeout=20, what="sluice at its fd limit")
        time.sleep(0.5)
        c0, t0 = cpu_seconds(sl.proc.pid), time.monotonic()
        time.sleep(2.0)
        cpu = (cpu_seconds(sl.proc.pid) - c0) / (time.monotonic() - t0)
        self.assertLess(cpu, 0.20, f"sluice used {cpu:.0%} of a core at its fd limit")
        self.assertIsNone(sl.proc.poll())
        self.assertIn("pausing accepts", sl.output())
        for s in clients:
            s.close()

        def served():
            try:
                s = connect(lp, timeout=2)
                s.sendall(b"back")
                ok = s.recv(4) == b"back"
                s.close()
                return ok
            except OSError:
                return False
        wait_until(served, timeout=30, step=0.2, what="serving again once fds are free")
        api = Api(cfg)
        b = api.get("/api/v1/pools/p/backends/b0")[1]
        self.assertEqual(b["state"], "up")  # fd exhaustion is not the backend's fault

    def test_slow_reader_keeps_rss_bounded_and_bytes_exact(self):
        total = 200 * MIB
        fire = self.async_backend("firehose", total=total)
        cfg = simple_config([fire.port], buffer_high_watermark=256 * 1024,
                            buffer_low_watermark=64 * 1024)
        sl = self.sluice(cfg)
        rss0 = sl.rss_kib()
        s = connect(listen_port(cfg), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
        import hashlib
        h, got, peak = hashlib.sha256(), 0, 0
        while True:
            b = s.recv(512 * 1024)
            if not b:
                break
            h.update(b)
            got += len(b)
            if got % (8 * MIB) < len(b):
                peak = max(peak, sl.rss_kib() - rss0)
            time.sleep(0.001)  # slow: the backend is far faster than this reader
        s.close()
        self.assertEqual(got, total)
        self.assertEqual(h.hexdigest(), sha(payload(0, total)))
        self.assertLess(peak, 16 * 1024, f"RSS grew {peak} KiB for one slow reader")

    def test_buffer_memory_limit_caps_all_sessions(self):
        per = 8 * MIB
        fire = self.async_backend("firehose", total=per)
        cfg = simple_config([fire.port], pollers=2, buffer_high_watermark=1024 * 1024,
                            buffer_low_watermark=256 * 1024)
        cfg["buffer_memory_limit"] = 2 * MIB
        self.sluice(cfg)
        api = Api(cfg)
        clients = []
        for i in range(20):
            c = connect(listen_port(cfg), timeout=60)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            clients.append(c)
        wait_until(lambda: sum(p["memory_starved"] for p in api.get("/api/v1/pollers")[1]) > 0,
                   timeout=20, what="sessions held back by the cap")
        time.sleep(0.5)
        pollers = api.get("/api/v1/pollers")[1]
        in_use = sum(p["blocks_in_use"] for p in pollers)
        limit = sum(p["blocks_limit"] for p in pollers if p["role"] == "sub")
        self.assertLessEqual(in_use, limit)
        self.assertLessEqual(in_use * 16 * 1024, 2 * MIB + 64 * 1024)
        # Without the cap 20 x 1 MiB watermarks would hold up to 20 MiB.
        got = {}

        def drain(i, c):
            data = recv_all(c)
            got[i] = sha(data)
            lens[i] = len(data)
        lens = {}
        threads = [threading.Thread(target=drain, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for c in clients:
            c.close()
        # Each session's bytes are one of the firehose's per-connection payloads.
        want = {sha(payload(i, per)) for i in range(20)}
        self.assertEqual(sorted(lens.values()), [per] * 20)
        self.assertEqual(set(got.values()), want)

    def test_graceful_stop_with_50_streaming_sessions(self):
        backend = self.async_backend("echo")
        cfg = simple_config([backend.port], pollers=2)
        cfg["shutdown_grace_ms"] = 30000
        sl = self.sluice(cfg)
        lp = listen_port(cfg)
        total = 4 * MIB
        ok = {}
        started = threading.Barrier(51)

        def stream(i):
            s = connect(lp, timeout=60)
            data = payload(i, total)
            got = bytearray()
            t = threading.Thread(target=lambda: got.extend(recv_all(s)))
            t.start()
            s.sendall(data[:64 * 1024])
            started.wait(30)
            for off in range(64 * 1024, total, 64 * 1024):
                s.sendall(data[off:off + 64 * 1024])
                time.sleep(0.002)
            s.shutdown(socket.SHUT_WR)
            t.join(120)
            s.close()
            ok[i] = sha(bytes(got)) == sha(data)

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        started.wait(30)
        t0 = time.monotonic()
        sl.signal(signal.SIGTERM)
        wait_until(lambda: "no longer accepting" in sl.output(), what="shutdown begun")
        with self.assertRaises(OSError):
            connect(lp, timeout=2).recv(1)
        for t in threads:
            t.join(120)
        sl.proc.wait(30)
        self.assertEqual(sl.proc.returncode, 0)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(len(ok), 50)
        self.assertTrue(all(ok.values()), "a session lost bytes during the graceful stop")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop privileges")
    def test_drops_privileges_after_binding(self):
        backend = self.async_backend("echo")
        cfg = simple_config([backend.port])
        cfg["user"] = "nobody"
        sl = self.sluice(cfg)
        with open(f"/proc/{sl.proc.pid}/status") as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        import pwd
        self.assertEqual(set(uids), {str(pwd.getpwnam("nobody").pw_uid)})
        self.assertIn("dropped privileges", sl.output())
        s = connect(listen_port(cfg))
        s.sendall(b"hi")
        self.assertEqual(s.recv(2), b"hi")
        s.close()
        self.assertEqual(Api(cfg).get("/api/v1/stats")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
