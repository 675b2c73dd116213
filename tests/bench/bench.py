#!/usr/bin/env python3
"""tests/bench/bench.py — sluice vs HAProxy (and nginx stream) vs a direct
connection, measured side by side in one run so the ratios hold on a noisy
shared machine. Never a pass/fail test: it prints a table and saves JSON.

  python3 tests/bench/bench.py                 # full: 1 and 2 pollers, 2 rounds
  python3 tests/bench/bench.py --quick         # 1 poller, 2 rounds, shorter runs
  python3 tests/bench/bench.py --out FILE.json --pollers 1 --rounds 3 --nginx
  python3 tests/bench/bench.py --quick --baseline OLD/build/sluice   # a change vs its base
  python3 tests/bench/bench.py --quick --netns  # clients and backends in namespaces

Every server is started here and stopped by PID; every run is bounded in
time. Peers are interleaved (A B C, C B A, ...) and medians kept. By default
everything runs on loopback; with --netns the load generators run in the
namespace sluice-bench-cli and the backends in sluice-bench-srv, each joined
to the root namespace (the proxies) by a veth pair (netns.py owns that, and
deletes it on the way out).
"""

import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))
IDLE_CONNS = 5000
# The network of this run: loopback, or netns.Netns() (set by main). Client
# commands are prefixed with NET.cli, backends' with NET.srv.
NET = netns.Loopback()


def die_with_parent():
    """preexec_fn of every server: SIGTERM when the bench dies, even by
    SIGKILL, so no proxy or backend outlives it (the kernel keeps this
    across the exec of `ip netns exec`)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15, host="127.0.0.1", proc=None):
    """Until host:port accepts (from the root namespace: it reaches both the
    proxies and the backends' namespace); early out if proc has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def cpu_s(pids):
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            pass
    return total


class Backends:
    """redis-server, iperf3 -s and sockperf server, once for the whole run."""

    def __init__(self, tmp):
        self.redis, self.iperf, self.sockperf = free_port(), free_port(), free_port()
        self.host = host = NET.back_host
        self.procs = []
        for args in (["redis-server", "--port", str(self.redis), "--bind", host,
                      "--save", "", "--appendonly", "no", "--dir", tmp,
                      "--protected-mode", "no"],  # else it refuses non-loopback clients
                     ["iperf3", "-s", "-p", str(self.iperf), "-B", host],
                     ["sockperf", "server", "--tcp", "-i", host, "-p", str(self.sockperf)]):
            self.procs.append(subprocess.Popen(NET.srv + args, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL,
                                               preexec_fn=die_with_parent))
        for p in (self.redis, self.iperf, self.sockperf):
            wait_port(p, host=host)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


class Peer:
    """A way to reach the backends: direct, or through one proxy."""

    name = "?"
    pids = ()

    def __init__(self, be, pollers, tmp):
        self.be, self.pollers, self.tmp = be, pollers, tmp
        self.ports = {"redis": be.redis, "iperf": be.iperf, "sockperf": be.sockperf}
        self.host = NET.back_host  # what the client dials

    def start(self):
        pass

    def stop(self):
        pass


class Direct(Peer):
    name = "direct"


class Proxy(Peer):
    def start(self):
        self.front = {k: free_port() for k in self.ports}
        err = os.path.join(self.tmp, f"{self.name}.stderr")
        with open(err, "w") as f:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                         stderr=f, cwd=self.tmp, preexec_fn=die_with_parent)
        try:
            for p in self.front.values():
                wait_port(p, host=NET.front_host, proc=self.proc)
        except RuntimeError as e:
            self.stop()
            with open(err) as f:
                tail = f.read()[-400:].strip()
            raise RuntimeError(f"{self.name} did not start: {e}: {tail}") from None
        self.ports = self.front
        self.host = NET.front_host
        self.pids = (self.proc.pid,)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.ports = {"redis": self.be.redis, "iperf": self.be.iperf,
                      "sockperf": self.be.sockperf}
        self.host = NET.back_host


