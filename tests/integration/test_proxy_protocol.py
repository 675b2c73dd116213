"""PROXY protocol (README "PROXY protocol") and the session's inspect phase.

Accept side (a listener with accept_proxy_protocol): v1 and v2 headers, IPv4
and IPv6, sent whole, byte by byte, or with the payload in the same segment,
are read and not forwarded; a client without a header, with a bad one, that
closes mid-header, or that stalls mid-header, is closed and counted
(proxy_protocol_errors, inspect_timeouts); source_hash uses the header's
address. Send side (pools[].proxy_protocol): the backend reads the header
first, on every dial. Interop with Debian's haproxy, as the sender in front
of sluice and as the receiver behind it."""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, connect, free_port, listen_port, payload, recv_all, recv_exactly,
                     sha, simple_config, wait_until)
from test_admin import Api

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst, sport, dport, cmd=1, tlvs=b""):
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(
            socket.AF_INET6, dst)
    else:
        fam, addrs = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def read_header(conn):
    """Reads one PROXY header (v1 or v2) from conn and returns it as a dict:
    version, src, sport, dst, dport (None for UNKNOWN/AF_UNSPEC), unique_id."""
    first = recv_exactly(conn, 5)
    if first == b"PROXY":
        line = first
        while not line.endswith(b"\r\n"):
            line += recv_exactly(conn, 1)
            assert len(line) <= 107, line
        f = line[:-2].decode().split(" ")
        if f[1] == "UNKNOWN":
            return {"version": 1, "src": None}
        assert f[1] in ("TCP4", "TCP6") and len(f) == 6, line
        return {"version": 1, "proto": f[1], "src": f[2], "dst": f[3], "sport": int(f[4]),
                "dport": int(f[5])}
    head = first + recv_exactly(conn, len(V2_SIG) - 5)
    assert head == V2_SIG, head
    ver_cmd, fam, n = struct.unpack("!BBH", recv_exactly(conn, 4))
    body = recv_exactly(conn, n)
    assert ver_cmd == 0x21, ver_cmd
    h = {"version": 2, "src": None}
    if fam == 0x11:
        h.update(src=socket.inet_ntop(socket.AF_INET, body[0:4]),
                 dst=socket.inet_ntop(socket.AF_INET, body[4:8]))
        h["sport"], h["dport"] = struct.unpack("!HH", body[8:12])
        rest = body[12:]
    elif fam == 0x21:
        h.update(src=socket.inet_ntop(socket.AF_INET6, body[0:16]),
                 dst=socket.inet_ntop(socket.AF_INET6, body[16:32]))
        h["sport"], h["dport"] = struct.unpack("!HH", body[32:36])
        rest = body[36:]
    else:
        assert fam == 0, fam
        rest = body
    while rest:
        t, ln = struct.unpack("!BH", rest[:3])
        if t == 0x05:
            h["unique_id"] = rest[3:3 + ln]
        rest = rest[3 + ln:]
    return h


class HeaderBackend:
    """A backend that reads the PROXY header each connection starts with,
    records it, answers its own JSON-free summary line, then echoes."""

    def __init__(self, test, **kw):
        self.headers = []
        self.b = test.backend(self._handler, **kw)
        self.port = self.b.port

    def _handler(self, conn, backend):
        h = read_header(conn)
        with backend.lock:
            self.headers.append(h)
        conn.sendall(f"{h['src']} {h.get('sport')} {h.get('dst')} {h.get('dport')}\n".encode())
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)


def read_line(sock):
    line = b""
    while not line.endswith(b"\n"):
        line += recv_exactly(sock, 1)
    return line.decode().strip()


def accept_config(backend_ports, timeout_ms=None, **pool_opts):
    cfg = simple_config(backend_ports, **pool_opts)
    cfg["listeners"][0]["accept_proxy_protocol"] = True
    if timeout_ms is not None:
        cfg["listeners"][0]["inspect_timeout_ms"] = timeout_ms
    return cfg


def listener_stats(cfg):
    st, ls = Api(cfg).get("/api/v1/listeners")
    assert st == 200, ls
    return ls[0]


