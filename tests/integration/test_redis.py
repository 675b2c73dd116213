"""A real RPC service behind sluice: two redis-servers (Debian's package),
driven by redis-cli and a bounded redis-benchmark run through the proxy."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, admin_request, free_port, listen_port, simple_config,
                     start_redis)




@unittest.skipUnless(shutil.which("redis-server") and shutil.which("redis-benchmark"),
                     "redis-server/redis-tools not installed")
class Redis(ProxyTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="sluice-redis-")
        self.ports = [free_port(), free_port()]
        self.redis = [start_redis(p, self.tmp) for p in self.ports]

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for r in self.redis:
                r.terminate()
                r.wait(10)

    def cli(self, port, *args):
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                              text=True, timeout=30).stdout.strip()

    def test_ping_set_get_through_sluice(self):
        cfg = simple_config(self.ports)
        self.sluice(cfg)
        port = listen_port(cfg)
        self.assertEqual(self.cli(port, "ping"), "PONG")
        # One connection per redis-cli call: round robin alternates backends.
        for i in range(4):
            self.assertEqual(self.cli(port, "set", f"k{i}", f"v{i}"), "OK")
        counts = [int(self.cli(p, "dbsize")) for p in self.ports]
        self.assertEqual(counts, [2, 2])

    def test_benchmark_every_request_answered(self, io=None):
        cfg = simple_config(self.ports)
        if io:
            cfg["io"] = io
        sl = self.sluice(cfg)
        if io:  # really in use, not a silent fallback
            ios = {p["io"] for p in admin_request(cfg, "GET", "/api/v1/pollers")[1]}
            self.assertEqual(ios, {io}, sl.output())
        port = listen_port(cfg)
        for extra in ([], ["-P", "16"]):
            p = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", "20000",
                                "-c", "50", "-q", *extra], capture_output=True, text=True,
                               timeout=240)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("rror", p.stdout + p.stderr)
            lines = [l for l in p.stdout.replace("\r", "\n").splitlines()
                     if "requests per second" in l]
            self.assertEqual(len(lines), 2, p.stdout)
        # Every SET landed on a backend (keys spread over both).
        keys = sum(int(self.cli(p, "dbsize")) for p in self.ports)
        self.assertGreaterEqual(keys, 1)

    def test_benchmark_every_request_answered_through_io_uring(self):
        self.test_benchmark_every_request_answered(io="io_uring")


if __name__ == "__main__":
    unittest.main(verbosity=2)
