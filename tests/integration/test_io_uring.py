"""The "io" key: io_uring really in use when asked for, and the fallback to
epoll when the kernel refuses io_uring (here: a seccomp filter on this one
sluice process), with one log line naming the reason and "io": "epoll" in
every poller's stats. The relay tests through io_uring are test_relay.py's
RelayUring and RelayUringSplice; test_redis.py has a benchmark through it."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ProxyTest, admin_request, connect, listen_port, recv_exactly,
                     simple_config)

DENY = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "deny_io_uring.py")]
REASON = "io: io_uring cannot be set up"


def pollers_io(cfg):
    return [p["io"] for p in admin_request(cfg, "GET", "/api/v1/pollers")[1]]


def seccomp_works():
    """Whether the helper can install its filter here (a probe run of true)."""
    return subprocess.run(DENY + ["true"], timeout=30).returncode == 0


class IoUring(ProxyTest):
    def echo_once(self, cfg):
        s = connect(listen_port(cfg))
        s.sendall(b"hello")
        self.assertEqual(recv_exactly(s, 5), b"hello")
        s.close()

    def test_io_uring_in_use_when_asked_and_epoll_by_default(self):
        b = self.backend()
        cfg = simple_config([b.port], pollers=2)
        self.sluice(cfg)
        self.assertEqual(pollers_io(cfg), ["epoll"] * 3)  # main + 2 subs
        cfg2 = simple_config([b.port], pollers=2)
        cfg2["io"] = "io_uring"
        sl = self.sluice(cfg2)
        self.assertEqual(pollers_io(cfg2), ["io_uring"] * 3, sl.output())
        self.assertNotIn(REASON, sl.output())
        self.echo_once(cfg2)

    @unittest.skipUnless(seccomp_works(), "seccomp filters cannot be installed here")
    def test_denied_io_uring_falls_back_to_epoll_with_one_line(self):
        b = self.backend()
        cfg = simple_config([b.port], pollers=3)
        cfg["io"] = "io_uring"
        sl = self.sluice(cfg, wrapper=DENY)
        self.assertEqual(pollers_io(cfg), ["epoll"] * 4, sl.output())
        self.echo_once(cfg)
        lines = [l for l in sl.output().splitlines() if REASON in l]
        self.assertEqual(len(lines), 1, sl.output())
        self.assertIn("Operation not permitted", lines[0])  # the reason: EPERM
        self.assertIn("using epoll", lines[0])

    @unittest.skipUnless(seccomp_works(), "seccomp filters cannot be installed here")
    def test_epoll_under_the_same_filter_says_nothing(self):
        b = self.backend()
        cfg = simple_config([b.port], pollers=1)
        sl = self.sluice(cfg, wrapper=DENY)
        self.assertEqual(pollers_io(cfg), ["epoll"] * 2)
        self.assertNotIn(REASON, sl.output())


if __name__ == "__main__":
    unittest.main(verbosity=2)
