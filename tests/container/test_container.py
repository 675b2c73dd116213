"""The container image, built from docker/Dockerfile unchanged and run for
real with podman against two redis-servers on the host: PONG through the
containerised sluice, the admin token (200 with, 401 without), the image's
HEALTHCHECK, refusal without a token, a clean `podman stop`, no compiler and a
non-root user in the runtime image, and the image size.

Skips when podman is missing, except under CI=true, where it must run."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import free_port, redis_ping, start_redis, wait_until  # noqa: E402

IMAGE = "localhost/sluice:ci"
CI = os.environ.get("CI") == "true"
TOKEN = "ci-" + uuid.uuid4().hex
# This kind of machine: runc (crun trips on its cgroups), capped rlimits.
RUN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=16384:16384", "--ulimit",
             "nproc=4096:4096", "--network", "host"]


def podman(*args, timeout=120, check=True):
    p = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p




def http_status(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@unittest.skipUnless(shutil.which("podman") or CI, "podman not installed (CI=true requires it)")
class Container(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # --format docker: the OCI format has no HEALTHCHECK.
        build = ["build", "--format", "docker", "--isolation", "chroot", "--network", "host",
                 "-t", IMAGE,
                 "-f", "docker/Dockerfile", "."]
        if CI:
            build.insert(1, "--pull=never")  # the seeded base image; no registry here
        t0 = time.monotonic()
        p = subprocess.run(["podman", *build], cwd=ROOT, capture_output=True, text=True,
                           timeout=1500)
        if p.returncode != 0:
            raise AssertionError(f"image build failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
        cls.build_s = time.monotonic() - t0
        cls.tmp = tempfile.mkdtemp(prefix="sluice-ctr-")
        cls.redis_ports = [free_port(), free_port()]
        cls.redis = [start_redis(p, cls.tmp) for p in cls.redis_ports]

    @classmethod
    def tearDownClass(cls):
        for r in getattr(cls, "redis", []):
            r.terminate()
            r.wait(10)

    def setUp(self):
        self.names = []

    def tearDown(self):
        for n in self.names:
            podman("rm", "-f", "-t", "0", n, check=False)

    def config(self):
        """The image's own config with this run's free ports (host network)."""
        with open(os.path.join(ROOT, "docker", "sluice.json")) as f:
            cfg = json.load(f)
        self.lport, self.aport = free_port(), free_port()
        cfg["listeners"][0]["listen"] = f"0.0.0.0:{self.lport}"
        cfg["admin"]["listen"] = f"0.0.0.0:{self.aport}"
        cfg["pools"][0]["backends"][0]["address"] = f"127.0.0.1:{self.redis_ports[0]}"
        cfg["pools"][0]["backends"][1]["address"] = f"127.0.0.1:{self.redis_ports[1]}"
        path = os.path.join(self.tmp, f"sluice-{uuid.uuid4().hex}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        os.chmod(path, 0o644)
        return path

    def run_sluice(self, env_token=True):
        name = "sluice-ci-" + uuid.uuid4().hex[:8]
        self.names.append(name)
        args = ["run", "-d", "--name", name, *RUN_FLAGS,
                "-v", f"{self.config()}:/etc/sluice/sluice.json:ro"]
        if env_token:
            args += ["-e", f"SLUICE_ADMIN_TOKEN={TOKEN}"]
        podman(*args, IMAGE)
        return name

    def test_image_serves_redis_admin_healthcheck_and_stops_cleanly(self):
        name = self.run_sluice()
        wait_until(lambda: redis_ping(self.lport), timeout=30, what="PONG through the container")
        admin = f"http://127.0.0.1:{self.aport}"
        st, body = http_status(admin + "/api/v1/stats", TOKEN)
        self.assertEqual(st, 200)
        stats = json.loads(body)
        self.assertEqual(stats["pools"][0]["name"], "redis")
        self.assertGreaterEqual(stats["pollers"][0]["accepted"], 1)
        self.assertEqual(http_status(admin + "/api/v1/stats")[0], 401)
        self.assertEqual(http_status(admin + "/api/v1/stats", "wrong")[0], 401)
        # The image's own HEALTHCHECK command, as podman runs it.
        hc = podman("healthcheck", "run", name, check=False)
        self.assertEqual(hc.returncode, 0, hc.stdout + hc.stderr)
        # Non-root, and no compiler in the runtime image.
        self.assertNotEqual(podman("exec", name, "id", "-u").stdout.strip(), "0")
        comp = podman("exec", name, "sh", "-c", "command -v cc gcc c99 clang || true").stdout
        self.assertEqual(comp.strip(), "")
        # docker stop: SIGTERM, graceful shutdown, exit 0 well within the grace.
        t0 = time.monotonic()
        podman("stop", "-t", "15", name, timeout=60)
        took = time.monotonic() - t0
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        self.assertEqual(code, "0", podman("logs", name).stderr)
        self.assertLess(took, 15)
        logs = podman("logs", name)
        self.assertIn("no longer accepting", logs.stdout + logs.stderr)

    def test_refuses_to_start_without_a_token(self):
        name = self.run_sluice(env_token=False)
        wait_until(lambda: podman("inspect", name, "--format", "{{.State.Status}}")
                   .stdout.strip() == "exited", timeout=30, what="exit without token")
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        self.assertEqual(code, "1")
        logs = podman("logs", name)
        self.assertIn("SLUICE_ADMIN_TOKEN", logs.stdout + logs.stderr)

    def test_default_config_is_valid_and_size_is_reported(self):
        p = podman("run", "--rm", *RUN_FLAGS, IMAGE, "--check", "-c", "/etc/sluice/sluice.json")
        self.assertIn("ok", p.stdout)
        user = podman("image", "inspect", IMAGE, "--format", "{{.Config.User}}").stdout.strip()
        self.assertTrue(user and not user.startswith("0"), user)
        size = int(podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout.strip())
        base = int(podman("image", "inspect", "debian:bookworm-slim", "--format",
                          "{{.Size}}").stdout.strip())
        print(f"\nimage {IMAGE}: {size / 1e6:.1f} MB, {(size - base) / 1e6:.1f} MB over "
              f"debian:bookworm-slim (built in {self.build_s:.0f} s)", file=sys.stderr)
        # What sluice adds: the binary, two runtime libraries and their deps.
        self.assertLess(size - base, 40e6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
