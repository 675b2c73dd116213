#!/usr/bin/env python3
"""tests/bench/netns.py — the benchmark's network: loopback, or two network
namespaces joined to the root namespace by veth pairs (bench.py --netns).

Owns the namespaces `sluice-bench-cli` (load generators) and
`sluice-bench-srv` (backends), their veth pairs, and the root namespace's
sysctls changed for the run: it creates them, and deletes and restores them
on every way out (try/finally in bench.py, atexit here, and at the start of
the next run after a crash: the saved sysctls stay in STATE until restored).

    10.203.1.2 [sluice-bench-cli] sbcli1 ==veth== sbcli0 10.203.1.1 [root ns:
    proxies listen here]  10.203.2.1 sbsrv0 ==veth== sbsrv1 [sluice-bench-srv]
    10.203.2.2 (backends)

"direct" in this mode is the client namespace talking to the backends'
address, routed (forwarded) by the root namespace: the same two veth hops as
through a proxy, without the proxy's sockets. Offloads (TSO/GSO/GRO, checksum)
are left as the kernel sets them on a new veth; offloads() reads them with
the ethtool ioctl (no ethtool binary needed) so a run records them.

    python3 tests/bench/netns.py --cleanup     # delete a crashed run's leftovers
"""

import array
import atexit
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys

CLI_NS, SRV_NS = "sluice-bench-cli", "sluice-bench-srv"
# root-side and namespace-side ends of each veth pair
CLI_ROOT, CLI_PEER, SRV_ROOT, SRV_PEER = "sbcli0", "sbcli1", "sbsrv0", "sbsrv1"
CLI_ROOT_IP, CLI_IP = "10.203.1.1", "10.203.1.2"
SRV_ROOT_IP, SRV_IP = "10.203.2.1", "10.203.2.2"
PREFIX = 24
LOCK = "/tmp/sluice-bench-netns.lock"
STATE = "/tmp/sluice-bench-netns.sysctl.json"
# Root-namespace sysctls for the run, restored after it. ip_forward: "direct"
# is routed through the root namespace. tcp_tw_reuse=1: the churn workload
# leaves tens of thousands of TIME_WAIT sockets towards one backend address;
# the kernel default (2) reuses them on loopback only, so the loopback mode
# already has this behaviour and the netns mode would otherwise run out of
# ports.
ROOT_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.tcp_tw_reuse": "1"}
NS_SYSCTLS = {"net.ipv4.tcp_tw_reuse": "1"}
CMD_TIMEOUT = 15


CLONE_NEWNET = 0x40000000
# The private loopback's own settings (they exist per namespace): every
# ephemeral port, and TIME_WAIT reuse for outgoing connections.
PRIVATE_SYSCTLS = {"net/ipv4/ip_local_port_range": "1024 65535", "net/ipv4/tcp_tw_reuse": "1"}


class Loopback:
    """Everything on 127.0.0.1: the classic mode. As root the whole run moves
    into a network namespace of its own first (SLUICE_BENCH_HOST_NET=1 keeps
    the host's): its loopback starts without the TIME_WAIT sockets earlier
    runs and other work on the machine left (tens of thousands after one
    churn run, which slow every later connect's port search and made the
    peers' churn figures depend on their order), and nobody else's traffic
    crosses it."""

    mode = "loopback"
    cli = []  # prefix of a load generator's command line
    srv = []  # prefix of a backend's command line
    front_host = "127.0.0.1"  # where proxies listen
    back_host = "127.0.0.1"  # where backends listen
    private = False

    def setup(self):
        if os.geteuid() != 0 or os.environ.get("SLUICE_BENCH_HOST_NET"):
            return
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:  # one thread so far: the process moves
            print(f"bench: no private namespace ({os.strerror(ctypes.get_errno())}): "
                  "host loopback", file=sys.stderr)
            return
        _run(["ip", "link", "set", "lo", "up"])
        for key, value in PRIVATE_SYSCTLS.items():
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        self.private = True

    def teardown(self):
        pass  # the namespace ends with the process

    def describe(self):
        return {"mode": self.mode,
                "namespace": "private (fresh loopback)" if self.private else "host"}


def _run(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True, timeout=CMD_TIMEOUT)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip() or p.returncode}")
    return p


def _sysctl_get(key):
    with open("/proc/sys/" + key.replace(".", "/")) as f:
        return f.read().strip()


def _sysctl_set(key, value):
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


def _exists_ns(name):
    return os.path.exists(f"/run/netns/{name}")


def _exists_link(name):
    return os.path.exists(f"/sys/class/net/{name}")


def cleanup():
    """Delete the namespaces and veths and restore saved sysctls: whatever a
    run (this one, or one that crashed) left. Kills only processes still in
    our namespaces (the bench's own backends and clients)."""
    for ns in (CLI_NS, SRV_NS):
        if not _exists_ns(ns):
            continue
        pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        _run(["ip", "netns", "del", ns], check=False)
    # Deleting a namespace deletes its end of the pair and so the pair; an end
    # left in the root namespace (a crash between two commands) goes here.
    for link in (CLI_ROOT, SRV_ROOT):
        if _exists_link(link):
            _run(["ip", "link", "del", link], check=False)
    if os.path.exists(STATE):
        with open(STATE) as f:
            saved = json.load(f)
        for key, value in saved.items():
            try:
                _sysctl_set(key, value)
            except OSError as e:
                print(f"netns: could not restore {key}={value}: {e}", file=sys.stderr)
        os.unlink(STATE)


