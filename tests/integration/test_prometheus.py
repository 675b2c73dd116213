"""A real Prometheus (Debian's `prometheus`) scrapes sluice through the
shipped example config (deploy/prometheus/prometheus.yml, with the admin
token, a 1 s interval and this test's ports): once it has scraped, its HTTP
API answers a backend's sluice_backend_active_connections and a
histogram_quantile over sluice_backend_connect_seconds_bucket, both with the
pool and backend labels. Skipped only when the binary is missing and CI is
not set; under CI=true a missing prometheus fails."""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, free_port, listen_port, recv_exactly, simple_config,
                     start_redis, wait_until)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLE = os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")
TOKEN = "prom-test-token"
PROMETHEUS = shutil.which("prometheus")


def prom_query(base, q):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read().decode())
    if body.get("status") != "success":
        raise AssertionError(f"query {q!r}: {body}")
    return body["data"]["result"]


class Prometheus(ProxyTest):
    def setUp(self):
        super().setUp()
        if not PROMETHEUS:
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                self.fail("prometheus is not installed (CI must run this test: scripts/deps.sh)")
            self.skipTest("prometheus is not installed (apt-get install prometheus)")
        self.dir = tempfile.mkdtemp(prefix="sluice-prom-")
        self.procs = []
        self.stop_traffic = threading.Event()

    def tearDown(self):
        self.stop_traffic.set()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
        super().tearDown()

    def scrape_config(self, admin_addr):
        """The shipped example, pointed at this test's sluice, every second."""
        with open(EXAMPLE) as f:
            text = f.read()
        token_file = os.path.join(self.dir, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        for old, new in (("scrape_interval: 15s", "scrape_interval: 1s"),
                         ("evaluation_interval: 15s", "evaluation_interval: 1s"),
                         ("/etc/prometheus/sluice-admin-token", token_file),
                         ('"127.0.0.1:9090"', f'"{admin_addr}"')):
            self.assertIn(old, text, f"the example config changed: {old!r} is gone")
            text = text.replace(old, new)
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def traffic(self, port):
        """Redis PINGs through sluice, a new connection each, until the test ends."""
        n = 0
        while not self.stop_traffic.is_set() and n < 100000:
            n += 1
            try:
                s = connect(port)
                s.sendall(b"PING\r\n")
                recv_exactly(s, 7)
                s.close()
            except OSError:
                pass
            self.stop_traffic.wait(0.05)

    def test_prometheus_scrapes_and_queries_sluice(self):
        redis_port = free_port()
        self.procs.append(start_redis(redis_port, self.dir))
        cfg = simple_config([redis_port])
        cfg["admin"]["token"] = TOKEN
        self.sluice(cfg)
        port = listen_port(cfg)
        # One session held open: an active connection for the gauge.
        held = connect(port)
        held.sendall(b"PING\r\n")
        self.assertEqual(recv_exactly(held, 7), b"+PONG\r\n")
        t = threading.Thread(target=self.traffic, args=(port,), daemon=True)
        t.start()
        web = f"127.0.0.1:{free_port()}"
        log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.procs.append(subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.scrape_config(cfg["admin"]["listen"]),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=" + web, "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT))
        base = "http://" + web

        def logs():
            log.flush()
            with open(log.name, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]

        def query(q):
            if self.procs[-1].poll() is not None:
                raise AssertionError("prometheus exited:\n" + logs())
            try:
                return prom_query(base, q)
            except (OSError, ValueError):
                return None  # not listening yet

        try:
            up = wait_until(lambda: [r for r in (query('up{job="sluice"}') or [])
                                     if r["value"][1] == "1"], timeout=90, step=0.5,
                            what="prometheus to scrape sluice")
            self.assertEqual(len(up), 1)
            active = wait_until(lambda: query(
                'sluice_backend_active_connections{pool="p",backend="b0"}'),
                timeout=60, step=0.5, what="the active_connections gauge")
            self.assertEqual(len(active), 1)
            self.assertEqual((active[0]["metric"]["pool"], active[0]["metric"]["backend"]),
                             ("p", "b0"))
            self.assertGreaterEqual(float(active[0]["value"][1]), 1)  # the held session
            # A rate needs two scrapes with connects between them: wait for a number.
            q = ("histogram_quantile(0.9, sum by (pool, backend, le) "
                 "(rate(sluice_backend_connect_seconds_bucket[10s])))")
            p90 = wait_until(lambda: [r for r in (query(q) or [])
                                      if math.isfinite(float(r["value"][1]))],
                             timeout=60, step=0.5, what="a connect-time quantile")
        except AssertionError as e:
            raise AssertionError(f"{e}\nprometheus log:\n{logs()}")
        finally:
            held.close()
            log.close()
        self.assertEqual(len(p90), 1)
        self.assertEqual((p90[0]["metric"]["pool"], p90[0]["metric"]["backend"]), ("p", "b0"))
        self.assertGreater(float(p90[0]["value"][1]), 0)


if __name__ == "__main__":
    unittest.main()