def closed_by_peer(sock, timeout=20):
    """True once the peer ended the connection (EOF or reset) within timeout,
    having sent nothing."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def tag_handler(tag):
    """A backend that names itself, then echoes."""
    def handler(conn, backend):
        conn.sendall(tag)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    return handler


class AcceptProxy(ProxyTest):
    def roundtrip(self, cfg, header, body=b"hello through the header\n", split=False):
        c = connect(listen_port(cfg))
        if split:
            for i in range(len(header)):
                c.sendall(header[i:i + 1])
                time.sleep(0.002)
            c.sendall(body)
        else:
            c.sendall(header + body)  # the payload in the same segment as the header
        got = recv_exactly(c, len(body))
        c.close()
        return got

    def test_v1_and_v2_headers_are_read_not_forwarded(self):
        b = self.backend()
        cfg = accept_config([b.port])
        self.sluice(cfg)
        cases = [
            v1("192.0.2.7", "198.51.100.1", 40000, 443),
            v1("2001:db8::7", "2001:db8::1", 40001, 443),
            v2("192.0.2.8", "198.51.100.1", 40002, 443),
            v2("2001:db8::8", "2001:db8::1", 40003, 443),
            b"PROXY UNKNOWN\r\n",
            b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
            V2_SIG + b"\x20\x00\x00\x00",  # LOCAL
            v2("192.0.2.9", "198.51.100.1", 1, 2, tlvs=b"\x05\x00\x03abc\xee\x00\x00"),
        ]
        for h in cases:
            with self.subTest(header=h):
                body = b"payload after " + h[:5].hex().encode() + b"\n"
                self.assertEqual(self.roundtrip(cfg, h, body), body)
        self.assertEqual(listener_stats(cfg)["proxy_protocol_errors"], 0)

    def test_header_split_byte_by_byte(self):
        b = self.backend()
        cfg = accept_config([b.port])
        self.sluice(cfg)
        for h in (v1("192.0.2.7", "198.51.100.1", 40000, 443),
                  v2("2001:db8::8", "2001:db8::1", 40003, 443)):
            with self.subTest(header=h):
                self.assertEqual(self.roundtrip(cfg, h, b"x" * 10, split=True), b"x" * 10)

    def test_big_payload_right_after_the_header(self):
        b = self.backend()
        cfg = accept_config([b.port])
        self.sluice(cfg)
        data = payload(7, 3 << 20)
        c = connect(listen_port(cfg))
        got = []
        t = threading.Thread(target=lambda: got.append(recv_all(c)))
        t.start()
        c.sendall(v2("192.0.2.8", "198.51.100.1", 40002, 443) + data)
        c.shutdown(socket.SHUT_WR)
        t.join(60)
        c.close()
        self.assertEqual(sha(got[0]), sha(data))

    def test_missing_or_bad_header_is_closed_and_counted(self):
        b = self.backend()
        cfg = accept_config([b.port])
        self.sluice(cfg)
        bad = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # no header at all
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # no CR
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",  # port out of range
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 " + b"1" * 120 + b"\r\n",  # longer than 107 bytes
            V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12,  # version 3
            V2_SIG + b"\x21\x11\x00\x04" + b"\x00" * 4,  # addresses longer than the header
            v2("192.0.2.9", "198.51.100.1", 1, 2, tlvs=b"\x05\x00\x09abc"),  # TLV overruns
        ]
        for data in bad:
            with self.subTest(data=data):
                c = connect(listen_port(cfg))
                c.sendall(data)
                self.assertTrue(closed_by_peer(c))
                c.close()
        # The client that closes before a whole header, and the one that
        # sends nothing: missing headers.
        for data in (b"PROXY TCP4 1.2", b""):
            c = connect(listen_port(cfg))
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            self.assertTrue(closed_by_peer(c))
            c.close()
        n = len(bad) + 2
        wait_until(lambda: listener_stats(cfg)["proxy_protocol_errors"] == n,
                   what=f"{n} proxy_protocol_errors")
        self.assertEqual(b.accepted, 0)  # never dialed
        st, text = Api(cfg).get("/metrics")
        self.assertIn(f'sluice_listener_proxy_protocol_errors_total{{listener="l"}} {n}', text)

    def test_stalled_header_is_closed_at_the_inspect_timeout(self):
        b = self.backend()
        cfg = accept_config([b.port], timeout_ms=300)
        self.sluice(cfg)
        c = connect(listen_port(cfg))
        c.sendall(b"PROXY TCP4 192.0.2.")
        self.assertTrue(closed_by_peer(c, timeout=30))
        c.close()
        wait_until(lambda: listener_stats(cfg)["inspect_timeouts"] == 1, what="inspect timeout")
        self.assertEqual(listener_stats(cfg)["proxy_protocol_errors"], 1)
        self.assertEqual(b.accepted, 0)

    def test_source_hash_uses_the_header_address(self):
        backs = [self.backend(tag_handler(t)) for t in (b"A", b"B", b"C")]
        cfg = accept_config([x.port for x in backs], balance="source_hash")
        self.sluice(cfg)

        def pick(src):
            c = connect(listen_port(cfg))
            c.sendall(v1(src, "198.51.100.1", 1234, 80))
            tag = recv_exactly(c, 1)
            c.close()
            return tag

        seen = {}
        for i in range(24):
            src = f"10.0.{i}.{i + 1}"
            seen[src] = pick(src)
        # Every connection came from 127.0.0.1: only the header's address can
        # spread them, and the same address must land on the same backend.
        self.assertGreater(len(set(seen.values())), 1, seen)
        for src in list(seen)[:6]:
            self.assertEqual(pick(src), seen[src])


class SendProxy(ProxyTest):
    def test_backend_reads_the_header_first(self):
        for version in ("v1", "v2"):
            with self.subTest(version=version):
                hb = HeaderBackend(self)
                cfg = simple_config([hb.port], proxy_protocol=version)
                self.sluice(cfg)
                c = connect(listen_port(cfg))
                c.sendall(b"early bytes\n")  # sent while sluice connects: after the header
                line = read_line(c)
                self.assertEqual(recv_exactly(c, 12), b"early bytes\n")
                host, port = c.getsockname()
                self.assertEqual(line, f"127.0.0.1 {port} 127.0.0.1 {listen_port(cfg)}")
                c.close()
                h = hb.headers[0]
                self.assertEqual(h["version"], int(version[1]))
                if version == "v2":
                    self.assertEqual(len(h["unique_id"]), 32)

    def test_accepted_header_is_what_is_sent_upstream_ipv4_and_ipv6(self):
        for version in ("v1", "v2"):
            hb = HeaderBackend(self)
            cfg = accept_config([hb.port], proxy_protocol=version)
            self.sluice(cfg)
            for h, want in ((v2("192.0.2.7", "198.51.100.1", 40000, 443),
                             "192.0.2.7 40000 198.51.100.1 443"),
                            (v1("2001:db8::7", "2001:db8::1", 40001, 8443),
                             "2001:db8::7 40001 2001:db8::1 8443")):
                with self.subTest(version=version, header=h):
                    c = connect(listen_port(cfg))
                    c.sendall(h + b"ping\n")
                    self.assertEqual(read_line(c), want)
                    self.assertEqual(recv_exactly(c, 5), b"ping\n")
                    c.close()
            # LOCAL: the connection's own addresses stand.
            c = connect(listen_port(cfg))
            c.sendall(V2_SIG + b"\x20\x00\x00\x00")
            self.assertEqual(read_line(c),
                             f"127.0.0.1 {c.getsockname()[1]} 127.0.0.1 {listen_port(cfg)}")
            c.close()

    def test_header_is_sent_again_after_a_retry(self):
        hb = HeaderBackend(self)
        dead = free_port()
        cfg = simple_config([dead, hb.port], proxy_protocol="v2", retries=2, max_fails=0)
        self.sluice(cfg)
        for _ in range(4):  # round robin: some start on the dead backend
            c = connect(listen_port(cfg))
            line = read_line(c)
            self.assertEqual(line, f"127.0.0.1 {c.getsockname()[1]} 127.0.0.1 {listen_port(cfg)}")
            c.close()
        st, pools = Api(cfg).get("/api/v1/pools/p/backends/b0")
        self.assertGreater(pools["connect_failures"], 0, pools)


HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)


def can_bind_v6():
    try:
        with socket.socket(socket.AF_INET6) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


class HAProxy:
    """Debian's haproxy in the foreground with the given config body."""

    def __init__(self, body, ports):
        self.dir = tempfile.mkdtemp(prefix="sluice-haproxy-")
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write("global\n    maxconn 100\n"
                    "defaults\n    timeout connect 5s\n    timeout client 30s\n"
                    "    timeout server 30s\n" + body)
        self.log = open(os.path.join(self.dir, "haproxy.log"), "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", path], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for host, port in ports:
            wait_until(lambda: self._listening(host, port), what=f"haproxy on {host}:{port}")

    def _listening(self, host, port):
        if self.proc.poll() is not None:
            raise AssertionError("haproxy exited: " + open(self.log.name).read())
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(HAPROXY, "haproxy is not installed (scripts/deps.sh installs it)")
class HAProxyInterop(ProxyTest):
    def haproxy(self, body, ports):
        h = HAProxy(body, ports)
        self.addCleanup(h.stop)
        return h

    def families(self):
        return ["127.0.0.1", "::1"] if can_bind_v6() else ["127.0.0.1"]

    def test_haproxy_in_front_sends_the_client_address(self):
        """client -> haproxy (send-proxy / send-proxy-v2, with TLVs) ->
        sluice (accept_proxy_protocol) -> a backend that reads the header
        sluice sends on: it names the client haproxy saw."""
        hb = HeaderBackend(self)
        cfg = accept_config([hb.port], proxy_protocol="v2")
        self.sluice(cfg)
        for send in ("send-proxy", "send-proxy-v2 proxy-v2-options crc32c,unique-id"):
            for host in self.families():
                with self.subTest(send=send, client=host):
                    port = free_port()
                    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                    self.haproxy(f"listen front\n    mode tcp\n    bind {bind}\n"
                                 f"    unique-id-format %{{+X}}o%ci:%cp_%fi:%fp_%Ts_%rt\n"
                                 f"    server s 127.0.0.1:{listen_port(cfg)} {send}\n",
                                 [(host, port)])
                    c = socket.create_connection((host, port), timeout=30)
                    c.sendall(b"hi\n")
                    line = read_line(c)
                    self.assertEqual(recv_exactly(c, 3), b"hi\n")
                    cport = c.getsockname()[1]
                    c.close()
                    self.assertEqual(line, f"{host} {cport} {host} {port}")
        self.assertEqual(listener_stats(cfg)["proxy_protocol_errors"], 0)

    def test_haproxy_behind_accepts_the_header(self):
        """client -> sluice (pools[].proxy_protocol v1 / v2) -> haproxy
        (bind ... accept-proxy, mode http) answering with the src it saw."""
        hport = free_port()
        self.haproxy("frontend fe\n    mode http\n"
                     f"    bind 127.0.0.1:{hport} accept-proxy\n"
                     "    http-request return status 200 content-type text/plain "
                     "lf-string \"%[src] %[src_port] %[dst] %[dst_port] %[fc_pp_unique_id]\\n\"\n",
                     [("127.0.0.1", hport)])
        for version in ("v1", "v2"):
            for host in self.families():
                with self.subTest(version=version, client=host):
                    lport = free_port()
                    cfg = simple_config([hport], listen_port=lport, proxy_protocol=version)
                    cfg["listeners"][0]["listen"] = (f"[{host}]:{lport}" if ":" in host
                                                     else f"{host}:{lport}")
                    self.sluice(cfg)
                    c = socket.create_connection((host, lport), timeout=30)
                    c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                    reply = recv_all(c).decode()
                    cport = c.getsockname()[1]
                    c.close()
                    self.assertIn("200", reply.split("\r\n")[0], reply)
                    fields = reply.split("\r\n\r\n", 1)[1].split()
                    self.assertEqual(fields[:4], [host, str(cport), host, str(lport)], reply)
                    if version == "v2":
                        self.assertEqual(len(fields), 5, reply)  # sluice's unique id
                        self.assertEqual(len(fields[4]), 32, reply)


if __name__ == "__main__":
    unittest.main()
