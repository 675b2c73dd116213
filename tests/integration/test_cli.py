"""The command line: --check on good and bad configs (each message names the
file and the JSON path), --version, --help, and the missing-config message."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLUICE

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def run(*args, cwd=None):
    p = subprocess.run([os.path.abspath(SLUICE), *args], capture_output=True, text=True,
                       timeout=30, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


GOOD = {
    "listeners": [{"name": "l", "listen": "127.0.0.1:7000", "pool": "p"}],
    "pools": [{"name": "p", "backends": [{"name": "b", "address": "127.0.0.1:7001"}]}],
}


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-cli-")

    def test_check_ok(self):
        path = write(self.tmp, "good.json", json.dumps(GOOD))
        code, out, err = run("--check", "-c", path)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.strip(), f"{path}: ok")

    def test_shipped_example_config_is_valid(self):
        code, out, err = run("--check", "-c", os.path.join(ROOT, "config", "sluice.example.json"))
        self.assertEqual(code, 0, err)

    def test_check_reports_each_error_with_file_and_path(self):
        bad = json.loads(json.dumps(GOOD))
        bad["pools"][0]["backends"][0]["address"] = "127.0.0.1"  # no port
        bad["pools"][0]["retires"] = 3
        bad["listeners"][0]["pool"] = "nope"
        path = write(self.tmp, "bad.json", json.dumps(bad))
        code, out, err = run("--check", "-c", path)
        self.assertEqual(code, 1)
        self.assertIn(f"{path}: pools[0].backends[0].address: expected", err)
        self.assertIn(f"{path}: pools[0].retires: unknown key", err)
        self.assertIn(f"{path}: listeners[0].pool: no pool named \"nope\"", err)
        self.assertEqual(len(err.strip().splitlines()), 3)

    def test_syntax_error_names_line_and_column(self):
        path = write(self.tmp, "syntax.json", '{\n "pollers": 2\n "pools": []\n}')
        code, out, err = run("--check", "-c", path)
        self.assertEqual(code, 1)
        self.assertRegex(err, rf"{path}:3:\d+: invalid JSON")

    def test_bad_config_refuses_to_start(self):
        path = write(self.tmp, "bad.json", '{"pollers": "many"}')
        code, out, err = run("-c", path)
        self.assertEqual(code, 1)
        self.assertIn("pollers: expected an integer", err)

    def test_missing_default_config_is_explained(self):
        code, out, err = run(cwd=self.tmp)
        self.assertEqual(code, 1)
        self.assertIn("./sluice.json does not exist", err)

    def test_default_config_is_used_from_cwd(self):
        write(self.tmp, "sluice.json", json.dumps(GOOD))
        code, out, err = run("--check", cwd=self.tmp)
        self.assertEqual(code, 0, err)
        self.assertIn("using ./sluice.json", err)

    def test_version_and_help(self):
        code, out, _ = run("--version")
        self.assertEqual(code, 0)
        self.assertRegex(out, r"^sluice \d+\.\d+\.\d+")
        code, out, _ = run("--help")
        self.assertEqual(code, 0)
        self.assertIn("--check", out)
        code, _, err = run("--bogus")
        self.assertEqual(code, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
