#!/usr/bin/env python3
"""tests/bench/rtt_spread.py — where the ping-pong round trip's spread comes
from: `perf sched record` while sockperf ping-pongs through sluice and
through HAProxy (peers interleaved over rounds), then `perf sched timehist`
summarised per thread of the proxy and of the sockperf client and server.
Never a pass/fail test.

  python3 tests/bench/rtt_spread.py                   # 1 poller, 2 rounds, 2 s recorded
  python3 tests/bench/rtt_spread.py --netns --rounds 3 --secs 1.5 --out spread.json
  python3 tests/bench/rtt_spread.py --pin          # round trip per fixed placement, no perf

Per thread: context switches (times it left the CPU), run time, wait time
(asleep until woken), scheduling delay (woken until running: p50, p99, max),
migrations (moves to another CPU) and its run time's share on each CPU; per
CPU, the idle share. "(kernel)" is the kernel's own switch count
(/proc/TID/status) over the whole `perf sched record` command, its start
and stop included: more than perf's count; the same ratio on every thread
means no events were lost. sockperf ping-pong sends 10,000 messages/s (its
default), so "wait" includes the gaps between messages. Needs root
(system-wide sched tracepoints) and perf; the recording and its text are
deleted after each run.

--pin measures instead the round trip with the client, the proxy (all its
threads) and the sockperf server pinned to fixed CPUs: all on one, the
proxy on another, the client on another, and unpinned: what each cross-CPU
wakeup costs on this machine, and which placement an unpinned run landed
in.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# "  18303.949810 [0000]  sleep[14657]   0.000   0.054   1.317" (name[tid] or name[tid/pid])
EVENT = re.compile(r"^\s*[\d.]+\s+\[(\d+)\]\s+(.+?)\[(\d+)(?:/\d+)?\]\s+([\d.]+)\s+([\d.]+)"
                   r"\s+([\d.]+)\s*$")
MIGRATED = re.compile(r"migrated: (.*?)\[(\d+)(?:/\d+)?\] cpu (\d+) => (\d+)")
IDLE = re.compile(r"^\s*CPU\s+(\d+) idle (?:for\s+[\d.]+\s+msec\s+\(\s*([\d.]+)%\)|(entire))")


def tids(pid):
    """{tid: comm} of a live process's threads."""
    out = {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                out[int(t)] = f.read().strip()
    except FileNotFoundError:
        pass
    return out


def kernel_switches(tid):
    """The kernel's own count of a thread's context switches: perf's count
    over the recording should come close to the difference (a little lower:
    perf starts and stops inside the window); far lower means lost events."""
    try:
        with open(f"/proc/{tid}/status") as f:
            return sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", f.read()))
    except FileNotFoundError:
        return 0


def pct(vals, q):
    if not vals:
        return None
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(q * len(vals)))]


def timehist(data, watch, timeout):
    """Per watched tid: switches, run/wait ms, delay p50/p99/max µs,
    migrations, CPUs; and each CPU's idle %."""
    p = subprocess.run(["perf", "sched", "timehist", "-i", data, "-M", "-S"],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"perf sched timehist: {p.stderr.strip()[-300:]}")
    per = {tid: {"switches": 0, "run_ms": 0.0, "wait_ms": 0.0, "delays": [], "migrations": 0,
                 "cpus": {}} for tid in watch}
    idle = {}
    for line in p.stdout.splitlines():
        m = MIGRATED.search(line)
        if m:
            tid = int(m.group(2))
            if tid in per:
                per[tid]["migrations"] += 1
            continue
        m = EVENT.match(line)
        if m:
            tid = int(m.group(3))
            if tid in per:
                t = per[tid]
                t["switches"] += 1
                cpu, run = int(m.group(1)), float(m.group(6))
                t["cpus"][cpu] = t["cpus"].get(cpu, 0.0) + run
                t["wait_ms"] += float(m.group(4))
                t["delays"].append(float(m.group(5)) * 1000.0)
                t["run_ms"] += run
            continue
        m = IDLE.match(line)
        if m:
            # "idle entire time window": perf saw no idle period end on that
            # CPU, which is also what a CPU that never idled looks like.
            idle[int(m.group(1))] = None if m.group(3) else float(m.group(2))
    out = {}
    for tid, t in per.items():
        d = t.pop("delays")
        out[tid] = {**t, "name": watch[tid],
                    "delay_p50_us": pct(d, 0.50), "delay_p99_us": pct(d, 0.99),
                    "delay_max_us": max(d) if d else None}
    return out, idle


