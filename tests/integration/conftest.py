"""Shared fixtures for integration tests: the tikd binary, a private data and
rules dir per test, and a handle on a running `tikd run` whose log lines can
be awaited (with a bound, never a bare sleep)."""
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fake"))
import fakectl  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIKD = os.environ.get("TIKD_BIN", os.path.join(REPO, "build", "tikd"))


def sanitized():
    """True for a tikd built with AddressSanitizer (make asan): its allocator
    holds freed memory in quarantine, so resident sizes say little."""
    r = subprocess.run(["ldd", TIKD], capture_output=True, text=True)
    return "libasan" in r.stdout


def cpu_seconds(pid):
    """User + system CPU seconds process pid used so far."""
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def run_tikd(*args, config=None, env=None, timeout=30, cwd=None):
    cmd = [TIKD] + (["--config", str(config)] if config else []) + list(args)
    e = dict(os.environ)
    e.pop("TIKD_CONFIG", None)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)


class Daemon:
    """A `tikd run` child; every stderr line is kept and can be awaited."""

    def __init__(self, config, env=None, binary=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([binary or TIKD, "--config", str(config), "run"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=e)
        self.lines = []
        self._q = queue.Queue()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for line in self.proc.stderr:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern, timeout=10, after=0):
        """Return the first line matching pattern, among those seen so far
        from index `after` on, or the next ones as they come."""
        rx = re.compile(pattern)
        for line in self.lines[after:]:
            if rx.search(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no log line matching %r in %ss; got:\n%s"
                                     % (pattern, timeout, "\n".join(self.lines)))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("tikd exited (%s) before %r; got:\n%s"
                                     % (self.proc.wait(), pattern, "\n".join(self.lines)))
            self.lines.append(line)
            if rx.search(line):
                return line

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self._t.join(timeout=5)
        while True:
            try:
                line = self._q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return rc


@pytest.fixture
def site(tmp_path):
    """A data dir, a rules dir with the example rules, and a config file."""
    rules = tmp_path / "rules"
    shutil.copytree(os.path.join(REPO, "rules"), rules)
    cfg = tmp_path / "tikd.conf.lua"
    cfg.write_text('data_dir = "data"\nrules_dir = "rules"\n'
                   'scripts_dir = "%s/scripts"\nshutdown_grace = 2\n'
                   'listen = { "127.0.0.1:0" }\n'
                   'vault = { key_file = "vault.keys" }\n'
                   # tests reload by SIGHUP when they mean to (test_reload.py
                   # covers reloading on a change)
                   'rules = { watch = false }\n' % REPO)
    r = run_tikd("vault", "init", config=cfg)
    assert r.returncode == 0, r.stderr
    return tmp_path


@pytest.fixture
def daemon(site):
    started = []

    def start(env=None):
        d = Daemon(site / "tikd.conf.lua", env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    """A tikd config pointed at a fake, plus everything tikd printed."""

    def __init__(self, root, fake, extra=""):
        self.root, self.fake = root, fake
        self.port = free_port()
        self.redirect = "http://127.0.0.1:%d/oauth/callback" % self.port
        self.cfg = root / "tikd.conf.lua"
        self.cfg.write_text(self.cfg.read_text() + """
listen = { "127.0.0.1:%d" }
oauth = { sweep_interval = 0.5 }
media = { check_urls = false } -- the fake's verified domains do not resolve: no network
tiktok = { client_key = "fake_client_key", api_url = "%s",
           auth_url = "%s/v2/auth/authorize/", redirect_uri = "%s" }
%s""" % (self.port, fake.base_url, fake.base_url, self.redirect, extra))
        self.fake_client_secret = "fake_client_secret"
        self.env = {"TIKD_CLIENT_SECRET": self.fake_client_secret}
        self.output = []
        self.daemons = []

    def limits(self, window=3, daily=15, daily_window=86400, pending=5, guard=0.05, **tikd):
        """The same budgets at the fake and in tikd, scaled for speed. Later
        calls replace earlier ones (the config's `limits` table is rewritten)."""
        self.fake.ctl.set_config(rate_limit_window_sec=window, daily_post_cap=daily,
                                 daily_post_window_sec=daily_window, pending_share_cap=pending,
                                 pending_share_window_sec=daily_window)
        extra = "".join(", %s = %s" % (k, v) for k, v in tikd.items())
        self.cfg.write_text(self.cfg.read_text() + """
limits = { window = %s, daily_posts = %d, daily_window = %s, pending_shares = %d,
           pending_window = %s, guard = %s%s }
""" % (window, daily, daily_window, pending, daily_window, guard, extra))

    def tikd(self, *args, timeout=30, cwd=None):
        try:
            r = run_tikd(*args, config=self.cfg, env=self.env, timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired as t:
            raise AssertionError("tikd %s timed out; daemon log:\n%s" % (
                " ".join(args), "\n".join(self.daemons[-1].lines[-40:]) if self.daemons else ""))
        self.output += [r.stdout, r.stderr]
        return r

    def start(self):
        d = Daemon(self.cfg, env=self.env)
        self.daemons.append(d)
        d.wait_for(r"event=daemon\.ready")
        return d

    def authorize_url(self, name, reauth=False):
        r = self.tikd("account", "reauth" if reauth else "add", name)
        assert r.returncode == 0, r.stderr
        return re.search(r"^\s+(http\S+/v2/auth/authorize/\S+)$", r.stdout, re.M).group(1)

    def approve(self, url, user=None):
        """The browser: the fake's authorize page redirects back with a code."""
        if user:
            url += "&fake_user=" + user
        resp = fakectl.http_request("GET", url)
        assert resp.status == 302, resp
        return resp.headers["location"]

    def accounts(self):
        r = self.tikd("account", "list")
        assert r.returncode == 0, r.stderr
        rows = {}
        for line in r.stdout.splitlines()[1:]:
            f = line.split()
            rows[f[0]] = {"state": f[1], "open_id": f[2]}
        return rows

    def daily_used(self, account):
        """The daily_posts count `tikd limits` shows for account."""
        out = self.tikd("limits", account).stdout
        m = re.search(r"daily_posts\s+(\d+)/(\d+)", out)
        assert m, out
        return int(m.group(1))

    def audit(self):
        return self.tikd("audit", "list", "--last", "1000").stdout

    def assert_no_token_leaked(self):
        for d in self.daemons:
            if d.proc.poll() is None:
                d.stop()
        tokens = [t for t in self.fake.ctl.tokens()["all"] if len(t) >= 8]
        assert tokens, "the fake issued no token"
        blobs = [(self.root / "data" / "data.mdb").read_bytes()]
        texts = self.output + ["\n".join(d.lines) for d in self.daemons]
        for t in tokens:
            for b in blobs:
                assert t.encode() not in b, "a token is in the database file"
            for text in texts:
                assert t not in text, "a token is in tikd's output or logs"


@pytest.fixture
def fake():
    f = fakectl.InProcessFake()
    f.start()
    yield f
    f.stop()


@pytest.fixture
def s(site, fake):
    st = Site(site, fake)
    st.limits()  # TikTok's budgets on a 3-second "minute": tests need not wait for them
    yield st
    for d in st.daemons:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
