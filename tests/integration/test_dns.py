"""DNS discovery against a real DNS server on loopback: dnsmasq (Debian's
dnsmasq-base) answers from a hosts file and SRV records that the tests
rewrite (SIGHUP re-reads the hosts file; SRV records need a restart). The
backends listen on 127.0.0.2, .3, .4 (all of 127/8 is loopback) on one port,
as replicas behind a Compose service or a headless Service do."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Backend, ProxyTest, free_port, wait_until

API_POLL_S = 0.1  # a wait on the admin API asks this often: a new connection each time

NAME = "redis.sluice.test"
SRV = "_redis._tcp.sluice.test"


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port serving `hosts` ({name: [ip, ...]}) and
    `srv` ([(target, port, priority, weight)]) for SRV, TTL 1 s."""

    def __init__(self, hosts, srv=()):
        self.dir = tempfile.mkdtemp(prefix="sluice-dns-")
        self.port = free_port()
        self.hosts_path = os.path.join(self.dir, "hosts")
        self.conf_path = os.path.join(self.dir, "dnsmasq.conf")
        self.proc = None
        self.write(hosts, srv)
        self.start()

    def write(self, hosts, srv=None):
        with open(self.hosts_path + ".tmp", "w") as f:
            for name, ips in hosts.items():
                for ip in ips:
                    f.write(f"{ip} {name}\n")
        os.rename(self.hosts_path + ".tmp", self.hosts_path)
        if srv is not None:
            with open(self.conf_path, "w") as f:
                for target, port, prio, weight in srv:
                    f.write(f"srv-host={SRV},{target},{port},{prio},{weight}\n")

    def start(self):
        user = pwd.getpwuid(os.getuid()).pw_name
        self.proc = subprocess.Popen(
            ["dnsmasq", "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts_path}",
             # Authoritative for the test domain: AAAA of an IPv4-only name is
             # an empty answer, not REFUSED (no upstream to ask).
             "--local=/sluice.test/",
             f"--conf-file={self.conf_path}", "--local-ttl=1", "--pid-file=", f"--user={user}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self.answers, what="dnsmasq to answer")

    def answers(self):
        """A hand-made DNS query (A for NAME): any reply will do."""
        if self.proc.poll() is not None:
            raise AssertionError("dnsmasq exited: " + self.proc.stderr.read().decode())
        q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" +
             b"".join(bytes([len(p)]) + p.encode() for p in NAME.split(".")) + b"\x00\x00\x01\x00\x01")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                return s.recv(512)[:2] == b"\x12\x34"
            except OSError:
                return False

    def reload_hosts(self, hosts):
        self.write(hosts)
        self.proc.send_signal(signal.SIGHUP)

    def restart(self, hosts, srv):
        self.stop()
        self.write(hosts, srv)
        self.start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc:
            self.proc.stderr.close()


def dial(port):
    """A client connection to sluice. A reset of connect() itself is the
    kernel's (loopback port reuse against another process's TIME_WAIT on a
    shared machine; sluice cannot reset a handshake it never saw): retried,
    a few times. Anything after the handshake is the test's to judge."""
    for _ in range(5):
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionResetError:
            time.sleep(0.01)
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def redis_ok(ip, port):
    try:
        with socket.create_connection((ip, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16) == b"+PONG\r\n"
    except OSError:
        return False


def tag_handler(tag):
    def handler(conn, backend):
        conn.sendall(tag)
        conn.recv(1)
    return handler


@unittest.skipUnless(shutil.which("dnsmasq"), "dnsmasq (dnsmasq-base) not installed")
class Dns(ProxyTest):
    def setUp(self):
        super().setUp()
        self.dns = None
        self.redis = []
        self.tmp = tempfile.mkdtemp(prefix="sluice-dns-redis-")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            if self.dns:
                self.dns.stop()
            for r in self.redis:
                r.terminate()
                r.wait(10)

    def start_dns(self, hosts, srv=()):
        self.dns = Dnsmasq(hosts, srv)
        return self.dns

    def start_redis(self, ip, port):
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", ip, "--save", "",
                              "--appendonly", "no", "--dir", self.tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.redis.append(p)
        wait_until(lambda: redis_ok(ip, port), what=f"redis on {ip}:{port}")
        return p

    def config(self, backends, **resolver):
        self.listen = free_port()
        self.admin = free_port()
        r = {"servers": [f"127.0.0.1:{self.dns.port}"], "resolve_min_ms": 200,
             "timeout_ms": 300}
        r.update(resolver)
        return {"pollers": 2, "admin": {"listen": f"127.0.0.1:{self.admin}"}, "resolver": r,
                "listeners": [{"name": "l", "listen": f"127.0.0.1:{self.listen}", "pool": "p"}],
                "pools": [{"name": "p", "backends": backends}]}

    def until(self, pred, timeout=20.0, what="condition"):
        """wait_until for a condition read from the admin API: a new
        connection per look, so fewer looks (a loopback flooded with
        TIME_WAIT sockets answers some handshakes only on a retry)."""
        return wait_until(pred, timeout, API_POLL_S, what)

    def api(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=30) as r:
            body = r.read().decode()
            return json.loads(body) if path.startswith("/api/") else body

    def pool(self):
        return self.api("/api/v1/pools/p")

    def backends(self, live_only=True):
        return {b["name"]: b for b in self.pool()["backends"]
                if not (live_only and b["retired"])}

    def test_all_follows_addresses_under_load_with_zero_client_errors(self):
        port = free_port()
        for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            self.start_redis(ip, port)
        self.start_dns({NAME: ["127.0.0.2", "127.0.0.3"]})
        self.sluice(self.config([{"name": "redis", "address": f"{NAME}:{port}",
                                  "resolve": "all"}]))
        self.maxDiff = None
        names = lambda *ips: {f"redis@{ip}:{port}" for ip in ips}
        self.until(lambda: set(self.backends()) == names("127.0.0.2", "127.0.0.3"),
                   what="both addresses as backends")

        # Real clients: a new connection every few SETs, so every change of
        # the set is met by new sessions; any reset, refusal or wrong answer
        # once connected counts (dial() retries only a reset of connect()).
        stop, errors, done = threading.Event(), [], [0]
        lock = threading.Lock()

        def client(k):
            i = 0
            while not stop.is_set():
                try:
                    with dial(self.listen) as s:
                        for _ in range(5):
                            i += 1
                            s.sendall(f"SET k{k}-{i} v\r\n".encode())
                            reply = s.recv(16)
                            if reply != b"+OK\r\n":
                                raise OSError(f"reply {reply!r}")
                            with lock:
                                done[0] += 1
                except OSError as e:
                    with lock:
                        errors.append(repr(e))
                time.sleep(0.002)

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: done[0] >= 200, timeout=30, what="load before the change")
            self.dns.reload_hosts({NAME: ["127.0.0.2", "127.0.0.3", "127.0.0.4"]})
            self.until(lambda: set(self.backends()) == names("127.0.0.2", "127.0.0.3",
                                                              "127.0.0.4"),
                       timeout=20, what="the new address as a backend")
            self.dns.reload_hosts({NAME: ["127.0.0.3", "127.0.0.4"]})
            # Retired, drained, then removed: gone from the pool for good.
            self.until(lambda: set(self.backends(live_only=False)) ==
                       names("127.0.0.3", "127.0.0.4"), timeout=20, what="the old one removed")
            mark = done[0]
            wait_until(lambda: done[0] >= mark + 200, timeout=30, what="load after the change")
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        self.assertEqual(errors[:5], [], f"{len(errors)} errors of {done[0] + len(errors)}; "
                         f"sluice's log:\n{self._sluices[0].output()[-4000:]}\n"
                         f"pool: {json.dumps(self.pool())[:4000]}\n"
                         f"pollers: {json.dumps(self.api('/api/v1/pollers'))[:4000]}")
        # The added address took sessions; the removed one took none after its removal.
        keys = lambda ip: int(subprocess.run(["redis-cli", "-h", ip, "-p", str(port), "dbsize"],
                                             capture_output=True, text=True,
                                             timeout=30).stdout.strip())
        self.assertGreater(keys("127.0.0.4"), 0)
        before = keys("127.0.0.2")
        for _ in range(20):
            with dial(self.listen) as s:
                s.sendall(b"SET after v\r\n")
                self.assertEqual(s.recv(16), b"+OK\r\n")
        self.assertEqual(keys("127.0.0.2"), before)
        metrics = self.api("/metrics")
        self.assertIn(f'sluice_backend_connections_total{{pool="p",backend="redis@127.0.0.4:{port}"}}',
                      metrics)

    def test_srv_weights_are_honoured(self):
        a = self.backend(tag_handler(b"A"), host="127.0.0.2")
        b = self.backend(tag_handler(b"B"), host="127.0.0.3")
        z = self.backend(tag_handler(b"Z"), host="127.0.0.4")
        hosts = {"a.sluice.test": ["127.0.0.2"], "b.sluice.test": ["127.0.0.3"],
                 "z.sluice.test": ["127.0.0.4"]}
        srv = [("a.sluice.test", a.port, 0, 10), ("b.sluice.test", b.port, 0, 30),
               ("z.sluice.test", z.port, 0, 0)]
        self.start_dns(hosts, srv)
        self.sluice(self.config([{"name": "svc", "srv": SRV}]))
        want = {f"svc@127.0.0.2:{a.port}": 10, f"svc@127.0.0.3:{b.port}": 30,
                f"svc@127.0.0.4:{z.port}": 0}
        self.until(lambda: {n: x["weight"] for n, x in self.backends().items()} == want,
                   what="one backend per SRV target, with its weight")
        counts = {b"A": 0, b"B": 0, b"Z": 0}
        for _ in range(200):
            with dial(self.listen) as s:
                counts[s.recv(1)] += 1
        # Smooth weighted round robin: 1:3, and weight 0 (among weighted
        # targets) is never picked.
        self.assertEqual(counts[b"Z"], 0)
        self.assertEqual(counts[b"A"] + counts[b"B"], 200)
        self.assertTrue(40 <= counts[b"A"] <= 60, counts)
        # A weight set through the API holds while DNS keeps its own...
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.admin}/api/v1/pools/p/backends/svc@127.0.0.2:{a.port}",
            data=json.dumps({"weight": 7}).encode(), method="PATCH",
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()
        time.sleep(1.5)  # several resolutions (resolve_min_ms 200): a wait for nothing to happen
        self.assertEqual(self.backends()[f"svc@127.0.0.2:{a.port}"]["weight"], 7)
        # ... and new record weights (a restart of dnsmasq) are applied.
        self.dns.restart(hosts, [("a.sluice.test", a.port, 0, 20),
                                 ("b.sluice.test", b.port, 0, 20)])
        want = {f"svc@127.0.0.2:{a.port}": 20, f"svc@127.0.0.3:{b.port}": 20}
        self.until(lambda: {n: x["weight"] for n, x in self.backends().items()} == want,
                   timeout=20, what="the new SRV weights")

    def test_dns_server_stopped_keeps_the_pool(self):
        a = self.backend(tag_handler(b"A"), host="127.0.0.2")
        b = self.backend(tag_handler(b"B"), host="127.0.0.3", port=a.port)
        self.start_dns({NAME: ["127.0.0.2", "127.0.0.3"]})
        self.sluice(self.config([{"name": "svc", "address": f"{NAME}:{a.port}",
                                  "resolve": "all"},
                                 {"name": "one", "address": f"{NAME}:{a.port}"}]))
        self.until(lambda: len(self.backends()) == 3, what="the backends")
        first = self.pool()["last_dns_resolution_at"]
        self.assertIsNotNone(first)
        self.dns.stop()
        self.until(lambda: self.pool()["dns_failures"] >= 3, timeout=20, what="failures counted")
        pool = self.pool()
        self.assertIn("sluice.test", pool["last_dns_error"])
        self.assertEqual(len([x for x in pool["backends"] if x["state"] == "up"]), 3)
        self.assertEqual(len(self.backends()["one"]["addresses"]), 2)
        tags = set()
        for _ in range(12):
            with dial(self.listen) as s:
                tags.add(s.recv(1))
        self.assertEqual(tags, {b"A", b"B"})
        self.assertRegex(self.api("/metrics"), r'sluice_pool_dns_failures_total\{pool="p"\} [1-9]')
        # DNS back: resolutions succeed again.
        self.dns.start()
        self.until(lambda: self.pool()["last_dns_resolution_at"] > first, timeout=20,
                   what="a successful resolution after the outage")
        self.assertEqual(len(self.backends()), 3)

    def test_default_mode_follows_an_address_change(self):
        a = self.backend(tag_handler(b"A"), host="127.0.0.2")
        b = self.backend(tag_handler(b"B"), host="127.0.0.3", port=a.port)
        self.start_dns({NAME: ["127.0.0.2"]})
        self.sluice(self.config([{"name": "one", "address": f"{NAME}:{a.port}"}]))
        self.assertEqual(self.backends()["one"]["addresses"], [f"127.0.0.2:{a.port}"])
        s1 = dial(self.listen)
        self.assertEqual(s1.recv(1), b"A")
        self.dns.reload_hosts({NAME: ["127.0.0.3"]})
        self.until(lambda: self.backends()["one"]["addresses"] == [f"127.0.0.3:{a.port}"],
                   timeout=20, what="the new address")
        with dial(self.listen) as s:
            self.assertEqual(s.recv(1), b"B")
        # The session made before the change runs on where it was.
        s1.sendall(b"x")
        s1.close()
        self.assertEqual(list(self.backends()), ["one"])

    def test_reload_keeps_discovered_backends_and_follows_on(self):
        """A reload (here one that changes the pool's settings, so its struct
        is replaced) keeps the NAME@ADDR:PORT backends DNS made, does not add
        the name itself as a backend, and the new resolver follows on."""
        a = self.backend(tag_handler(b"A"), host="127.0.0.2")
        b = self.backend(tag_handler(b"B"), host="127.0.0.3", port=a.port)
        self.start_dns({NAME: ["127.0.0.2"]})
        cfg = self.config([{"name": "redis", "address": f"{NAME}:{a.port}", "resolve": "all"}])
        proxy = self.sluice(cfg)
        self.until(lambda: set(self.backends()) == {f"redis@127.0.0.2:{a.port}"},
                   what="the first address as a backend")
        cfg["pools"][0]["idle_timeout_ms"] = 30000
        with open(proxy.path, "w") as f:
            json.dump(cfg, f)
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}/api/v1/reload",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            out = json.loads(r.read().decode())
        self.assertFalse(any("redis@" in c for c in out["changed"]), out)
        self.assertEqual(set(self.backends()), {f"redis@127.0.0.2:{a.port}"})
        with dial(self.listen) as s:
            self.assertEqual(s.recv(1), b"A")
        self.dns.reload_hosts({NAME: ["127.0.0.2", "127.0.0.3"]})
        self.until(lambda: set(self.backends()) == {f"redis@127.0.0.2:{a.port}",
                                                    f"redis@127.0.0.3:{b.port}"},
                   what="the resolver after the reload adds the new address")

    def test_start_without_an_answer(self):
        self.start_dns({})
        # Default mode: nothing to dial, so the start fails naming the path.
        cfg = self.config([{"name": "one", "address": f"missing.sluice.test:{free_port()}"}])
        path = os.path.join(self.tmp, "bad.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        from harness import SLUICE
        p = subprocess.run([SLUICE, "-c", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn('pools[0].backends[0].address: cannot resolve host "missing.sluice.test"',
                      p.stderr + p.stdout)
        # "all": starts empty and fills when the name appears.
        a = self.backend(tag_handler(b"A"), host="127.0.0.2")
        self.sluice(self.config([{"name": "svc", "address": f"{NAME}:{a.port}",
                                  "resolve": "all"}]))
        self.assertEqual(self.backends(), {})
        self.until(lambda: self.pool()["dns_failures"] >= 1, what="the failure counted")
        self.dns.reload_hosts({NAME: ["127.0.0.2"]})
        self.until(lambda: list(self.backends()) == [f"svc@127.0.0.2:{a.port}"], timeout=20,
                   what="the backend once the name resolves")
        with dial(self.listen) as s:
            self.assertEqual(s.recv(1), b"A")


if __name__ == "__main__":
    unittest.main()
