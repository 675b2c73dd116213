"""Health checks against real redis-servers: SIGKILL one of three under load
(it goes down, clients of the others see no error, new sessions avoid it),
restart it (up again after `rise` checks, receives sessions), send/expect
PING → +PONG, a backend that answers wrongly, and passive max_fails."""

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, free_port, listen_port, simple_config, start_redis,
                     wait_until)
from test_admin import Api






def redis_port_of(sock):
    """Which redis-server this connection reached (its INFO says)."""
    sock.sendall(b"INFO server\r\n")
    data = b""
    while b"\r\n\r\n" not in data[-8:] and len(data) < 65536:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if data.startswith(b"$"):
            size = int(data[1:data.index(b"\r\n")])
            if len(data) >= data.index(b"\r\n") + 2 + size + 2:
                break
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("tcp_port:"):
            return int(line.split(":")[1])
    raise AssertionError("no tcp_port in INFO")


def ping_once(port):
    s = connect(port, timeout=5)
    try:
        s.sendall(b"PING\r\n")
        return s.recv(16) == b"+PONG\r\n"
    finally:
        s.close()


HC = {"interval_ms": 200, "timeout_ms": 150, "rise": 2, "fall": 3,
      "send": "PING\r\n", "expect": "+PONG"}


@unittest.skipUnless(shutil.which("redis-server"), "redis-server not installed")
class Health(ProxyTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="sluice-health-")
        self.redis = {}

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for p in self.redis.values():
                if p.poll() is None:
                    p.terminate()
                    p.wait(10)

    def backend_state(self, api, name):
        return api.get(f"/api/v1/pools/p/backends/{name}")[1]

    def test_sigkill_one_of_three_under_load_then_restart(self):
        ports = [free_port() for _ in range(3)]
        for p in ports:
            self.redis[p] = start_redis(p, self.tmp)
        cfg = simple_config(ports, retries=2, health_check=HC)
        self.sluice(cfg)
        api = Api(cfg)
        lp = listen_port(cfg)
        wait_until(lambda: all(self.backend_state(api, f"b{i}")["health"]["checks_total"] >= 1
                               for i in range(3)), what="first checks")
        # Persistent clients, spread by round robin; note where each landed.
        clients = []
        for _ in range(6):
            s = connect(lp)
            clients.append((s, redis_port_of(s)))
        victim = ports[1]
        survivors = [c for c in clients if c[1] != victim]
        self.assertGreaterEqual(len(survivors), 2)
        stop = threading.Event()
        errors, new_ok, fresh_errors = [], [0], []

        def persistent(s):
            while not stop.is_set():
                try:
                    s.sendall(b"PING\r\n")
                    if s.recv(16) != b"+PONG\r\n":
                        errors.append("bad reply")
                except OSError as e:
                    errors.append(repr(e))
                    return
                time.sleep(0.005)

        def fresh():
            while not stop.is_set():
                try:
                    if ping_once(lp):
                        new_ok[0] += 1
                    else:
                        fresh_errors.append((time.monotonic(), "bad reply"))
                except OSError as e:
                    fresh_errors.append((time.monotonic(), repr(e)))

        threads = [threading.Thread(target=persistent, args=(s,)) for s, _ in survivors]
        threads += [threading.Thread(target=fresh) for _ in range(3)]
        for t in threads:
            t.start()
        killed_at = float("inf")
        try:
            time.sleep(0.3)
            self.redis[victim].send_signal(signal.SIGKILL)
            self.redis[victim].wait(10)
            killed_at = time.monotonic()
            wait_until(lambda: self.backend_state(api, "b1")["state"] == "down", timeout=10,
                       what="b1 down")
            took = time.monotonic() - killed_at
            self.assertLess(took, 10)
            time.sleep(0.5)  # load continues on the two survivors
            b1 = self.backend_state(api, "b1")
            self.assertEqual(b1["health"]["status"], "failing")
            self.assertIn(b1["health"]["last_check"], ("refused", "timeout", "closed"))
            total_down = b1["total_connections"]
            time.sleep(0.5)
            self.assertEqual(self.backend_state(api, "b1")["total_connections"], total_down)
            # Restart: up again after `rise` passing checks, and it gets sessions.
            self.redis[victim] = start_redis(victim, self.tmp)
            wait_until(lambda: self.backend_state(api, "b1")["state"] == "up", timeout=10,
                       what="b1 up again")
            wait_until(lambda: self.backend_state(api, "b1")["total_connections"] > total_down,
                       timeout=10, what="b1 receiving sessions")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
            for s, _ in clients:
                s.close()
        self.assertEqual(errors, [])  # sessions on the survivors never noticed
        # A short session caught in flight on the victim at the kill may fail;
        # every session started after it succeeds (retry, then health).
        late = [e for t, e in fresh_errors if t > killed_at + 1.0]
        self.assertEqual(late, [])
        self.assertGreater(new_ok[0], 50)

    def test_expect_mismatch_takes_a_backend_down(self):
        good = free_port()
        self.redis[good] = start_redis(good, self.tmp)

        def wrong(conn, backend):
            conn.recv(100)
            conn.sendall(b"-ERR not redis\r\n")

        liar = self.backend(wrong)
        cfg = simple_config([good, liar.port], health_check=HC)
        self.sluice(cfg)
        api = Api(cfg)
        wait_until(lambda: self.backend_state(api, "b1")["state"] == "down", timeout=10,
                   what="liar down")
        b1 = self.backend_state(api, "b1")
        self.assertEqual(b1["health"]["last_check"], "mismatch")
        self.assertGreaterEqual(b1["health"]["checks_failed"], 3)
        b0 = self.backend_state(api, "b0")
        self.assertEqual((b0["state"], b0["health"]["status"], b0["health"]["last_check"]),
                         ("up", "passing", "ok"))
        self.assertGreater(b0["health"]["last_check_latency_ms"], 0)
        lp = listen_port(cfg)
        for _ in range(10):
            self.assertTrue(ping_once(lp))  # all to the good one
        # A down backend cannot be enabled by hand; draining it keeps it checked.
        self.assertEqual(api.post("/api/v1/pools/p/backends/b1/enable")[0], 409)
        self.assertEqual(api.post("/api/v1/pools/p/backends/b1/drain")[0], 200)
        n = self.backend_state(api, "b1")["health"]["checks_total"]
        wait_until(lambda: self.backend_state(api, "b1")["health"]["checks_total"] > n + 1,
                   what="checks continue while draining")
        # Enabling returns it to what its health says: down.
        self.assertEqual(api.post("/api/v1/pools/p/backends/b1/enable")[1]["state"], "down")
        metrics = api.get("/metrics")[1]
        self.assertIn('sluice_backend_healthy{pool="p",backend="b1"} 0', metrics)
        self.assertIn('sluice_backend_healthy{pool="p",backend="b0"} 1', metrics)

    def test_backends_added_and_deleted_while_checks_run(self):
        # Each added backend gets a checker (posted to a sub-reactor) and each
        # delete stops it through that poller before the backend is freed;
        # half are deleted before their first check could run (the stop is
        # queued behind the start). On the ASan build, tearDown fails on any
        # use-after-free or leak.
        b = self.backend()
        fast = {"interval_ms": 10, "timeout_ms": 10, "rise": 1, "fall": 1}
        cfg = simple_config([b.port], health_check=fast)
        self.sluice(cfg)
        api = Api(cfg)
        for i in range(40):
            name = f"n{i}"
            st, nb = api.post("/api/v1/pools/p/backends",
                              {"name": name, "address": f"127.0.0.1:{b.port}"})
            self.assertEqual(st, 201, nb)
            self.assertTrue(nb["health"]["active_checks"])
            if i % 2:
                wait_until(lambda: self.backend_state(api, name)["health"]["checks_total"] > 0,
                           what=f"{name} checked")
            self.assertEqual(api.post(f"/api/v1/pools/p/backends/{name}/disable")[0], 200)
            self.assertEqual(api.call("DELETE", f"/api/v1/pools/p/backends/{name}")[0], 204)
        self.assertEqual([x["name"] for x in api.get("/api/v1/pools/p/backends")[1]], ["b0"])
        n = self.backend_state(api, "b0")["health"]["checks_total"]
        wait_until(lambda: self.backend_state(api, "b0")["health"]["checks_total"] > n,
                   what="b0 still checked")
        s = connect(listen_port(cfg))
        s.sendall(b"still relaying")
        self.assertEqual(s.recv(100), b"still relaying")
        s.close()

    def test_disabled_backends_are_not_checked(self):
        good = free_port()
        self.redis[good] = start_redis(good, self.tmp)
        cfg = simple_config([good], health_check=HC)
        self.sluice(cfg)
        api = Api(cfg)
        self.assertEqual(api.post("/api/v1/pools/p/backends/b0/disable")[0], 200)
        time.sleep(0.3)
        n = self.backend_state(api, "b0")["health"]["checks_total"]
        time.sleep(0.6)
        self.assertEqual(self.backend_state(api, "b0")["health"]["checks_total"], n)

    def test_passive_max_fails_without_active_checks(self):
        good = self.backend()
        dead = free_port()
        cfg = simple_config([dead, good.port], retries=1, max_fails=2, fail_window_ms=800)
        self.sluice(cfg)
        api = Api(cfg)
        lp = listen_port(cfg)
        for i in range(6):
            s = connect(lp)
            s.sendall(b"x")
            self.assertEqual(s.recv(1), b"x")
            s.close()
        b0 = self.backend_state(api, "b0")
        self.assertEqual(b0["state"], "down")
        self.assertEqual(b0["connect_failures"], 2)  # then it left rotation
        self.assertFalse(b0["health"]["active_checks"])
        # After fail_window_ms it is tried again (and fails again: still dead).
        wait_until(lambda: self.backend_state(api, "b0")["state"] == "up", timeout=10,
                   what="b0 back after the window")


