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


if __name__ == "__main__":
    unittest.main()
