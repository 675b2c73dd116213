"""The live dashboard (GET / on the admin endpoint) against the real binary.

Page: what GET / answers and to whom (no token needed, the Host and Origin
rules still apply, the Content-Security-Policy allows exactly the page's own
inline code by hash, nosniff), through plain HTTP.

Browser: Debian's Chromium, driven headless by chromedriver through
python3-selenium, loads the page from a sluice that requires a token; the
page asks for it, shows live numbers that move under traffic driven from
here, and a click on "drain" drains the backend (checked through the JSON
API). A screenshot is kept in $SLUICE_ARTIFACTS, else in test-artifacts/
next to the binary (build/test-artifacts/dashboard.png). Skipped when
Chromium, chromedriver or selenium is missing, unless CI=true."""

import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

# python3-selenium is a Debian package: when this interpreter is not
# Debian's own (a pyenv, a venv), run the whole file under /usr/bin/python3.
try:
    import selenium  # noqa: F401
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    HAVE_SELENIUM = True
except ImportError:
    if (os.path.exists("/usr/bin/python3") and not os.environ.get("SLUICE_DASHBOARD_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3")):
        os.environ["SLUICE_DASHBOARD_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    HAVE_SELENIUM = False

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLUICE, ProxyTest, connect, listen_port, simple_config, wait_until  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "dash-s3cret"
WAIT_S = 30  # every browser wait is bounded by this


def browser_missing():
    """Why the browser test cannot run here, or None."""
    if not HAVE_SELENIUM:
        return "python3-selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (chromium, chromium-driver)"
    return None


def artifacts_dir():
    d = os.environ.get("SLUICE_ARTIFACTS") or os.path.join(
        os.path.dirname(os.path.abspath(SLUICE)), "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def http(base, method, path, token=None, headers=None, body=None):
    """(status, headers, text) of one request."""
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


class Traffic:
    """Echo round trips through sluice on one held-open connection, on a
    thread, until stopped (at most `limit_s`)."""

    def __init__(self, port, limit_s=120):
        self.sock = connect(port)
        self.stopping = threading.Event()
        self.moved = 0
        self.error = None
        self.deadline = time.monotonic() + limit_s
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        chunk = os.urandom(16 * 1024)
        try:
            while not self.stopping.is_set() and time.monotonic() < self.deadline:
                self.sock.sendall(chunk)
                got = 0
                while got < len(chunk):
                    data = self.sock.recv(len(chunk) - got)
                    if not data:
                        raise OSError("sluice closed the connection")
                    got += len(data)
                self.moved += 2 * len(chunk)
                time.sleep(0.02)  # steady, not a flood: the machine is shared
        except OSError as e:
            self.error = e

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        self.sock.close()


class Page(ProxyTest):
    """GET / over plain HTTP: no browser needed."""

    def start(self, token=TOKEN):
        b = self.backend()
        cfg = simple_config([b.port])
        if token:
            cfg["admin"]["token"] = token
        self.sluice(cfg)
        self.base = "http://" + cfg["admin"]["listen"]
        self.host = cfg["admin"]["listen"]
        return cfg

    def test_page_needs_no_token_and_carries_its_policy(self):
        self.start()
        st, h, text = http(self.base, "GET", "/")
        self.assertEqual(st, 200, text)
        self.assertTrue(h["Content-Type"].startswith("text/html"), h["Content-Type"])
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        self.assertIn("<title>sluice dashboard</title>", text)
        # The API itself still wants the token.
        self.assertEqual(http(self.base, "GET", "/api/v1/stats")[0], 401)
        # Self-contained: no URL of another place, nothing loaded from a file.
        self.assertNotRegex(text, r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/")
        self.assertNotRegex(text, r"(?i)<(script|link|img|iframe)[^>]*(src|href)=")
        # The policy names exactly the page's inline style and script by hash.
        csp = h["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        self.assertEqual(directives["default-src"], "'none'")
        self.assertEqual(directives["connect-src"], "'self'")
        self.assertEqual(directives["frame-ancestors"], "'none'")
        self.assertNotIn("unsafe", csp)
        for tag in ("style", "script"):
            blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)
            self.assertEqual(len(blocks), 1, tag)
            digest = base64.b64encode(hashlib.sha256(blocks[0].encode()).digest()).decode()
            self.assertEqual(directives[f"{tag}-src"], f"'sha256-{digest}'")
        # The JSON API's answers are nosniff too, and carry no page policy.
        st, h, _ = http(self.base, "GET", "/api/v1/stats", token=TOKEN)
        self.assertEqual(st, 200)
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        self.assertIsNone(h["Content-Security-Policy"])

    def test_page_keeps_the_host_and_origin_rules(self):
        self.start()
        self.assertEqual(http(self.base, "GET", "/", headers={"Host": "evil.example"})[0], 403)
        st, _, text = http(self.base, "GET", "/", headers={"Origin": "http://evil.example"})
        self.assertEqual(st, 403, text)
        self.assertEqual(http(self.base, "GET", "/",
                              headers={"Origin": "http://" + self.host})[0], 200)
        st, h, _ = http(self.base, "POST", "/", body={})
        self.assertEqual(st, 405)
        self.assertEqual(h["Allow"], "GET")
        # Only "/" is the page: other paths are the API's, token first.
        self.assertEqual(http(self.base, "GET", "/index.html")[0], 401)
        self.assertEqual(http(self.base, "GET", "/index.html", token=TOKEN)[0], 404)

    def test_stats_carry_the_busy_ratio_terms(self):
        self.start(token=None)
        st, _, text = http(self.base, "GET", "/api/v1/pollers")
        self.assertEqual(st, 200)
        for p in json.loads(text):
            self.assertIsInstance(p["busy_ns"], int)
            self.assertGreater(p["age_ns"], 0)
            self.assertLessEqual(p["busy_ns"], p["age_ns"])


class Browser(ProxyTest):
    """The page in a real headless Chromium."""

    def setUp(self):
        super().setUp()
        why = browser_missing()
        if why:
            if os.environ.get("CI") == "true":
                self.fail(f"CI=true and the dashboard's browser test cannot run: {why}")
            self.skipTest(why)
        self.profile = tempfile.mkdtemp(prefix="sluice-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--no-first-run", "--disable-extensions", "--disable-background-networking",
                  f"--user-data-dir={self.profile}", "--window-size=1280,1000"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(WAIT_S)
        self.driver.set_script_timeout(WAIT_S)

    def tearDown(self):
        driver = getattr(self, "driver", None)
        if driver:
            driver.quit()
        if getattr(self, "profile", None):
            shutil.rmtree(self.profile, ignore_errors=True)
        super().tearDown()

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def value(self, css):
        """A cell's raw value (data-v) from the DOM, or None."""
        return self.js("const e = document.querySelector(arguments[0]);"
                       "return e ? e.dataset.v : null;", css)

    def number(self, css):
        v = self.value(css)
        return float(v) if v not in (None, "") else None

    def updates(self):
        return int(self.js("return document.getElementById('status').dataset.updates"))

    def api_backend(self, name):
        st, _, text = http(self.base, "GET", "/api/v1/pools/p/backends/" + name, token=TOKEN)
        self.assertEqual(st, 200, text)
        return json.loads(text)

    def test_token_live_numbers_and_drain(self):
        b0, b1 = self.backend(), self.backend()
        cfg = simple_config([b0.port, b1.port])
        cfg["admin"]["token"] = TOKEN
        self.sluice(cfg)
        self.base = "http://" + cfg["admin"]["listen"]
        d = self.driver

        # The API wants a token: the page asks for it.
        d.get(self.base + "/")
        wait_until(lambda: d.find_element(By.ID, "auth").is_displayed(), timeout=WAIT_S,
                   step=0.1, what="the page to ask for the token")
        # A wrong token: asked again, and it says so.
        d.find_element(By.ID, "token").send_keys("wrong-token")
        d.find_element(By.ID, "token-use").click()
        wait_until(lambda: d.find_element(By.ID, "auth").is_displayed()
                   and "refused" in d.find_element(By.ID, "auth-why").text, timeout=WAIT_S,
                   step=0.1, what="the page to ask again after a wrong token")
        self.assertEqual(self.updates(), 0)
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.ID, "token-use").click()
        wait_until(lambda: self.updates() >= 1, timeout=WAIT_S, step=0.1,
                   what="the first refresh with the token")
        self.assertFalse(d.find_element(By.ID, "auth").is_displayed())
        self.assertNotIn(TOKEN, d.current_url)
        self.assertEqual(self.js("return sessionStorage.getItem('sluice.admin.token')"), TOKEN)
        wait_until(lambda: self.value('tr[data-backend="b1"] td[data-k="state"]') == "up",
                   timeout=WAIT_S, step=0.1, what="backend rows")

        # Live numbers: the bytes relayed and the throughput move under
        # traffic, and the held session shows.
        before = self.number('#pollers tfoot td[data-k="bytes"]')
        self.assertIsNotNone(before)
        n0 = self.updates()
        traffic = Traffic(listen_port(cfg))
        try:
            wait_until(lambda: (self.number('#pollers tfoot td[data-k="sessions"]') or 0) >= 1,
                       timeout=WAIT_S, step=0.1, what="the session on the page")
            wait_until(lambda: (self.number('#pollers tfoot td[data-k="bytes"]') or 0) > before,
                       timeout=WAIT_S, step=0.1, what="bytes relayed to grow on the page")
            wait_until(lambda: (self.number('#pollers tfoot td[data-k="bps"]') or 0) > 0,
                       timeout=WAIT_S, step=0.1, what="a throughput on the page")
            mid = self.number('#pollers tfoot td[data-k="bytes"]')
            wait_until(lambda: self.number('#pollers tfoot td[data-k="bytes"]') > mid,
                       timeout=WAIT_S, step=0.1, what="bytes relayed to keep growing")
            self.assertGreaterEqual(self.updates(), n0 + 2)
            busy = self.js("return Array.from(document.querySelectorAll("
                           "'#pollers tbody td[data-k=\"busy\"]'), e => e.dataset.v)")
            self.assertEqual(len(busy), len(json.loads(http(self.base, "GET", "/api/v1/pollers",
                                                            token=TOKEN)[2])))
            for r in busy:
                self.assertTrue(0 <= float(r) <= 1, busy)
            self.assertIsNone(traffic.error)
            # The client's backend shows it.
            wait_until(lambda: sum(self.number(f'tr[data-backend="{b}"] td[data-k="sessions"]')
                                   for b in ("b0", "b1")) == 1,
                       timeout=WAIT_S, step=0.1, what="the session on its backend's row")
            # Connect-time percentiles: the API's numbers once it has them
            # (backend.latency.connect_ms), "-" for a backend without.
            for name in ("b0", "b1"):
                lat = self.api_backend(name).get("latency", {}).get("connect_ms")
                for q in ("p50", "p99"):
                    css = f'tr[data-backend="{name}"] td[data-k="{q}"]'
                    if lat and lat.get("count"):
                        wait_until(lambda: self.value(css) not in (None, ""), timeout=WAIT_S,
                                   step=0.1, what=f"{name}'s connect {q}")
                        self.assertGreaterEqual(float(self.value(css)), 0)
                        self.assertTrue(d.find_element(By.CSS_SELECTOR, css).text.endswith(" ms"))
                    else:
                        self.assertEqual(d.find_element(By.CSS_SELECTOR, css).text, "-")
        finally:
            traffic.stop()

        # A drain clicked in the page drains the backend.
        btn = d.find_element(By.CSS_SELECTOR, 'tr[data-backend="b0"] button[data-action="drain"]')
        btn.click()
        wait_until(lambda: self.api_backend("b0")["state"] in ("draining", "drained"),
                   timeout=WAIT_S, step=0.1, what="b0 drained through the API")
        self.assertEqual(self.api_backend("b1")["state"], "up")
        wait_until(lambda: self.value('tr[data-backend="b0"] td[data-k="state"]')
                   in ("draining", "drained"), timeout=WAIT_S, step=0.1,
                   what="the page to show b0 draining")
        self.assertIn("drain p/b0", d.find_element(By.ID, "msg").text)
        self.assertTrue(d.find_element(
            By.CSS_SELECTOR, 'tr[data-backend="b0"] button[data-action="enable"]').is_enabled())

        path = os.path.join(artifacts_dir(), "dashboard.png")
        self.assertTrue(d.save_screenshot(path), path)
        print(f"\ndashboard screenshot: {path}", file=sys.stderr)

        # The token went in headers only; the page broke no policy.
        csp = [e["message"] for e in d.get_log("browser")
               if "Content Security Policy" in e["message"]]
        self.assertEqual(csp, [])


if __name__ == "__main__":
    unittest.main()
