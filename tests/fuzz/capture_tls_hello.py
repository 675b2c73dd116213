#!/usr/bin/env python3
"""tests/fuzz/capture_tls_hello.py — writes the tls_hello seed corpus
(tests/fuzz/corpus/tls_hello/): the first bytes `openssl s_client` sends,
caught by a loopback socket that never answers. Run it again to refresh the
seeds with this machine's OpenSSL: python3 tests/fuzz/capture_tls_hello.py"""
import os
import socket
import subprocess

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tls_hello")
SEEDS = {
    "hello_sni_alpn": ["-servername", "api.example.com", "-alpn", "h2,http/1.1"],
    "hello_sni_upper": ["-servername", "Www.Example.ORG"],
    "hello_nosni": ["-noservername"],
    "hello_tls12": ["-servername", "a.internal.example", "-tls1_2", "-alpn", "h2"],
    "hello_tls13_shares": ["-servername", "grpc.example", "-tls1_3", "-alpn", "h2",
                           "-groups", "X25519:P-256:P-384:ffdhe2048"],
    # the hello cut into 64-byte records
    "hello_split": ["-servername", "split.example", "-alpn", "h2",
                    "-max_send_frag", "512", "-split_send_frag", "64"],
}


def capture(args):
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        port = ls.getsockname()[1]
        client = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"] + args,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            conn, _ = ls.accept()
            conn.settimeout(1.0)
            data = b""
            try:
                while len(data) < 65536:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass  # the client waits for a ServerHello that never comes
            conn.close()
            return data
        finally:
            client.kill()
            client.wait()


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, args in SEEDS.items():
        data = capture(args)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
