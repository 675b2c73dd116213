"""tests/integration/test_sni.py — routing by TLS server name and ALPN
without terminating TLS (README "SNI and ALPN routing"), with real TLS:
certificates made by `openssl req` in a temp dir, `openssl s_server`
backends that each hold their own certificate (its CN tells which one
answered), `openssl s_client -servername` and Python's ssl module as
clients, and a gRPC-over-TLS client and servers (python3-grpcio). Each
handshake completes end to end through sluice, which holds no key: the
ClientHello it peeked at reached the backend unchanged (the Finished
messages cover it)."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import ProxyTest, connect, free_port, wait_until  # noqa: E402

NAMES = ["api.example.com", "www.example.com", "*.internal.example", "app.example",
         "a.b.internal.example", "nope.example", "other.example", "orders.grpc.example",
         "billing.grpc.example"]
OPENSSL_TIMEOUT = 30


def make_cert(workdir, cn):
    """A self-signed P-256 certificate for every name the tests use, CN=cn."""
    key, pem = os.path.join(workdir, cn + ".key"), os.path.join(workdir, cn + ".pem")
    san = ",".join("DNS:" + n for n in NAMES)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=" + san, "-keyout", key, "-out", pem],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=OPENSSL_TIMEOUT)
    return key, pem


class SServer:
    """`openssl s_server -www` on a loopback port with its own certificate:
    it answers `GET /` with a status page, and its CN names it."""

    def __init__(self, key, pem, alpn="h2,http/1.1"):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", pem, "-key", key,
             "-www", "-alpn", alpn], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_until(self._listening, what=f"s_server on {self.port}")

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"s_server exited {self.proc.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


# gRPC runs in Debian's python3 (python3-grpcio), which need not be the
# python3 that runs this file: these are `/usr/bin/python3 test_sni.py
# grpc-server|grpc-call ...` child processes.
DEBIAN_PYTHON = "/usr/bin/python3"


def grpc_server_main(name, key, pem):
    """A gRPC-over-TLS server with one generic unary method (raw bytes, no
    protoc): /sni.Who/Name answers b"<name>:<request>". Prints its port."""
    import grpc
    from concurrent import futures

    def who(request, context):
        return name.encode() + b":" + request

    handler = grpc.method_handlers_generic_handler(
        "sni.Who", {"Name": grpc.unary_unary_rpc_method_handler(who)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=(handler,))
    with open(key, "rb") as k, open(pem, "rb") as c:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    print(server.add_secure_port("127.0.0.1:0", creds), flush=True)
    server.start()
    server.wait_for_termination()


def grpc_call_main(port, host, bundle):
    """One call to /sni.Who/Name through 127.0.0.1:port for the name host
    (its SNI), trusting bundle; prints the answer."""
    import grpc
    with open(bundle, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    with grpc.secure_channel(f"127.0.0.1:{port}", creds,
                             options=[("grpc.ssl_target_name_override", host)]) as ch:
        print(ch.unary_unary("/sni.Who/Name")(b"hello", timeout=20).decode(), flush=True)


class GrpcServer:
    def __init__(self, name, key, pem):
        self.proc = subprocess.Popen([DEBIAN_PYTHON, os.path.abspath(__file__), "grpc-server",
                                      name, key, pem], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.proc.wait(30)
            err = line + self.proc.stdout.read()
            self.stop()
            if "No module named 'grpc'" in err:
                raise unittest.SkipTest("python3-grpcio is not installed (scripts/deps.sh)")
            raise AssertionError(f"gRPC server did not start: {err}")
        self.port = int(line)

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


def api(admin, path):
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=10) as r:
        body = r.read().decode()
    return json.loads(body) if path.startswith("/api/") else body


class SniTest(ProxyTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sluice-sni-")
        cls.certs = {cn: make_cert(cls.dir, cn) for cn in ("backend-a", "backend-b")}
        cls.bundle = os.path.join(cls.dir, "bundle.pem")
        with open(cls.bundle, "w") as out:
            for _, pem in cls.certs.values():
                with open(pem) as f:
                    out.write(f.read())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        super().tearDown()

    def s_server(self, cn, **kw):
        s = SServer(*self.certs[cn], **kw)
        self.servers.append(s)
        return s

    def start(self, routes, pools, pollers=2, **listener):
        """sluice with one routed listener "tls"; pools: name -> backend ports."""
        self.admin = f"127.0.0.1:{free_port()}"
        self.port = free_port()
        lst = {"name": "tls", "listen": f"127.0.0.1:{self.port}", "routes": routes}
        lst.update(listener)
        cfg = {"pollers": pollers, "admin": {"listen": self.admin}, "listeners": [lst],
               "pools": [{"name": name, "backends": [
                   {"name": f"{name}{i}", "address": f"127.0.0.1:{p}"} for i, p in enumerate(ports)]}
                   for name, ports in pools.items()]}
        self.proxy = self.sluice(cfg)
        return self.proxy

    def s_client(self, servername, alpn=None, extra=()):
        """openssl s_client through sluice, verifying the certificate and the
        name, asking GET /; returns (exit code, output)."""
        args = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-servername",
                servername, "-CAfile", self.bundle, "-verify_hostname", servername,
                "-verify_return_error", "-ign_eof"] + list(extra)
        if alpn:
            args += ["-alpn", alpn]
        p = subprocess.run(args, input=b"GET / HTTP/1.0\r\n\r\n", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=OPENSSL_TIMEOUT)
        return p.returncode, p.stdout.decode(errors="replace")

    def reaches(self, servername, alpn=None, extra=()):
        """The CN of the backend that answered servername, after a complete
        handshake and a verified certificate."""
        rc, out = self.s_client(servername, alpn, extra)
        self.assertEqual(rc, 0, out)
        self.assertIn("Verification: OK", out)
        self.assertIn("HTTP/1.0 200 ok", out)
        for cn in self.certs:
            if f"subject=CN = {cn}" in out:
                return cn
        self.fail("no backend subject in:\n" + out)

    def refused(self, servername):
        rc, out = self.s_client(servername)
        self.assertNotEqual(rc, 0, out)
        self.assertNotIn("HTTP/1.0 200 ok", out)

    def listener(self):
        return api(self.admin, "/api/v1/listeners")[0]

    def routes(self):
        return [r["sessions"] for r in self.listener()["routes"]]

    def test_each_name_reaches_its_own_backend(self):
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        self.start([{"sni": "api.example.com", "pool": "a"},
                    {"sni": "www.example.com", "pool": "b"}],
                   {"a": [a.port], "b": [b.port]})
        self.assertEqual(self.reaches("api.example.com"), "backend-a")
        self.assertEqual(self.reaches("www.example.com"), "backend-b")
        self.assertEqual(self.reaches("API.Example.COM"), "backend-a")
        # A hello that openssl itself cuts into 64-byte TLS records.
        self.assertEqual(self.reaches("www.example.com",
                                      extra=["-max_send_frag", "512", "-split_send_frag", "64"]),
                         "backend-b")
        lst = self.listener()
        self.assertIsNone(lst["pool"])
        self.assertEqual([r["sessions"] for r in lst["routes"]], [2, 2])
        self.assertEqual([r["pool"] for r in lst["routes"]], ["a", "b"])
        self.assertEqual((lst["no_route"], lst["bad_hello"], lst["inspect_timeouts"]), (0, 0, 0))
        metrics = api(self.admin, "/metrics")
        self.assertIn('sluice_listener_route_sessions_total{listener="tls",route="1",'
                      'sni="www.example.com",alpn="",pool="b"} 2', metrics)
        self.assertIn('sluice_listener_no_route_total{listener="tls"} 0', metrics)

    def test_reload_keeps_routes_on_the_pools_new_settings(self):
        """A reload that replaces a routed pool's struct (new settings) moves
        the route with it, frees nothing a route still reaches, and names
        changed routes as not applied instead of half-applying them."""
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        proxy = self.start([{"sni": "api.example.com", "pool": "a"},
                            {"sni": "www.example.com", "pool": "b"}],
                           {"a": [a.port], "b": [b.port]})
        self.assertEqual(self.reaches("api.example.com"), "backend-a")

        def reload(cfg):
            with open(proxy.path, "w") as f:
                json.dump(cfg, f)
            req = urllib.request.Request(f"http://{self.admin}/api/v1/reload", method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read().decode())

        cfg = json.loads(json.dumps(proxy.config))
        for pl in cfg["pools"]:
            pl["idle_timeout_ms"] = 30000  # a new struct for both pools
        out = reload(cfg)
        self.assertTrue(any("pools.a" in c for c in out["changed"]), out)
        for _ in range(3):  # twice past the retired structs' reap
            self.assertEqual(self.reaches("api.example.com"), "backend-a")
            self.assertEqual(self.reaches("www.example.com"), "backend-b")
            time.sleep(0.4)
        cfg["listeners"][0]["routes"][0]["sni"] = "new.example.com"
        out = reload(cfg)
        self.assertTrue(any("listeners.tls" in n and "routes" in n for n in out["not_applied"]),
                        out)
        self.assertEqual(self.reaches("api.example.com"), "backend-a")  # as before
        self.assertEqual(self.routes(), [5, 3])

    def bio_handshake(self, servername, prefix=b"", pieces=1):
        """Python's TLS client over a memory BIO, through sluice: prefix
        first, then the ClientHello in `pieces` TCP segments 100 ms apart,
        then the rest of the handshake. Returns the backend's CN."""
        ctx = ssl.create_default_context(cafile=self.bundle)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname=servername)
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = out.read()
        self.assertGreater(len(hello), 100)
        with connect(self.port) as sock:
            if prefix:
                sock.sendall(prefix)
            cut = [len(hello) * i // pieces for i in range(pieces + 1)]
            for i in range(pieces):
                sock.sendall(hello[cut[i]:cut[i + 1]])
                if pieces > 1:
                    time.sleep(0.1)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                self.assertTrue(data, "closed during the handshake")
                inc.write(data)
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                finally:
                    pending = out.read()
                    if pending:
                        sock.sendall(pending)
            return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]

    def test_hello_split_across_tcp_segments(self):
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        self.start([{"sni": "api.example.com", "pool": "a"},
                    {"sni": "www.example.com", "pool": "b"}],
                   {"a": [a.port], "b": [b.port]})
        self.assertEqual(self.bio_handshake("www.example.com", pieces=3), "backend-b")
        self.assertEqual(self.routes(), [0, 1])

    def test_proxy_header_then_hello(self):
        """With accept_proxy_protocol too, the PROXY header is read (and
        dropped) first, then the ClientHello routes; the backend sees a clean
        handshake."""
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        self.start([{"sni": "api.example.com", "pool": "a"},
                    {"sni": "www.example.com", "pool": "b"}],
                   {"a": [a.port], "b": [b.port]}, accept_proxy_protocol=True)
        header = b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n"
        self.assertEqual(self.bio_handshake("api.example.com", prefix=header), "backend-a")
        self.assertEqual(self.bio_handshake("www.example.com", prefix=header, pieces=2),
                         "backend-b")
        self.assertEqual(self.routes(), [1, 1])

    def test_wildcard_is_one_label_and_default(self):
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        self.start([{"sni": "*.internal.example", "pool": "b"},
                    {"sni": "api.example.com", "pool": "b"},
                    {"default": True, "pool": "a"}],
                   {"a": [a.port], "b": [b.port]})
        self.assertEqual(self.reaches("api.example.com"), "backend-b")
        self.assertEqual(self.reaches("a.b.internal.example"), "backend-a")  # two labels
        self.assertEqual(self.reaches("other.example"), "backend-a")
        # The wildcard matches a name of one more label: the test cert covers
        # "*.internal.example", which s_client checks.
        rc, out = self.s_client("svc.internal.example")
        self.assertIn("subject=CN = backend-b", out)
        self.assertEqual(self.routes(), [1, 1, 2])

    def test_alpn_h2_and_http11_go_to_different_pools(self):
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        self.start([{"sni": "app.example", "alpn": "h2", "pool": "b"},
                    {"sni": "app.example", "alpn": "http/1.1", "pool": "a"}],
                   {"a": [a.port], "b": [b.port]})
        rc, out = self.s_client("app.example", alpn="h2")
        self.assertEqual(rc, 0, out)
        self.assertIn("subject=CN = backend-b", out)
        self.assertIn("ALPN protocol: h2", out)
        rc, out = self.s_client("app.example", alpn="http/1.1")
        self.assertEqual(rc, 0, out)
        self.assertIn("subject=CN = backend-a", out)
        self.assertIn("ALPN protocol: http/1.1", out)
        # No ALPN offered: no route (and no default).
        self.refused("app.example")
        self.assertEqual(self.routes(), [1, 1])
        self.assertEqual(self.listener()["no_route"], 1)

    def test_plain_tcp_and_unknown_names_are_closed_and_counted(self):
        a = self.s_server("backend-a")
        self.start([{"sni": "api.example.com", "pool": "a"}], {"a": [a.port]})
        for req in (b"GET / HTTP/1.0\r\nHost: api.example.com\r\n\r\n", b"*1\r\n$4\r\nPING\r\n"):
            with connect(self.port) as s:
                s.sendall(req)
                try:
                    self.assertEqual(s.recv(100), b"")
                except ConnectionResetError:
                    pass  # the reset sluice sends
        # A client that ends before its hello is whole.
        with connect(self.port) as s:
            s.sendall(bytes([22, 3, 1, 0, 200, 1]))
            s.shutdown(socket.SHUT_WR)
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
        self.refused("nope.example")
        self.refused("www.example.com")
        self.assertEqual(self.reaches("api.example.com"), "backend-a")
        lst = wait_until(lambda: (lambda l: l if l["active_connections"] == 0 else None)(
            self.listener()), what="sessions to end")
        self.assertEqual(lst["bad_hello"], 3)
        self.assertEqual(lst["no_route"], 2)
        self.assertEqual(lst["inspect_timeouts"], 0)
        self.assertEqual(self.routes(), [1])

    def test_stalled_hello_is_closed_at_the_timeout_and_the_poller_keeps_working(self):
        a, b = self.s_server("backend-a"), self.s_server("backend-b")
        self.start([{"sni": "api.example.com", "pool": "a"},
                    {"sni": "www.example.com", "pool": "b"}],
                   {"a": [a.port], "b": [b.port]}, pollers=1, inspect_timeout_ms=2000)
        ctx = ssl.create_default_context(cafile=self.bundle)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="api.example.com")
        with self.assertRaises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = out.read()
        stalled = connect(self.port, timeout=30)
        stalled.sendall(hello[:len(hello) // 2])
        # Meanwhile, on the same (only) poller, others are served.
        for _ in range(3):
            self.assertEqual(self.reaches("www.example.com"), "backend-b")
        try:
            self.assertEqual(stalled.recv(100), b"")
        except ConnectionResetError:
            pass
        stalled.close()
        lst = wait_until(lambda: (lambda l: l if l["inspect_timeouts"] == 1 else None)(
            self.listener()), what="the timeout to be counted")
        self.assertEqual(lst["bad_hello"], 0)
        self.assertEqual(self.routes(), [0, 3])
        self.assertEqual(self.reaches("api.example.com"), "backend-a")

    @unittest.skipUnless(os.path.exists(DEBIAN_PYTHON), "Debian python3 missing")
    def test_grpc_over_tls_routed_by_name(self):
        orders = GrpcServer("orders", *self.certs["backend-a"])
        self.servers.append(orders)
        billing = GrpcServer("billing", *self.certs["backend-b"])
        self.servers.append(billing)
        self.start([{"sni": "orders.grpc.example", "alpn": "h2", "pool": "orders"},
                    {"sni": "billing.grpc.example", "alpn": "h2", "pool": "billing"}],
                   {"orders": [orders.port], "billing": [billing.port]})
        for name in ("orders", "billing", "orders"):
            p = subprocess.run([DEBIAN_PYTHON, os.path.abspath(__file__), "grpc-call",
                                str(self.port), f"{name}.grpc.example", self.bundle],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.strip(), f"{name}:hello")
        self.assertEqual(self.routes(), [2, 1])


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "grpc-server":
        grpc_server_main(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "grpc-call":
        grpc_call_main(*sys.argv[2:])
    else:
        unittest.main()
