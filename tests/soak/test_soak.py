"""Soak and leak checks against the real binary.

Soak (run on the ASan+UBSan build): short sessions churned while idle ones
are held, then everything closed: the open-fd count returns to where it
started, RSS growth is bounded, sluice exits cleanly with no sanitizer
report. Profiles: SLUICE_SOAK=short (CI: 20k churned, 2k idle; default) or
long (100k churned, 5k idle).

Valgrind: a short scenario (sessions, admin calls, a drain, a graceful
stop) under `valgrind --error-exitcode=1`, which catches what ASan misses
(uninitialised reads). Uses the release build (RelWithDebInfo)."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import (ProxyTest, Sluice, connect, free_port, listen_port, raise_nofile,
                     simple_config, wait_until)
from test_admin import Api

PROFILES = {"short": (20000, 2000), "long": (100000, 5000)}


class Soak(ProxyTest):
    def test_churn_and_idle_leave_no_fd_or_memory_behind(self):
        churn, idle = PROFILES[os.environ.get("SLUICE_SOAK", "short")]
        raise_nofile()
        backend = self.async_backend("echo")
        cfg = simple_config([backend.port], pollers=2)
        sl = self.sluice(cfg, extra_env={
            "ASAN_OPTIONS": "detect_leaks=1:quarantine_size_mb=16:exitcode=66"})
        lp = listen_port(cfg)
        fds0 = sl.fd_count()
        errors = []

        def churner(n, k):
            for i in range(n):
                msg = b"s%d-%d" % (k, i)
                try:
                    s = connect(lp)
                    s.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        b = s.recv(64)
                        if not b:
                            break
                        got += b
                    if got != msg:
                        errors.append(f"bad echo {msg!r}: {got!r}")
                    s.close()
                except OSError as e:
                    errors.append(repr(e))

        def churn_all(total):
            ts = [threading.Thread(target=churner, args=(total // 8, k)) for k in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(1800)

        churn_all(min(2000, churn))  # warm-up: caches and allocator settle
        rss0 = sl.rss_kib()
        held = []
        for i in range(idle):
            s = connect(lp)
            s.sendall(b"i")
            held.append(s)
        for s in held:
            self.assertEqual(s.recv(1), b"i")
        wait_until(lambda: sl.fd_count() >= fds0 + 2 * idle, what="idle sessions established")
        churn_all(churn)
        rss_peak = sl.rss_kib()
        for s in held:
            s.close()
        wait_until(lambda: sl.fd_count() == fds0, timeout=60,
                   what=f"fd count back to {fds0} (now {sl.fd_count()})")
        stats = Api(cfg).get("/api/v1/pollers")[1]
        self.assertEqual(sum(p["active_connections"] for p in stats), 0)
        self.assertEqual(sum(p["blocks_in_use"] for p in stats), 0)
        self.assertGreaterEqual(sum(p["total_connections"] for p in stats), churn + idle)
        growth = sl.rss_kib() - rss0
        print(f"\nsoak: {churn} churned + {idle} idle; RSS {rss0} KiB -> peak {rss_peak} KiB "
              f"-> {sl.rss_kib()} KiB after close", file=sys.stderr)
        self.assertEqual(errors, [])
        # ASan's quarantine is capped at 16 MiB above; the rest must not grow.
        self.assertLess(growth, 64 * 1024, f"RSS grew {growth} KiB after everything closed")


@unittest.skipUnless(shutil.which("valgrind"), "valgrind not installed")
class Valgrind(ProxyTest):
    def test_short_scenario_is_clean_under_valgrind(self):
        backend = self.async_backend("echo")
        cfg = simple_config([backend.port], pollers=2)
        cfg["shutdown_grace_ms"] = 5000
        # A second listener relays through splice: pipes, the pipe cache.
        cfg["listeners"].append({"name": "ls", "listen": f"127.0.0.1:{free_port()}",
                                 "pool": "ps"})
        cfg["pools"].append({"name": "ps", "zero_copy": "splice", "backends": [
            {"name": "b0", "address": f"127.0.0.1:{backend.port}"}]})
        import json
        import tempfile
        d = tempfile.mkdtemp()
        path_log = os.path.join(d, "valgrind.log")
        cpath = os.path.join(d, "c.json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        binary = os.environ.get("SLUICE_BIN_RELEASE") or os.environ.get("SLUICE_BIN")
        proc = subprocess.Popen(
            ["valgrind", "--error-exitcode=1", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--track-fds=no", f"--log-file={path_log}",
             binary, "-c", cpath], stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(d, "sluice.err"), "wb"))
        try:
            lp = listen_port(cfg)

            def up():
                if proc.poll() is not None:  # e.g. a port another process took meanwhile
                    with open(os.path.join(d, "sluice.err")) as f:
                        raise AssertionError(f"sluice under valgrind exited {proc.returncode} "
                                             f"before serving:\n{f.read()}")
                try:
                    s = connect(lp, timeout=2)
                    s.sendall(b"x")
                    ok = s.recv(1) == b"x"
                    s.close()
                    return ok
                except OSError:
                    return False
            wait_until(up, timeout=120, step=0.2, what="sluice under valgrind")
            for i in range(100):
                s = connect(lp if i % 2 else listen_port(cfg, 1))
                s.sendall(b"hello %d" % i)
                self.assertEqual(s.recv(64), b"hello %d" % i)
                if i % 3:
                    s.shutdown(socket.SHUT_WR)
                s.close()
            spliced = connect(listen_port(cfg, 1))  # open, with a pipe-relayed echo, at the stop
            spliced.sendall(b"s" * 100000)
            got = b""
            while len(got) < 100000:
                chunk = spliced.recv(65536)
                self.assertTrue(chunk)
                got += chunk
            api = Api(cfg)
            self.assertEqual(api.get("/api/v1/stats")[0], 200)
            self.assertEqual(api.get("/metrics")[0], 200)
            self.assertEqual(api.post("/api/v1/pools/p/backends/b0/drain?wait=5")[0], 200)
            self.assertEqual(api.post("/api/v1/pools/p/backends/b0/enable")[0], 200)
            self.assertEqual(api.call("PATCH", "/api/v1/pools/p/backends/b0",
                                      body={"weight": 2})[0], 200)
            held = connect(lp)
            held.sendall(b"k")
            self.assertEqual(held.recv(1), b"k")
            proc.send_signal(15)
            held.close()
            spliced.close()
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with open(path_log) as f:
            report = f.read()
        self.assertEqual(proc.returncode, 0, report[-6000:])
        self.assertIn("ERROR SUMMARY: 0 errors", report, report[-6000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