def offloads(ifname):
    """The veth's offload flags via the legacy ethtool ioctls (SIOCETHTOOL),
    in the calling process's namespace: {"tso": True, ...}; None where the
    kernel does not answer."""
    cmds = {"rx_csum": 0x14, "tx_csum": 0x16, "sg": 0x18, "tso": 0x1e, "gso": 0x23, "gro": 0x2b}
    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name, cmd in cmds.items():
            val = array.array("I", [cmd, 0])  # struct ethtool_value {cmd, data}
            addr, _ = val.buffer_info()
            ifreq = struct.pack("16sP", ifname.encode(), addr) + bytes(16)
            try:
                fcntl.ioctl(s.fileno(), 0x8946, ifreq)  # SIOCETHTOOL
                out[name] = bool(val[1])
            except OSError:
                out[name] = None
    return out


def _link_sizes(ifname, ns=None):
    """MTU and the GSO/GRO/TSO size limits `ip -d link` reports."""
    prefix = ["ip", "-n", ns] if ns else ["ip"]
    p = _run(prefix + ["-j", "-d", "link", "show", "dev", ifname], check=False)
    try:
        info = json.loads(p.stdout)[0]
    except (ValueError, IndexError):
        return {}
    keys = ("mtu", "gso_max_size", "gso_max_segs", "gro_max_size", "tso_max_size")
    return {k: info[k] for k in keys if k in info}


class Netns(Loopback):
    """Client and backends in their own namespaces, proxies in the root one."""

    mode = "netns"
    cli = ["ip", "netns", "exec", CLI_NS]
    srv = ["ip", "netns", "exec", SRV_NS]
    front_host = CLI_ROOT_IP
    back_host = SRV_IP

    def __init__(self):
        self.lock = None
        self.up = False

    def setup(self):
        if os.geteuid() != 0:
            raise RuntimeError("--netns needs root (ip netns, veth, sysctls)")
        # One netns run at a time on a machine: the names are fixed, and the
        # lock makes deleting a stale namespace safe (no live run owns it).
        self.lock = open(LOCK, "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another bench --netns run holds {LOCK}") from None
        self.up = True
        atexit.register(self.teardown)
        cleanup()  # a crashed run's namespaces, veths, sysctls
        saved = {k: _sysctl_get(k) for k in ROOT_SYSCTLS}
        with open(STATE, "w") as f:  # before changing anything
            json.dump(saved, f)
        for key, value in ROOT_SYSCTLS.items():
            _sysctl_set(key, value)
        for ns, root_if, peer_if, root_ip, ns_ip in (
                (CLI_NS, CLI_ROOT, CLI_PEER, CLI_ROOT_IP, CLI_IP),
                (SRV_NS, SRV_ROOT, SRV_PEER, SRV_ROOT_IP, SRV_IP)):
            _run(["ip", "netns", "add", ns])
            _run(["ip", "link", "add", root_if, "type", "veth", "peer", "name", peer_if,
                  "netns", ns])
            _run(["ip", "addr", "add", f"{root_ip}/{PREFIX}", "dev", root_if])
            _run(["ip", "link", "set", root_if, "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{ns_ip}/{PREFIX}", "dev", peer_if])
            _run(["ip", "-n", ns, "link", "set", peer_if, "up"])
            _run(["ip", "-n", ns, "route", "add", "default", "via", root_ip])
            for key, value in NS_SYSCTLS.items():
                _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])

    def teardown(self):
        if not self.up:
            return
        self.up = False
        cleanup()
        self.lock.close()  # releases the flock

    def describe(self):
        ends = {}
        for ifname in (CLI_ROOT, SRV_ROOT):
            ends[ifname] = {**offloads(ifname), **_link_sizes(ifname)}
        for ns, ifname in ((CLI_NS, CLI_PEER), (SRV_NS, SRV_PEER)):
            p = _run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                      "--offloads", ifname], check=False)
            try:
                got = json.loads(p.stdout)
            except ValueError:
                got = {}
            ends[ifname] = {**got, **_link_sizes(ifname, ns)}
        return {"mode": self.mode, "client": f"{CLI_IP} in {CLI_NS}",
                "proxy": f"{CLI_ROOT_IP} (listen) / {SRV_ROOT_IP} (dial) in the root namespace",
                "backends": f"{SRV_IP} in {SRV_NS}",
                "direct": "client namespace to the backends, routed by the root namespace",
                "root_sysctls": ROOT_SYSCTLS, "ns_sysctls": NS_SYSCTLS, "veth": ends}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--offloads":
        print(json.dumps(offloads(sys.argv[2])))
    elif len(sys.argv) == 2 and sys.argv[1] == "--cleanup":
        with open(LOCK, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                sys.exit(f"a bench --netns run is live (it holds {LOCK}): not touching it")
            cleanup()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
