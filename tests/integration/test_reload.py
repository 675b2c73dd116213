"""In-process reload (README "Reload") against the real binary: SIGHUP and
POST /api/v1/reload re-read the config file and apply it without dropping a
session. Covered: 20 reloads under steady load from real clients (persistent
and reconnecting, and redis-benchmark) with zero errors and zero refused
connections; a drained backend stays drained; a broken config changes
nothing (400 with the JSON path, logged on SIGHUP, counted in stats); an
added listener accepts and a removed one refuses while its sessions finish;
backends added and removed; pool settings change for new sessions only;
what cannot apply is named; no fd or memory growth over 200 reloads; and
watch_config with the kubelet's atomic `..data` symlink swap."""

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLUICE, ProxyTest, Sluice, connect, free_port, listen_port, recv_exactly,
                     simple_config, start_redis, wait_until)


def api(config, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request("http://" + config["admin"]["listen"] + path, data=data,
                                 method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def write_config(s, config):
    """Replaces the file sluice was started with, atomically (rename)."""
    tmp = s.path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f)
    os.rename(tmp, s.path)


def reload_api(s, config):
    write_config(s, config)
    return api(s.config, "POST", "/api/v1/reload")


def stats(config):
    status, body = api(config, "GET", "/api/v1/stats")
    assert status == 200, body
    return body


def echo_once(port, msg=b"hello"):
    with connect(port) as c:
        c.sendall(msg)
        got = recv_exactly(c, len(msg))
    return got


def backend_of(config, pool, name):
    status, body = api(config, "GET", f"/api/v1/pools/{pool}")
    assert status == 200, body
    for b in body["backends"]:
        if b["name"] == name:
            return b
    return None


class Reload(ProxyTest):
    accept = "main"

    def start(self, nbackends=1, **pool):
        self.bs = [self.backend() for _ in range(nbackends)]
        self.cfg = simple_config([b.port for b in self.bs], **pool)
        self.cfg["accept"] = self.accept
        self.s = self.sluice(copy.deepcopy(self.cfg))
        return self.s

    def test_sighup_and_api_reload_count_generations(self):
        s = self.start()
        self.assertEqual(stats(self.cfg)["config_generation"], 1)
        self.assertIsNone(stats(self.cfg)["last_reload_at"])
        status, body = reload_api(s, self.cfg)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["config_generation"], 2)
        self.assertEqual(body["changed"], [])
        s.signal(signal.SIGHUP)
        wait_until(lambda: stats(self.cfg)["config_generation"] == 3, what="SIGHUP reload")
        st = stats(self.cfg)
        self.assertEqual(st["reloads"], 2)
        self.assertEqual(st["reload_failures"], 0)
        self.assertIsNone(st["last_reload_error"])
        self.assertTrue(st["last_reload_at"].endswith("Z"))
        with urllib.request.urlopen("http://" + self.cfg["admin"]["listen"] + "/metrics") as r:
            metrics = r.read().decode()
        self.assertIn("sluice_config_generation 3\n", metrics)
        self.assertIn("sluice_reloads_total 2\n", metrics)
        self.assertIn("sluice_reload_failures_total 0\n", metrics)
        self.assertEqual(echo_once(listen_port(self.cfg)), b"hello")

    def test_broken_config_changes_nothing(self):
        s = self.start()
        broken = copy.deepcopy(self.cfg)
        broken["pools"][0]["balance"] = "bogus"
        broken["listeners"].append({"name": "l2", "listen": f"127.0.0.1:{free_port()}",
                                    "pool": "p"})
        status, body = reload_api(s, broken)
        self.assertEqual(status, 400, body)
        self.assertTrue(any("pools[0].balance" in e for e in body["errors"]), body)
        st = stats(self.cfg)
        self.assertEqual(st["config_generation"], 1)
        self.assertEqual(st["reload_failures"], 1)
        self.assertIn("pools[0].balance", st["last_reload_error"])
        self.assertEqual([l["name"] for l in st["listeners"]], ["l"])
        # SIGHUP: the same rejection, in the log and the stats.
        s.signal(signal.SIGHUP)
        wait_until(lambda: stats(self.cfg)["reload_failures"] == 2, what="SIGHUP rejection")
        wait_until(lambda: "reload rejected" in s.output() and "pools[0].balance" in s.output(),
                   what="the rejection logged")
        self.assertEqual(echo_once(listen_port(self.cfg)), b"hello")
        # A listener that cannot bind rejects the whole reload too.
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        clash = copy.deepcopy(self.cfg)
        clash["pools"][0]["backends"].append({"name": "new", "address": "127.0.0.1:9"})
        clash["listeners"].append({"name": "l3", "listen": "127.0.0.1:%d" % taken.getsockname()[1],
                                   "pool": "p"})
        status, body = reload_api(s, clash)
        taken.close()
        self.assertEqual(status, 500, body)
        self.assertIn("l3", body["detail"])
        self.assertIsNone(backend_of(self.cfg, "p", "new"))
        self.assertEqual(stats(self.cfg)["reload_failures"], 3)
        # A good one afterwards clears last_reload_error.
        status, body = reload_api(s, self.cfg)
        self.assertEqual(status, 200, body)
        self.assertIsNone(stats(self.cfg)["last_reload_error"])

    def test_drained_backend_stays_drained(self):
        self.start(nbackends=2)
        status, body = api(self.cfg, "POST", "/api/v1/pools/p/backends/b0/drain")
        self.assertEqual(status, 200, body)
        status, body = api(self.cfg, "PATCH", "/api/v1/pools/p/backends/b1", {"weight": 7})
        self.assertEqual(status, 200, body)
        new = copy.deepcopy(self.cfg)
        new["pools"][0]["backends"][1]["weight"] = 3  # the API's 7 is kept
        new["pools"][0]["idle_timeout_ms"] = 120000   # a new generation of the pool
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        self.assertIn("pools.p: settings changed (for new sessions)", body["changed"])
        self.assertTrue(any("b1: weight 7 set through the API kept" in n
                            for n in body["not_applied"]), body)
        self.assertEqual(backend_of(self.cfg, "p", "b0")["state"], "drained")
        self.assertEqual(backend_of(self.cfg, "p", "b1")["weight"], 7)
        for _ in range(5):
            self.assertEqual(echo_once(listen_port(self.cfg)), b"hello")
        self.assertEqual(self.bs[0].accepted, 0)

    def test_drain_wait_follows_the_pool_across_a_reload(self):
        """drain?wait= sleeps without the lock; a reload meanwhile replaces
        the pool by a new generation: the wait finds the backend again by
        pool and backend name, and answers when it is drained."""
        self.start(nbackends=1)
        held = connect(listen_port(self.cfg))
        held.sendall(b"x")
        self.assertEqual(recv_exactly(held, 1), b"x")
        answer = []
        t = threading.Thread(target=lambda: answer.append(
            api(self.cfg, "POST", "/api/v1/pools/p/backends/b0/drain?wait=60")))
        t.start()
        wait_until(lambda: backend_of(self.cfg, "p", "b0")["state"] == "draining")
        new = copy.deepcopy(self.cfg)
        new["pools"][0]["connect_timeout_ms"] = 1500  # a new generation of pool p
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        self.assertIn("pools.p: settings changed (for new sessions)", body["changed"])
        held.close()
        t.join(60)
        self.assertEqual(len(answer), 1)
        status, body = answer[0]
        self.assertEqual(status, 200, body)
        self.assertEqual(body["state"], "drained")

    def test_listener_settings_apply_to_new_connections(self):
        self.start()
        port = listen_port(self.cfg)
        first = connect(port)
        first.sendall(b"1")
        self.assertEqual(recv_exactly(first, 1), b"1")
        new = copy.deepcopy(self.cfg)
        new["listeners"][0]["max_connections"] = 1
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        self.assertIn("listeners.l: max_connections 1", body["changed"])
        second = connect(port)  # the kept socket accepts, then the limit closes it
        second.settimeout(10)
        try:
            self.assertEqual(second.recv(1), b"")
        except ConnectionResetError:
            pass
        second.close()
        wait_until(lambda: stats(self.cfg)["listeners"][0]["refused"] == 1)
        first.sendall(b"2")
        self.assertEqual(recv_exactly(first, 1), b"2")
        first.close()

    def test_health_check_changes_restart_the_checkers(self):
        self.start(health_check={"interval_ms": 100, "timeout_ms": 80, "fall": 2})
        wait_until(lambda: backend_of(self.cfg, "p", "b0")["health"]["checks_total"] > 2)
        self.assertEqual(backend_of(self.cfg, "p", "b0")["state"], "up")
        # The echo backend answers PING with PING: a check expecting NOPE fails.
        new = copy.deepcopy(self.cfg)
        new["pools"][0]["health_check"] = {"interval_ms": 100, "timeout_ms": 80, "fall": 2,
                                           "send": "PING", "expect": "NOPE"}
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        wait_until(lambda: backend_of(self.cfg, "p", "b0")["state"] == "down",
                   what="the new checks take it down")
        self.assertEqual(backend_of(self.cfg, "p", "b0")["health"]["last_check"], "mismatch")
        # Checks removed: nothing would bring it back, so the reload does.
        status, body = reload_api(self.s, self.cfg | {"pools": [
            {k: v for k, v in self.cfg["pools"][0].items() if k != "health_check"}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(backend_of(self.cfg, "p", "b0")["state"], "up")
        self.assertEqual(echo_once(listen_port(self.cfg)), b"hello")

    def test_not_applied_is_named(self):
        self.start()
        new = copy.deepcopy(self.cfg)
        new["pollers"] = 3
        new["io"] = "io_uring"  # the pollers' backends are not reopened
        new["accept"] = "main" if self.accept == "reuseport" else "reuseport"
        new["admin"]["token"] = "secret-token-of-32-characters-xx"
        new["pools"][0]["backends"][0]["address"] = "127.0.0.1:9"
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        text = "\n".join(body["not_applied"])
        for key in ("pollers", "io: applies at restart", "accept", "admin.token",
                    "pools.p.backends.b0: address"):
            self.assertIn(key, text)
        self.assertIn("reload: not applied: pollers", self.s.output())
        self.assertEqual(echo_once(listen_port(self.cfg)), b"hello")

    def test_listener_added_and_removed(self):
        self.start()
        new = copy.deepcopy(self.cfg)
        port2 = free_port()
        new["listeners"].append({"name": "l2", "listen": f"127.0.0.1:{port2}", "pool": "p"})
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        self.assertIn(f"listeners.l2: added on 127.0.0.1:{port2}", body["changed"])
        self.assertEqual(echo_once(port2), b"hello")
        # A session through l stays while l is removed; new ones are refused.
        port1 = listen_port(self.cfg)
        held = connect(port1)
        held.sendall(b"one")
        self.assertEqual(recv_exactly(held, 3), b"one")
        only2 = copy.deepcopy(new)
        only2["listeners"] = [new["listeners"][1]]
        status, body = reload_api(self.s, only2)
        self.assertEqual(status, 200, body)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port1), timeout=5)
        held.sendall(b"two")
        self.assertEqual(recv_exactly(held, 3), b"two")
        self.assertEqual(echo_once(port2), b"hello")
        held.close()
        # Its struct goes with its last session; nothing shows it any more.
        wait_until(lambda: [l["name"] for l in stats(self.cfg)["listeners"]] == ["l2"])

    def test_backends_added_and_removed(self):
        self.start()
        extra = self.backend()
        new = copy.deepcopy(self.cfg)
        new["pools"][0]["backends"].append({"name": "b1", "address": f"127.0.0.1:{extra.port}"})
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        self.assertIn("pools.p.backends.b1: added", body["changed"])
        held = connect(listen_port(self.cfg))  # b0 or b1
        held.sendall(b"x")
        self.assertEqual(recv_exactly(held, 1), b"x")
        wait_until(lambda: self.bs[0].accepted + extra.accepted == 1)
        on_b0 = self.bs[0].accepted == 1
        for _ in range(6):
            echo_once(listen_port(self.cfg))
        self.assertGreater(extra.accepted, 0)
        # Remove the backend that holds the session: it drains, then goes.
        gone, stays = ("b0", "b1") if on_b0 else ("b1", "b0")
        cut = copy.deepcopy(new)
        cut["pools"][0]["backends"] = [b for b in new["pools"][0]["backends"] if b["name"] == stays]
        status, body = reload_api(self.s, cut)
        self.assertEqual(status, 200, body)
        self.assertEqual(backend_of(self.cfg, "p", gone)["state"], "draining")
        held.sendall(b"y")
        self.assertEqual(recv_exactly(held, 1), b"y")
        before = (self.bs[0].accepted, extra.accepted)
        for _ in range(4):
            echo_once(listen_port(self.cfg))
        after = (self.bs[0].accepted, extra.accepted)
        self.assertEqual(after[0 if on_b0 else 1], before[0 if on_b0 else 1])
        held.close()
        wait_until(lambda: backend_of(self.cfg, "p", gone) is None, what="the reap")

    def test_pool_settings_for_new_sessions_only(self):
        self.start(idle_timeout_ms=60000)
        old = connect(listen_port(self.cfg))
        old.sendall(b"a")
        self.assertEqual(recv_exactly(old, 1), b"a")
        new = copy.deepcopy(self.cfg)
        new["pools"][0]["idle_timeout_ms"] = 300
        status, body = reload_api(self.s, new)
        self.assertEqual(status, 200, body)
        fresh = connect(listen_port(self.cfg))
        fresh.sendall(b"b")
        self.assertEqual(recv_exactly(fresh, 1), b"b")
        fresh.settimeout(30)
        self.assertEqual(fresh.recv(1), b"")  # closed by the new 300 ms idle timeout
        time.sleep(1.0)  # three times the new timeout: the old session keeps 60 s
        old.sendall(b"c")
        self.assertEqual(recv_exactly(old, 1), b"c")
        old.close()
        fresh.close()

    def test_no_growth_over_200_reloads(self):
        self.start(nbackends=2)
        a = copy.deepcopy(self.cfg)
        b = copy.deepcopy(self.cfg)
        b["listeners"].append({"name": "l2", "listen": f"127.0.0.1:{free_port()}", "pool": "q"})
        b["pools"][0]["backends"] = b["pools"][0]["backends"][:1]
        b["pools"][0]["idle_timeout_ms"] = 5000
        b["pools"].append({"name": "q", "backends": [self.cfg["pools"][0]["backends"][1]],
                           "health_check": {"interval_ms": 1000}})
        held = connect(listen_port(self.cfg))
        for cfg in (b, a):  # warm up: every path once
            self.assertEqual(reload_api(self.s, cfg)[0], 200)
        wait_until(lambda: backend_of(self.cfg, "p", "b1") is not None)

        def settled_fds():
            # Retired backends, pools and listeners are reaped every 250 ms.
            return self.s.fd_count()
        time.sleep(1.0)
        fds, rss = settled_fds(), self.s.rss_kib()
        for i in range(200):
            status, body = reload_api(self.s, b if i % 2 == 0 else a)
            self.assertEqual(status, 200, body)
            if i % 40 == 0:
                held.sendall(b"z")
                self.assertEqual(recv_exactly(held, 1), b"z")
        self.assertEqual(stats(self.cfg)["config_generation"], 203)
        wait_until(lambda: settled_fds() == fds, timeout=20,
                   what=f"fd count back to {fds} (now {settled_fds()})")
        self.assertLess(self.s.rss_kib() - rss, 16 * 1024)
        held.sendall(b"z")
        self.assertEqual(recv_exactly(held, 1), b"z")
        held.close()


class ReloadReuseport(Reload):
    """The same with accept "reuseport": a socket per sub-reactor, each
    started and closed by its own poller."""
    accept = "reuseport"


class ReloadShared(Reload):
    """The same with accept "shared": one socket, a dup per sub-reactor, each
    watched (exclusively) and closed by its own poller."""
    accept = "shared"


@unittest.skipUnless(shutil.which("redis-server") and shutil.which("redis-benchmark"),
                     "redis-server/redis-tools not installed")
class ReloadUnderLoad(ProxyTest):
    def test_20_reloads_under_load(self):
        tmp = tempfile.mkdtemp(prefix="sluice-reload-")
        ports = [free_port() for _ in range(3)]
        redis = [start_redis(p, tmp) for p in ports]
        try:
            self._run(ports)
        finally:
            for r in redis:
                r.terminate()
                r.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)

    def _run(self, ports):
        base = simple_config(ports[:2])
        base["pools"][0]["health_check"] = {"interval_ms": 200, "timeout_ms": 150, "send": "PING\r\n",
                                            "expect": "+PONG"}
        s = self.sluice(copy.deepcopy(base))
        port = listen_port(base)
        stop = threading.Event()
        errors, done = [], [0, 0]

        def persistent():
            try:
                with connect(port) as c:
                    while not stop.is_set():
                        c.sendall(b"PING\r\n")
                        if recv_exactly(c, 7) != b"+PONG\r\n":
                            raise AssertionError("bad answer")
                        done[0] += 1
            except Exception as e:  # noqa: BLE001 - any failure is a client error
                errors.append(f"persistent: {e!r}")

        def reconnecting():
            while not stop.is_set():
                try:
                    with connect(port) as c:
                        c.sendall(b"PING\r\n")
                        if recv_exactly(c, 7) != b"+PONG\r\n":
                            raise AssertionError("bad answer")
                        done[1] += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(f"reconnecting: {e!r}")
                    return

        threads = [threading.Thread(target=persistent) for _ in range(8)]
        threads += [threading.Thread(target=reconnecting) for _ in range(4)]
        for t in threads:
            t.start()
        bench = subprocess.Popen(["redis-benchmark", "-p", str(port), "-t", "set,get", "-n",
                                  "400000", "-c", "20", "-q"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        variants = []
        for i in range(20):
            v = copy.deepcopy(base)
            pool = v["pools"][0]
            if i % 4 == 1:  # a third backend comes and goes
                pool["backends"].append({"name": "b2", "address": f"127.0.0.1:{ports[2]}"})
            if i % 4 == 2:
                pool["idle_timeout_ms"] = 100000 + i  # a new generation of the pool
            if i % 4 == 3:
                pool["backends"][1]["weight"] = 1 + i % 3
                v["listeners"].append({"name": "extra", "listen": f"127.0.0.1:{free_port()}",
                                       "pool": "p"})
            variants.append(v)
        try:
            for i, v in enumerate(variants):
                write_config(s, v)
                if i % 2:
                    s.signal(signal.SIGHUP)
                    wait_until(lambda: stats(base)["config_generation"] == i + 2,
                               what=f"SIGHUP reload {i}")
                else:
                    status, body = api(base, "POST", "/api/v1/reload")
                    self.assertEqual(status, 200, body)
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        out, _ = bench.communicate(timeout=300)
        self.assertEqual(errors, [])
        self.assertGreater(done[0], 0)
        self.assertGreater(done[1], 0)
        self.assertEqual(bench.returncode, 0, out)
        self.assertNotIn("rror", out)
        st = stats(base)
        self.assertEqual(st["config_generation"], 21)
        self.assertEqual(st["reload_failures"], 0)
        for l in st["listeners"]:
            self.assertEqual(l["refused"], 0, l)
        for p in st["pollers"]:
            self.assertEqual(p["refused"], 0, p)
            self.assertEqual(p["connect_exhausted"], 0, p)


class KubeletSluice(Sluice):
    """sluice started on a ConfigMap-like directory: dir/sluice.json ->
    ..data/sluice.json, dir/..data -> ..<timestamp>/ (what the kubelet
    mounts). Built by WatchConfig._start_at, not Sluice.__init__ (which
    writes a file of its own)."""

    def swap(self, config, raw=None):
        """The kubelet's atomic update: a new timestamped dir, a temp symlink
        renamed over ..data, the old dir removed."""
        self.gen += 1
        ts = f"..2026_12_01_00_00_{self.gen:02d}.{os.getpid()}"
        os.mkdir(os.path.join(self.kdir, ts))
        with open(os.path.join(self.kdir, ts, "sluice.json"), "w") as f:
            f.write(raw if raw is not None else json.dumps(config))
        tmp = os.path.join(self.kdir, "..data_tmp")
        os.symlink(ts, tmp)
        old = os.path.realpath(os.path.join(self.kdir, "..data")) \
            if os.path.lexists(os.path.join(self.kdir, "..data")) else None
        os.rename(tmp, os.path.join(self.kdir, "..data"))
        if old:
            shutil.rmtree(old)


class WatchConfig(ProxyTest):
    def test_kubelet_symlink_swap(self):
        b0, b1 = self.backend(), self.backend()
        cfg = simple_config([b0.port])
        cfg["watch_config"] = True
        s = KubeletSluice.__new__(KubeletSluice)
        s.kdir = tempfile.mkdtemp(prefix="sluice-kube-")
        s.gen = 0
        s.swap(cfg)
        os.symlink("..data/sluice.json", os.path.join(s.kdir, "sluice.json"))
        self._start_at(s, cfg, os.path.join(s.kdir, "sluice.json"))
        self._sluices.append(s)
        wait_until(lambda: "watch_config: watching" in s.output())

        new = copy.deepcopy(cfg)
        new["pools"][0]["backends"].append({"name": "b1", "address": f"127.0.0.1:{b1.port}"})
        s.swap(new)
        wait_until(lambda: stats(cfg)["config_generation"] == 2, what="the watched reload")
        self.assertIsNotNone(backend_of(cfg, "p", "b1"))
        # A broken ConfigMap is rejected as SIGHUP would: counted, nothing changed.
        s.swap(None, raw='{"pools": [')
        wait_until(lambda: stats(cfg)["reload_failures"] == 1, what="the rejection")
        self.assertEqual(stats(cfg)["config_generation"], 2)
        self.assertEqual(echo_once(listen_port(cfg)), b"hello")
        # An unrelated file in the directory changes nothing.
        with open(os.path.join(s.kdir, "other"), "w") as f:
            f.write("x")
        time.sleep(0.6)
        self.assertEqual(stats(cfg)["reload_failures"], 1)
        self.assertEqual(stats(cfg)["config_generation"], 2)

    def _start_at(self, s, config, path):
        """Sluice's start, on a path of the test's choosing."""
        s.dir = s.kdir
        s.path = path
        s.config = config
        s.check_clean_exit = True
        s.log_path = os.path.join(tempfile.mkdtemp(prefix="sluice-test-"), "sluice.log")
        s.log = open(s.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        s.proc = subprocess.Popen([SLUICE, "-c", path], stdout=s.log, stderr=subprocess.STDOUT,
                                  env=env)
        wait_until(s._started, what="sluice to start")


if __name__ == "__main__":
    unittest.main()
