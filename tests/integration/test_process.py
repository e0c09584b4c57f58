"""The daemon process (issue 13, items 1, 4 and 5): one per data directory
(a second `tikd run` on the same data dir is refused before it touches
anything, a Unix socket another process listens on is never taken over or
removed, a pid left behind by a dead daemon is never signalled), and no core
file can hold its secrets."""
import os
import signal
import socket
import subprocess
import time

from conftest import Daemon, run_tikd
import fakectl
from test_publish import connect, video


def healthy(s):
    resp = fakectl.http_request("GET", "http://127.0.0.1:%d/healthz" % s.port, timeout=2)
    return resp.status == 200


def unix_get(path, target="/healthz"):
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(2)
        c.connect(path)
        c.sendall(b"GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % target.encode())
        return c.recv(4096).split(b"\r\n", 1)[0]


def test_a_second_daemon_is_refused_and_changes_nothing(s, tmp_path):
    sock = str(tmp_path / "tikd.sock")
    s.cfg.write_text(s.cfg.read_text() + 'listen = { "127.0.0.1:%d", "unix:%s" }\n'
                     % (s.port, sock))
    connect(s)
    a = s.start()
    assert b"200" in unix_get(sock)
    r = s.tikd("run", timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "already running (pid %d)" % a.proc.pid in r.stderr, r.stderr
    # the first daemon keeps its socket, its pid and its work
    assert os.path.exists(sock) and b"200" in unix_get(sock)
    assert healthy(s)
    st = s.tikd("status")
    assert "running (pid %d" % a.proc.pid in st.stdout, st.stdout
    assert st.returncode == 0, st.stdout + st.stderr
    v = video(tmp_path / "clip.mp4", duration=3)
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--caption",
               "once", "--wait", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [p["title"] for p in s.fake.ctl.posts()] == ["once"]
    assert a.stop() == 0
    assert not os.path.exists(sock)  # its own socket goes with it
    st = s.tikd("status")
    assert "not running" in st.stdout and st.returncode == 1, st.stdout


def test_many_daemons_started_at_once_one_runs(s):
    """No window between checking and locking: of eight started together,
    exactly one runs."""
    ds = [Daemon(s.cfg, env=s.env) for _ in range(8)]
    try:
        deadline = time.monotonic() + 20
        while sum(d.proc.poll() is None for d in ds) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = [d for d in ds if d.proc.poll() is None]
        assert len(alive) == 1, [d.proc.poll() for d in ds]
        alive[0].wait_for(r"event=daemon\.ready")
        for d in ds:
            if d is not alive[0]:
                d.stop()
                assert d.proc.returncode == 1
                assert any("already running" in l for l in d.lines), d.lines
        assert healthy(s)
    finally:
        for d in ds:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()


def test_a_unix_socket_in_use_is_never_taken(s, tmp_path, site):
    """Another data dir, the same socket path: the second daemon is refused
    and the first keeps its socket. A file that is not a socket is never
    replaced; a socket left by a dead process is."""
    sock = str(tmp_path / "shared.sock")
    s.cfg.write_text(s.cfg.read_text() + 'listen = { "127.0.0.1:%d", "unix:%s" }\n'
                     % (s.port, sock))
    a = s.start()
    other = tmp_path / "other.conf.lua"
    other.write_text(s.cfg.read_text().replace('data_dir = "data"', 'data_dir = "data2"')
                     + 'listen = { "unix:%s" }\n' % sock)
    r = run_tikd("run", config=other, env=s.env, timeout=20)
    assert r.returncode == 1
    assert "is in use by another process" in r.stderr, r.stderr
    assert b"200" in unix_get(sock)
    a.stop()

    plain = tmp_path / "plain"
    plain.write_text("keep me\n")
    other.write_text(other.read_text() + 'listen = { "unix:%s" }\n' % plain)
    r = run_tikd("run", config=other, env=s.env, timeout=20)
    assert r.returncode == 1 and "exists and is not a socket" in r.stderr, r.stderr
    assert plain.read_text() == "keep me\n"

    stale = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(stale)
    dead.close()  # bound, never listening: what a killed daemon leaves
    other.write_text(other.read_text() + 'listen = { "unix:%s" }\n' % stale)
    d = Daemon(other, env=s.env)
    try:
        d.wait_for(r"event=daemon\.ready")
        assert b"200" in unix_get(stale)
    finally:
        d.stop()


def test_a_stale_pid_is_never_signalled(s, tmp_path):
    """After a kill -9 the pid file stays; whatever process has that pid
    now is not tikd and must not receive SIGUSR1 (it would die of it)."""
    connect(s)
    a = s.start()
    a.proc.kill()
    a.proc.wait()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (s.root / "data" / "tikd.pid").write_text("%d\n" % bystander.pid)
        st = s.tikd("status")
        assert "not running" in st.stdout, st.stdout
        v = video(tmp_path / "clip.mp4", duration=3)
        r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "no tikd run is up" in r.stdout, r.stdout
        time.sleep(0.2)
        assert bystander.poll() is None, "a process that is not tikd was signalled"
        # the next daemon takes the lock over the stale pid and posts the job
        b = s.start()
        assert (s.root / "data" / "tikd.pid").read_text().strip() == str(b.proc.pid)
        b.wait_for(r"event=job\.published|state=published", timeout=30)
    finally:
        bystander.kill()
        bystander.wait()


def test_no_core_file_can_hold_a_secret(s, tmp_path):
    """RLIMIT_CORE is 0, soft and hard, so not even the process itself can
    raise it again; a SIGABRT leaves no core behind."""
    a = s.start()
    limits = open("/proc/%d/limits" % a.proc.pid).read()
    row = [l for l in limits.splitlines() if l.startswith("Max core file size")][0]
    assert row.split()[4:6] == ["0", "0"], row
    a.proc.send_signal(signal.SIGABRT)
    a.proc.wait(timeout=10)
    for where in (s.root, s.root / "data", tmp_path):
        assert not [f for f in os.listdir(where) if f.startswith("core")], os.listdir(where)