def record(peer, be, secs, tmp):
    """sockperf ping-pong through peer for secs + 2 s; perf sched records secs
    of its middle. Returns (sockperf percentiles, per-thread stats, idle)."""
    data = os.path.join(tmp, "perf.data")
    client = subprocess.Popen(bench.NET.cli + ["sockperf", "ping-pong", "--tcp", "-i",
                                               peer.host, "-p", str(peer.ports["sockperf"]),
                                               "-t", str(int(secs + 2.5)), "--msg-size", "64"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(1.0)  # connected and warm
        watch = {}
        roles = [("client", client.pid), ("server", be.procs[2].pid)]
        if peer.pids:
            roles.insert(0, ("proxy", peer.pids[0]))
        for role, pid in roles:
            watch.update({tid: f"{role} {comm}" for tid, comm in tids(pid).items()})
        k0 = {tid: kernel_switches(tid) for tid in watch}
        p = subprocess.run(["perf", "sched", "record", "-q", "-o", data, "--", "sleep",
                            str(secs)], capture_output=True, text=True, timeout=secs + 60)
        kernel = {tid: kernel_switches(tid) - k0[tid] for tid in watch}
        if p.returncode != 0 or not os.path.exists(data):
            raise RuntimeError(f"perf sched record: {p.stderr.strip()[-300:]}")
        out, _ = client.communicate(timeout=secs + 30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    try:
        threads, idle = timehist(data, watch, timeout=120)
    finally:
        os.unlink(data)
    for tid, t in threads.items():
        t["kernel_switches"] = kernel[tid]
    return bench.sockperf_percentiles(out), threads, idle


def show(name, rnd, lat, threads, idle):
    print(f"\n{name}, round {rnd}: round trip p50 {lat['p50']:.1f} µs, p99 {lat['p99']:.1f} µs, "
          f"p99.9 {lat['p999']:.1f} µs; CPU idle " +
          ", ".join(f"{c}: " + ("?" if v is None else f"{v:.0f} %")
                    for c, v in sorted(idle.items())))
    print(f"  {'thread':<28} {'switches':>8} {'(kernel)':>8} {'run ms':>8} {'wait ms':>8} "
          f"{'delay p50/p99/max µs':>22} {'migr':>5}  run share per CPU")
    seen = sum(t["switches"] for t in threads.values())
    counted = sum(t["kernel_switches"] for t in threads.values())
    if counted > 1000 and seen < counted / 4:
        print(f"  (perf saw {seen} of the {counted} switches the kernel counted: events were "
              f"lost, this run's thread figures are not reliable)")
    for tid, t in sorted(threads.items(), key=lambda kv: kv[1]["name"]):
        if not t["switches"] and not t["kernel_switches"]:
            continue
        delay = "/".join("—" if v is None else f"{v:.0f}"
                         for v in (t["delay_p50_us"], t["delay_p99_us"], t["delay_max_us"]))
        print(f"  {t['name'] + f' [{tid}]':<28} {t['switches']:>8} {t['kernel_switches']:>8} "
              f"{t['run_ms']:>8.1f} "
              f"{t['wait_ms']:>8.1f} {delay:>22} {t['migrations']:>5}  " +
              " ".join(f"{c}:{ms / t['run_ms'] * 100 if t['run_ms'] else 0:.0f}%"
                       for c, ms in sorted(t["cpus"].items())))


PLACEMENTS = {  # name: (client, proxy, server) CPU sets, on a machine of >= 2 CPUs
    "all on cpu 1": ({1}, {1}, {1}),
    "proxy on cpu 0, client and server on 1": ({1}, {0}, {1}),
    "client on cpu 0, proxy and server on 1": ({0}, {1}, {1}),
    "unpinned": (None, None, None),
}


def pin(pid, cpus):
    """Every thread of pid on cpus (None: all CPUs)."""
    cpus = cpus or set(range(os.cpu_count()))
    for tid in tids(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            pass


def placements(peer, be, secs):
    """{placement: sockperf percentiles} through peer."""
    out = {}
    for name, (cli, proxy, srv) in PLACEMENTS.items():
        pin(be.procs[2].pid, srv)
        if peer.pids:
            pin(peer.pids[0], proxy)
        cpus = cli or set(range(os.cpu_count()))
        p = subprocess.run(bench.NET.cli + ["sockperf", "ping-pong", "--tcp", "-i", peer.host,
                                            "-p", str(peer.ports["sockperf"]), "-t",
                                            str(int(secs + 0.5)), "--msg-size", "64"],
                           capture_output=True, text=True, timeout=secs + 30,
                           preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        out[name] = bench.sockperf_percentiles(p.stdout)
    pin(be.procs[2].pid, None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--netns", action="store_true", help="as bench.py --netns")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--secs", type=float, default=2.0, help="recorded seconds per run (≤ 10)")
    ap.add_argument("--pollers", type=int, default=1)
    ap.add_argument("--direct", action="store_true", help="also record the direct ping-pong")
    ap.add_argument("--pin", action="store_true",
                    help="round trip per fixed CPU placement instead of perf sched")
    ap.add_argument("--out", help="save every run's figures as JSON")
    args = ap.parse_args()
    args.secs = min(max(args.secs, 0.5), 10.0)
    if args.pin and (os.cpu_count() or 1) < 2:
        sys.exit("--pin needs 2 CPUs or more")
    for tool in (["perf"] if not args.pin else []) + ["sockperf", "haproxy", "redis-server",
                                                       "iperf3"]:
        if not shutil.which(tool):
            sys.exit(f"missing {tool}")
    kinds = [bench.Sluice, bench.HAProxy] + ([bench.Direct] if args.direct else [])
    runs = []
    bench.raise_nofile()
    with bench.network(args.netns) as net:
        tmp = tempfile.mkdtemp(prefix="sluice-rtt-")
        be = None
        try:
            be = bench.Backends(tmp)
            for rnd in range(args.rounds):
                for kind in (kinds if rnd % 2 == 0 else list(reversed(kinds))):
                    peer = kind(be, args.pollers, tmp)
                    peer.start()
                    try:
                        if args.pin:
                            placed = placements(peer, be, args.secs)
                        else:
                            lat, threads, idle = record(peer, be, args.secs, tmp)
                    finally:
                        peer.stop()
                    if args.pin:
                        for name, lat in placed.items():
                            print(f"{kind.name:<8} round {rnd}  {name:<40} p50 {lat['p50']:6.1f}"
                                  f"  p99 {lat['p99']:6.1f}  p99.9 {lat['p999']:7.1f} µs",
                                  flush=True)
                        runs.append({"peer": kind.name, "round": rnd, "placements": placed})
                        continue
                    show(kind.name, rnd, lat, threads, idle)
                    runs.append({"peer": kind.name, "round": rnd, "rtt_us": lat, "idle_pct": idle,
                                 "threads": {str(k): v for k, v in threads.items()}})
        finally:
            if be:
                be.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    for kind in kinds:
        mine = [r["rtt_us"]["p99"] for r in runs if r["peer"] == kind.name and "rtt_us" in r]
        if mine:
            print(f"\n{kind.name}: p99 across rounds {min(mine):.1f}–{max(mine):.1f} µs "
                  f"(median {statistics.median(mine):.1f}), mode {net.mode}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"mode": net.mode, "pollers": args.pollers, "secs": args.secs,
                       "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