class HealthEvidence(ProxyTest):
    """Active and passive evidence kept apart (no redis-server needed)."""

    def test_failing_checks_take_a_busy_backend_down(self):
        # Accepts TCP (every session connects) but answers PING wrongly: only
        # the checks can tell. A session's successful connect must not reset
        # the checks' count, or steady traffic keeps the backend up forever.
        def liar(conn, backend):
            while conn.recv(100):
                conn.sendall(b"-ERR not redis\r\n")

        b = self.backend(liar)
        hc = dict(HC, fall=5)  # time for traffic to flow before it goes down
        cfg = simple_config([b.port], health_check=hc)
        self.sluice(cfg)
        api = Api(cfg)
        lp = listen_port(cfg)
        stop = threading.Event()
        served = [0]

        def traffic():
            while not stop.is_set():
                try:
                    with connect(lp, timeout=5) as s:
                        s.sendall(b"GET k\r\n")
                        if s.recv(100):
                            served[0] += 1  # a race between threads at worst undercounts
                except OSError:
                    pass  # once it is down there is no backend: reset
                time.sleep(0.002)

        threads = [threading.Thread(target=traffic) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: api.get("/api/v1/pools/p/backends/b0")[1]["state"] == "down",
                       timeout=20, step=0.05, what="b0 down despite its session traffic")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        b0 = api.get("/api/v1/pools/p/backends/b0")[1]
        self.assertEqual(b0["health"]["last_check"], "mismatch")
        self.assertGreaterEqual(b0["health"]["consecutive_failures"], hc["fall"])
        self.assertGreater(served[0], 0)  # sessions really connected meanwhile

    def test_fd_exhaustion_is_a_local_error_not_a_failed_check(self):
        # Plain TCP checks of a healthy backend. Then sluice's soft
        # RLIMIT_NOFILE is lowered (prlimit, from outside) to its lowest free
        # fd number, again whenever a lower one frees up, so that every
        # socket() it tries fails with EMFILE. The admin API is read over a
        # keep-alive connection opened before, since no new one could be
        # accepted.
        b = self.backend()
        hc = {"interval_ms": 100, "timeout_ms": 100, "rise": 1, "fall": 3}
        cfg = simple_config([b.port], pollers=1, health_check=hc)
        sl = self.sluice(cfg)
        pid = sl.proc.pid
        host, port = cfg["admin"]["listen"].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)

        def get(path):
            conn.request("GET", path)
            r = conn.getresponse()
            return json.loads(r.read())

        def local_errors():
            return sum(p["local_errors"] for p in get("/api/v1/pollers"))

        b0 = lambda: get("/api/v1/pools/p/backends/b0")
        wait_until(lambda: b0()["health"]["checks_total"] >= 2, what="passing checks")
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)

        def exhaust():
            used = {int(f) for f in os.listdir(f"/proc/{pid}/fd")}
            lowest_free = next(i for i in range(len(used) + 1) if i not in used)
            if lowest_free < resource.prlimit(pid, resource.RLIMIT_NOFILE)[0]:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free, hard))

        before, failed_before = local_errors(), b0()["health"]["checks_failed"]
        try:
            def still_up_and_counting():
                exhaust()
                self.assertEqual(b0()["state"], "up")
                return local_errors() >= before + 5
            wait_until(still_up_and_counting, timeout=20, step=0.02,
                       what="checks to meet EMFILE")
            h = b0()["health"]
            self.assertEqual(h["checks_failed"], failed_before, h)  # none counted against b0
            self.assertEqual(h["status"], "passing")
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        n = b0()["health"]["checks_total"]
        wait_until(lambda: b0()["health"]["checks_total"] > n, what="checks running again")
        conn.close()
        self.assertNotIn("is down", sl.output())


if __name__ == "__main__":
    unittest.main(verbosity=2)
