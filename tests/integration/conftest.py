"""Shared fixtures for integration tests: the tikd binary, a private data and
rules dir per test, and a handle on a running `tikd run` whose log lines can
be awaited (with a bound, never a bare sleep)."""
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIKD = os.environ.get("TIKD_BIN", os.path.join(REPO, "build", "tikd"))


def run_tikd(*args, config=None, env=None, timeout=30):
    cmd = [TIKD] + (["--config", str(config)] if config else []) + list(args)
    e = dict(os.environ)
    e.pop("TIKD_CONFIG", None)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


class Daemon:
    """A `tikd run` child; every stderr line is kept and can be awaited."""

    def __init__(self, config, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([TIKD, "--config", str(config), "run"],
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

    def wait_for(self, pattern, timeout=10):
        """Return the first line (from any seen so far) matching pattern."""
        rx = re.compile(pattern)
        for line in self.lines:
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
                   'vault = { key_file = "vault.keys" }\n' % REPO)
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