class Sluice(Proxy):
    name = "sluice"
    binary = SLUICE
    accept = "main"
    zero_copy = "none"
    io = "epoll"
    per_source = None  # a listener's "per_source", or None
    io = None  # the top-level "io" key ("io_uring"), or None: not written

    def command(self):
        back = {"redis": self.be.redis, "iperf": self.be.iperf, "sockperf": self.be.sockperf}
        cfg = {"pollers": self.pollers, "shutdown_grace_ms": 0, "accept": self.accept,
               **({"io": self.io} if self.io else {}),
               "admin": {"listen": f"127.0.0.1:{free_port()}"},
               "listeners": [{"name": k, "listen": f"{NET.front_host}:{self.front[k]}",
                              "pool": k, "max_connections": 100000,
                              **({"per_source": self.per_source} if self.per_source else {})}
                             for k in back],
               "pools": [{"name": k, "zero_copy": self.zero_copy,
                          "backends": [{"name": k, "address": f"{NET.back_host}:{p}"}]}
                         for k, p in back.items()]}
        path = os.path.join(self.tmp, "sluice.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return [self.binary, "-c", path]


class SluiceBaseline(Sluice):
    """Another sluice binary (--baseline), e.g. the commit before a refactor,
    measured in the same run so a change is judged side by side."""
    name = "sluice_baseline"
    binary = None


class SluiceReuseport(Sluice):
    name = "sluice_reuseport"
    accept = "reuseport"


class SluiceShared(Sluice):
    name = "sluice_shared"
    accept = "shared"


class SluiceSplice(Sluice):
    name = "sluice_splice"
    zero_copy = "splice"


class SluiceIoUring(Sluice):
    """The poll seam's io_uring backend (issue 20, section 2)."""
    name = "sluice_io_uring"
    io = "io_uring"


class SluicePerSource(Sluice):
    """Per-source limits on every listener, high enough never to refuse (every
    client is 127.0.0.1: one source): the cost of the table at each accept
    and close."""
    name = "sluice_per_source"
    per_source = {"max_connections": 100000, "rate_per_s": 1000000, "burst": 1000000}


class HAProxy(Proxy):
    name = "haproxy"

    def command(self):
        back = {"redis": self.be.redis, "iperf": self.be.iperf, "sockperf": self.be.sockperf}
        lines = ["global", f"  nbthread {self.pollers}", "  maxconn 9000",
                 "defaults", "  mode tcp", "  timeout connect 5s", "  timeout client 600s",
                 "  timeout server 600s", "  maxconn 9000"]
        for k, p in back.items():
            lines += [f"listen {k}", f"  bind {NET.front_host}:{self.front[k]}",
                      "  balance roundrobin", f"  server {k} {NET.back_host}:{p}"]
        path = os.path.join(self.tmp, "haproxy.cfg")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return ["haproxy", "-f", path, "-db"]


class Nginx(Proxy):
    name = "nginx"

    def command(self):
        back = {"redis": self.be.redis, "iperf": self.be.iperf, "sockperf": self.be.sockperf}
        servers = "\n".join(
            f"  server {{ listen {NET.front_host}:{self.front[k]}; "
            f"proxy_pass {NET.back_host}:{p}; }}"
            for k, p in back.items())
        conf = (f"load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
                f"worker_processes {self.pollers};\ndaemon off;\npid {self.tmp}/nginx.pid;\n"
                f"error_log /dev/null;\nevents {{ worker_connections 20000; }}\n"
                f"stream {{\n{servers}\n}}\n")
        path = os.path.join(self.tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return ["nginx", "-c", path, "-p", self.tmp]

    def start(self):
        super().start()
        time.sleep(0.3)  # workers forked
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                              text=True).stdout.split()
        self.pids = (self.proc.pid, *map(int, kids))


def redis_bench(port, extra, n, timeout=120, host="127.0.0.1"):
    out = subprocess.run(NET.cli + ["redis-benchmark", "-h", host, "-p", str(port), "-q",
                                    "-n", str(n), *extra],
                         capture_output=True, text=True, timeout=timeout).stdout
    rates = [float(m) for m in re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))]
    return statistics.mean(rates) if rates else 0.0


