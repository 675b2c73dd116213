"""tests/integration/harness.py — what every integration test shares: start
the real sluice binary with a config, small real TCP backends on loopback,
clients, and bounded waits. No mocks: real sockets, real processes.

Every wait here is bounded; every process and socket started is stopped in
tearDown, so a failing test leaves nothing behind."""

import hashlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

SLUICE = os.environ.get("SLUICE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "sluice")


def redis_ping(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(b"PING\r\n")
        ok = s.recv(16) == b"+PONG\r\n"
        s.close()
        return ok
    except OSError:
        return False


def start_redis(port, workdir):
    """A real redis-server (Debian's) on loopback, without persistence."""
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", workdir],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: redis_ping(port), what=f"redis on {port}")
    return p


def free_port():
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, step=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def recv_all(sock, limit=1 << 30):
    buf = bytearray()
    while len(buf) < limit:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def round_trip(port, msg=b"ping"):
    """One message to port and its whole answer, the client's side ended
    after it (an echo backend answers then closes)."""
    s = connect(port)
    try:
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)
    finally:
        s.close()


def payload(seed, size):
    return random.Random(seed).randbytes(size)


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Backend:
    """A threaded TCP server on loopback (127.0.0.1, or `host` such as "::1").
    `handler(conn, backend)` runs per connection on its own thread; the
    socket is closed after it returns."""

    def __init__(self, handler, port=None, backlog=128, host="127.0.0.1"):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port or 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = []  # sha256 of what each connection received, when handlers record it
        self.lock = threading.Lock()
        self.stopping = False
        self.conns = set()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(60)
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in list(self.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.thread.join(5)


def echo_handler(conn, backend):
    """Echoes everything, then forwards the client's EOF as its own."""
    h = hashlib.sha256()
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        h.update(data)
        conn.sendall(data)
    with backend.lock:
        backend.received.append(h.hexdigest())
    conn.shutdown(socket.SHUT_WR)


class Sluice:
    """The real binary with a config written to a temp file. `wrapper`: a
    command prefix that execs it (same pid), e.g. to give it a namespace."""

    def __init__(self, config, extra_env=None, check_clean_exit=True, preexec_fn=None,
                 wrapper=None):
        self.dir = tempfile.mkdtemp(prefix="sluice-test-")
        self.path = os.path.join(self.dir, "sluice.json")
        with open(self.path, "w") as f:
            json.dump(config, f)
        self.config = config
        self.check_clean_exit = check_clean_exit
        self.log_path = os.path.join(self.dir, "sluice.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=66")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=67")
        env.update(extra_env or {})
        cmd = list(wrapper or []) + [SLUICE, "-c", self.path]
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn)
        # Listeners are bound before the "started" line: no probe connection
        # (it would reach a backend and skew what the test counts).
        wait_until(self._started, what="sluice to start")

    def _started(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"sluice exited early ({self.proc.returncode}):\n{self.output()}")
        return " started: " in self.output()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def thread_names(self):
        """The names of sluice's threads now. libmicrohttpd's per-connection
        threads come and go: one that exits between the listing and the read
        of its name is skipped, not an error."""
        names = set()
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/comm") as f:
                    names.add(f.read().strip())
            except (FileNotFoundError, ProcessLookupError):
                pass
        return names

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code. Fails the test on a
        sanitizer report or an unclean exit when check_clean_exit is set."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("sluice did not stop within %ss:\n%s" % (timeout, self.output()))
        out = self.output()
        self.log.close()
        if "ERROR: AddressSanitizer" in out or "runtime error:" in out or "LeakSanitizer" in out:
            raise AssertionError("sanitizer report:\n" + out)
        if self.check_clean_exit and self.proc.returncode != 0:
            raise AssertionError(f"sluice exited {self.proc.returncode}:\n{out}")
        return self.proc.returncode


def simple_config(backend_ports, listen_port=None, pollers=2, **pool_opts):
    listen_port = listen_port or free_port()
    pool = {"name": "p", "backends": [
        {"name": f"b{i}", "address": f"127.0.0.1:{port}"} for i, port in enumerate(backend_ports)]}
    pool.update(pool_opts)
    return {
        "pollers": pollers,
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "listeners": [{"name": "l", "listen": f"127.0.0.1:{listen_port}", "pool": "p"}],
        "pools": [pool],
    }


def listen_port(config, i=0):
    return int(config["listeners"][i]["listen"].rsplit(":", 1)[1])


def admin_request(config, method, path, body=None, timeout=30):
    """One call to sluice's admin API (no token): (status, the JSON body, or
    the text for other types; {} when empty). body: sent as JSON."""
    host, port = config["admin"]["listen"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        text = r.read().decode()
        if not text:
            return r.status, {}
        return r.status, (json.loads(text) if "json" in (r.getheader("Content-Type") or "")
                          else text)
    finally:
        conn.close()


class ProxyTest(unittest.TestCase):
    """Tracks backends and sluice processes and stops them after each test."""

    def setUp(self):
        self._backends = []
        self._sluices = []

    def tearDown(self):
        errors = []
        for s in self._sluices:
            try:
                s.stop()
            except AssertionError as e:
                errors.append(str(e))
        for b in self._backends:
            b.stop()
        if errors:
            raise AssertionError("\n".join(errors))

    def async_backend(self, mode="echo", **kw):
        b = AsyncServer(mode, **kw)
        self._backends.append(b)
        return b

    def backend(self, handler=echo_handler, **kw):
        b = Backend(handler, **kw)
        self._backends.append(b)
        return b

    def sluice(self, config, **kw):
        s = Sluice(config, **kw)
        self._sluices.append(s)
        return s


class AsyncServer:
    """A single-threaded selectors server for tests with many connections
    (threads per connection would not scale to thousands).
    mode "echo": echoes; "tag": sends `tag` (one byte) on accept, then echoes;
    "firehose": sends `total` bytes of payload(seed=conn index) then closes;
    "silent": accepts and never answers."""

    def __init__(self, mode="echo", tag=b"A", total=0):
        import selectors
        self.mode, self.tag, self.total = mode, tag, total
        self.sel = selectors.DefaultSelector()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.accepted = 0
        self.conns = {}
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import selectors
        while not self.stopping:
            for key, ev in self.sel.select(0.05):
                if key.data is None:
                    self._accept()
                    continue
                conn, st = key.fileobj, key.data
                try:
                    if ev & selectors.EVENT_READ:
                        data = conn.recv(1 << 16)
                        if not data:
                            st["eof"] = True
                        elif self.mode in ("echo", "tag"):
                            st["out"] += data
                    if st["out"] or (self.mode == "firehose" and st["left"]):
                        self._flush(conn, st)
                    self._update(conn, st)
                except OSError:
                    self._drop(conn)

    def _accept(self):
        import selectors
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, OSError):
                return
            conn.setblocking(False)
            st = {"out": bytearray(), "eof": False, "left": self.total, "off": 0,
                  "data": payload(self.accepted, self.total) if self.mode == "firehose" else b""}
            if self.mode == "tag":
                st["out"] += self.tag
            self.accepted += 1
            self.conns[conn] = st
            self.sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, st)

    def _flush(self, conn, st):
        if self.mode == "firehose" and st["left"] and not st["out"]:
            chunk = st["data"][st["off"]:st["off"] + (1 << 18)]
            st["out"] += chunk
            st["off"] += len(chunk)
            st["left"] -= len(chunk)
        try:
            n = conn.send(st["out"])
            del st["out"][:n]
        except BlockingIOError:
            pass

    def _update(self, conn, st):
        import selectors
        if st["eof"] and not st["out"]:
            self._drop(conn)
            return
        if self.mode == "firehose" and not st["left"] and not st["out"]:
            conn.shutdown(socket.SHUT_WR)
            st["left"] = 0
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] or st["left"] else 0)
        self.sel.modify(conn, want, st)

    def _drop(self, conn):
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn, None)
        conn.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        for c in list(self.conns):
            c.close()
        self.sock.close()


def raise_nofile():
    """Tests with thousands of sockets need more than the usual 1024."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid):
    """utime + stime of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo_process_main(tag):
    """`python3 harness.py echo TAG`: a separate echo process (for SIGKILL
    tests); prints its port, then sends TAG on each accept and echoes."""
    srv = AsyncServer("tag", tag.encode())
    print(srv.port, flush=True)
    while True:
        time.sleep(3600)


def banner_process_main(text):
    """`python3 harness.py banner TEXT`: a separate process (so the test's own
    threads cannot slow it) that accepts, writes TEXT and closes at once, as
    Redis at maxclients or an SMTP 421 does; prints its port first."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    print(srv.getsockname()[1], flush=True)
    line = text.encode()
    while True:
        conn, _ = srv.accept()
        try:
            conn.sendall(line)
        except OSError:
            pass
        conn.close()


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "echo":
        echo_process_main(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "banner":
        banner_process_main(sys.argv[2])