def iperf(port, secs, streams, reverse, host="127.0.0.1"):
    args = NET.cli + ["iperf3", "-c", host, "-p", str(port), "-t", str(secs), "-J",
                      "-P", str(streams)]
    if reverse:
        args.append("-R")
    p = subprocess.run(args, capture_output=True, text=True, timeout=secs + 30)
    data = json.loads(p.stdout)
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    end = data["end"]
    bps = end["sum_received"]["bits_per_second"]
    return bps / 1e9, end["sum_received"]["bytes"]


def sockperf(port, secs, host="127.0.0.1"):
    p = subprocess.run(NET.cli + ["sockperf", "ping-pong", "--tcp", "-i", host, "-p", str(port),
                                  "-t", str(secs), "--msg-size", "64"],
                       capture_output=True, text=True, timeout=secs + 30)
    return sockperf_percentiles(p.stdout)


def sockperf_percentiles(out):
    res = {}
    for key, label in (("p50", "50.000"), ("p99", "99.000"), ("p999", "99.900")):
        m = re.search(rf"percentile {re.escape(label)} =\s+([\d.]+)", out)
        res[key] = float(m.group(1)) if m else float("nan")
    return res


# The idle connections' holder: a child process (in the client namespace
# under --netns) that opens them, says "ready", and closes them all when its
# stdin closes.
IDLE_HOLDER = """
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
for s in conns[:50]:  # every session established through to the backend
    s.sendall(b"PING\\r\\n")
    s.recv(16)
print("ready", flush=True)
sys.stdin.read()
"""


def idle_memory(peer):
    if not peer.pids:
        return None
    before = rss_kib(peer.pids)
    holder = subprocess.Popen(NET.cli + [sys.executable, "-c", IDLE_HOLDER, peer.host,
                                         str(peer.ports["redis"]), str(IDLE_CONNS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = select.select([holder.stdout], [], [], 120)[0]
        if not ready or holder.stdout.readline().strip() != "ready":
            raise RuntimeError("the idle connections were not all opened")
        time.sleep(1.0)
        after = rss_kib(peer.pids)
    finally:
        holder.stdin.close()
        try:
            holder.wait(30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
    return (after - before) / IDLE_CONNS


def measured(what, fn, *args):
    """One workload; a failure is reported and recorded as missing instead of
    losing the rest of a long run."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - any failure of a tool or a peer
        print(f"  {what}: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def run_peer(peer, quick):
    secs = 2 if quick else 4
    n = 100000 if quick else 200000
    r = {}
    port, host = peer.ports, peer.host
    c0 = cpu_s(peer.pids)
    for key, extra, count in (("get_50", ["-t", "get", "-c", "50"], n),
                              ("set_50", ["-t", "set", "-c", "50"], n),
                              ("get_pipe16", ["-t", "get", "-c", "50", "-P", "16"], n * 4),
                              ("get_500", ["-t", "get", "-c", "500"], n)):
        r[key] = measured(key, redis_bench, port["redis"], extra, count, 120, host)
    rpc_requests = n * 3 + n * 4
    r["cpu_s_per_100k_req"] = (cpu_s(peer.pids) - c0) / rpc_requests * 1e5 if peer.pids else None
    r["churn_k0"] = measured("churn_k0", redis_bench, port["redis"],
                             ["-t", "ping_inline", "-c", "50", "-k", "0"], n // 4, 120, host)
    c0 = cpu_s(peer.pids)
    gb = 0.0
    for key, streams, reverse in (("bulk_1", 1, False), ("bulk_1_rev", 1, True),
                                  ("bulk_4", 4, False)):
        got = measured(key, iperf, port["iperf"], secs, streams, reverse, host)
        r[key] = got[0] if got else None
        gb += got[1] / 1e9 if got else 0.0
    r["cpu_s_per_gb"] = (cpu_s(peer.pids) - c0) / gb if peer.pids and gb else None
    lat = measured("sockperf", sockperf, port["sockperf"], secs, host) or {}
    r.update({f"rtt_{k}_us": lat.get(k) for k in ("p50", "p99", "p999")})
    r["rss_kib_per_idle_conn"] = measured("idle memory", idle_memory, peer)
    return r


HIGHER_BETTER = {"get_50", "set_50", "get_pipe16", "get_500", "churn_k0", "bulk_1",
                 "bulk_1_rev", "bulk_4"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pollers", type=int, nargs="*", default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--nginx", action="store_true", help="add nginx stream as a peer")
    ap.add_argument("--reuseport", action="store_true",
                    help="add sluice with accept \"reuseport\" as a peer")
    ap.add_argument("--shared", action="store_true",
                    help="add sluice with accept \"shared\" as a peer")
    ap.add_argument("--splice", action="store_true",
                    help="add sluice with zero_copy \"splice\" as a peer")
    ap.add_argument("--per-source", action="store_true",
                    help="add sluice with per_source limits that never refuse as a peer")
    ap.add_argument("--io-uring", action="store_true",
                    help="add sluice with \"io\": \"io_uring\" as a peer")
    ap.add_argument("--baseline", metavar="SLUICE_BIN",
                    help="add another sluice binary as a peer (the change's base)")
    ap.add_argument("--netns", action="store_true",
                    help="load generators in the namespace sluice-bench-cli, backends in "
                         "sluice-bench-srv, joined to the proxies (root namespace) by veth "
                         "pairs; needs root; default --out results_netns.json")
    ap.add_argument("--out", help="results JSON (default tests/bench/results.json, or "
                                  "results_netns.json with --netns)")
    ap.add_argument("--readme", metavar="RESULTS_JSON",
                    help="print the README's Performance tables from a saved run, measure nothing")
    args = ap.parse_args()
    if args.readme:
        with open(args.readme) as f:
            print_readme_tables(json.load(f))
        return
    for tool in ("redis-server", "redis-benchmark", "iperf3", "sockperf", "haproxy"):
        if not shutil.which(tool):
            sys.exit(f"missing {tool}: run scripts/bench.sh, which installs it")
    out = args.out or os.path.join(ROOT, "tests", "bench",
                                   "results_netns.json" if args.netns else "results.json")
    pollers = args.pollers or ([1] if args.quick else [1, 2])
    SluiceBaseline.binary = args.baseline
    kinds = [Direct, HAProxy, Sluice] + ([SluiceReuseport] if args.reuseport else []) + \
        ([SluiceShared] if args.shared else []) + \
        ([SluiceSplice] if args.splice else []) + ([Nginx] if args.nginx else []) + \
        ([SluicePerSource] if args.per_source else []) + \
        ([SluiceIoUring] if args.io_uring else []) + \
        ([SluiceBaseline] if args.baseline else [])
    raise_nofile()
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.release()}", "runs": {}}
    with network(args.netns) as net:
        results["mode"] = net.mode
        results["net"] = net.describe()
        tmp = tempfile.mkdtemp(prefix="sluice-bench-")
        be = None
        try:
            be = Backends(tmp)
            for np in pollers:
                med, samples = run_interleaved(kinds, be, np, tmp, args.rounds, args.quick)
                results["runs"][str(np)] = {"median": med, "samples": samples}
                print_table(np, med, net.mode)
        finally:
            if be:
                be.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nsaved {out}")


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class network:
    """`with network(use_netns) as net:` sets NET for the run and always
    undoes it: namespaces, veths and sysctls are deleted and restored on any
    exception, Ctrl-C, SIGTERM or SIGHUP (made into SystemExit here), and by
    atexit in netns.py."""

    def __init__(self, use_netns):
        self.net = netns.Netns() if use_netns else netns.Loopback()

    def __enter__(self):
        global NET
        def leave(signum, frame):
            raise SystemExit(128 + signum)
        self.old = {s: signal.signal(s, leave) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            self.net.setup()
        except RuntimeError as e:  # not root, a live run holds the lock, ip failed
            self.__exit__()
            raise SystemExit(f"--netns: {e}") from None
        except BaseException:
            self.__exit__()
            raise
        NET = self.net
        return self.net

    def __exit__(self, *exc):
        global NET
        NET = netns.Loopback()
        self.net.teardown()
        for s, h in self.old.items():
            signal.signal(s, h)
        return False


def run_interleaved(kinds, be, np, tmp, rounds, quick):
    """Every peer once per round, in A B C, C B A order; the medians and the
    samples. A peer that does not start (e.g. a config key this binary does
    not know) is reported and left out of that round."""
    samples = {k.name: [] for k in kinds}
    for rnd in range(rounds):
        order = kinds if rnd % 2 == 0 else list(reversed(kinds))
        for kind in order:
            peer = kind(be, np, tmp)
            try:
                peer.start()
            except RuntimeError as e:
                print(f"pollers={np} round={rnd} {kind.name}: {e}", file=sys.stderr)
                continue
            try:
                samples[kind.name].append(run_peer(peer, quick))
            finally:
                peer.stop()
            print(f"pollers={np} round={rnd} {kind.name}: done", file=sys.stderr)
    med = {}
    for name, runs in samples.items():
        med[name] = {}
        for k, _ in README_ROWS:
            vals = [r[k] for r in runs if r.get(k) is not None]
            med[name][k] = statistics.median(vals) if vals else None
    return med, samples


README_ROWS = [
    ("get_50", "redis GET, 50 conns (req/s)"),
    ("set_50", "redis SET, 50 conns (req/s)"),
    ("get_pipe16", "redis GET, pipelined -P 16 (req/s)"),
    ("get_500", "redis GET, 500 conns (req/s)"),
    ("churn_k0", "connection churn, -k 0 (req/s)"),
    ("bulk_1", "bulk, 1 stream (Gbit/s)"),
    ("bulk_1_rev", "bulk, 1 stream reverse (Gbit/s)"),
    ("bulk_4", "bulk, 4 streams (Gbit/s)"),
    ("rtt_p50_us", "round trip p50 (µs)"),
    ("rtt_p99_us", "round trip p99 (µs)"),
    ("rtt_p999_us", "round trip p99.9 (µs)"),
    ("cpu_s_per_gb", "proxy CPU-s per GB"),
    ("cpu_s_per_100k_req", "proxy CPU-s per 100k requests"),
    ("rss_kib_per_idle_conn", "RSS per idle connection (KiB)"),
]
PEER_LABELS = {"direct": "direct", "haproxy": "HAProxy 2.6", "sluice": "sluice",
               "sluice_reuseport": "sluice (reuseport)", "sluice_splice": "sluice (splice)",
               "nginx": "nginx stream", "sluice_baseline": "sluice (baseline)",
               "sluice_io_uring": "sluice (io_uring)", "sluice_shared": "sluice (shared)",
               "sluice_per_source": "sluice (per_source)"}


def print_table(np, med, mode="loopback"):
    """One poller count's medians in the README's shape, with the two ratios."""
    def fmt(v):
        if v is None:
            return "—"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    peers = list(med)
    where = {"loopback": "loopback: client, proxy and backends on 127.0.0.1",
             "netns": "netns: client and backends in their own namespaces, over veth"}
    print(f"\n**{np} poller{'s' if str(np) != '1' else ''}** (HAProxy nbthread {np}; "
          f"{where.get(mode, mode)}):\n")
    base = "sluice_baseline" in med
    head = ["workload"] + [PEER_LABELS.get(p, p) for p in peers] + \
        ["sluice / HAProxy", "sluice / direct"] + (["sluice / baseline"] if base else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, label in README_ROWS:
        s, h, d = med["sluice"][key], med["haproxy"][key], med["direct"][key]
        cells = [fmt(med[p][key]) for p in peers]
        rh = s / h if s is not None and h else None
        rd = s / d if s is not None and d else None
        ratios = [fmt(rh), fmt(rd)]
        if base:
            b = med["sluice_baseline"][key]
            ratios.append(fmt(s / b if s is not None and b else None))
        print("| " + " | ".join([label] + cells + ratios) + " |")


def print_readme_tables(results):
    """The README's tables from a saved run: one per poller count."""
    for np, run in results["runs"].items():
        print_table(np, run["median"], results.get("mode", "loopback"))


if __name__ == "__main__":
    main()
