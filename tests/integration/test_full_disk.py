"""A database that cannot grow (issue 13, item 8): with the map at
store.map_max (what a full disk looks like to LMDB), the daemon holds back
instead of spinning, logs once per interval, says so on /healthz, and a
command whose change did not commit says so and exits 1. Given room again,
every job goes out, once."""
import os
import subprocess
import time

import fakectl
from conftest import cpu_seconds
from test_limits import unique_videos, wait_all_final
from test_publish import connect, kill_once_tiktok_has_it

TOOLS = os.environ.get("TIKD_TOOLS", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build",
    "tests"))
DBFILL = os.path.join(TOOLS, "dbfill")


def test_a_full_database_holds_back_and_loses_nothing(s, tmp_path):
    s.limits(window=2.0, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    base = s.cfg.read_text()
    s.cfg.write_text(base + 'store = { map_initial = "1MiB", map_max = "1MiB" }\n')
    connect(s)
    planned = 5
    for f in unique_videos(tmp_path, planned):
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY", "--at", "+3s")
        assert r.returncode == 0, r.stderr
    # what a full disk leaves: not one more page
    fill = subprocess.run([DBFILL, str(s.root / "data"), str(1 << 20)], capture_output=True,
                          text=True)
    assert fill.returncode == 0 and int(fill.stdout) > 0, fill
    r = s.tikd("post", str(tmp_path / "v000.mp4"), "--account", "alice", "--privacy",
               "SELF_ONLY", "--again")
    assert r.returncode == 1 and "database is full" in r.stderr, r.stdout + r.stderr
    assert "store.map_max" in r.stderr and "planned" not in r.stdout
    d = s.start()
    time.sleep(2.5)  # the jobs come due; every commit fails
    d.wait_for(r"event=store\.write_failed .*database is full", timeout=10)
    c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
    time.sleep(4)
    used = cpu_seconds(d.proc.pid) - c0
    assert used < 0.5 * (time.monotonic() - t0), used  # no spinning
    resp = fakectl.http_request("GET", "http://127.0.0.1:%d/healthz" % s.port, timeout=5)
    assert resp.status == 503 and b"database refuses writes" in resp.body, resp
    d.wait_for(r"event=daemon\.ready")  # pump what was logged so far
    warned = [l for l in d.lines if "event=store.write_failed" in l]
    assert 1 <= len(warned) <= 3, warned  # once per 10 s, whatever the attempts
    r = s.tikd("job", "cancel", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "was not changed" in r.stderr and "cancelled" not in r.stdout + r.stderr, r
    assert s.fake.ctl.posts() == []
    assert d.stop() == 0

    # room again: every job goes out once, job 1 included (its cancel never committed)
    s.cfg.write_text(base + 'store = { map_initial = "1MiB", map_max = "64MiB" }\n')
    d = s.start()
    wait_all_final(s, d, 120)
    assert len(s.fake.ctl.posts()) == planned
    show = s.tikd("job", "show", "1").stdout
    assert "state:        published" in show, show
    assert d.proc.poll() is None


def test_a_daemon_killed_mid_init_starts_on_a_full_database(s, tmp_path):
    """The chaos suite's full-disk kill: an init was in flight when tikd
    died, and the database cannot grow when it starts again. Settling that
    init's rate-limit record cannot commit: the daemon still starts and holds
    back (the record stays counted as in flight, the safe reading), and given
    room again the job posts once."""
    s.fake.ctl.set_config(time_scale=0.01)
    base = s.cfg.read_text()
    connect(s)
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/v2/post/publish/video/init/",
                         answer_delay_sec=30)
    d = s.start()
    v = unique_videos(tmp_path, 1)[0]
    assert s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY").returncode == 0
    kill_once_tiktok_has_it(s, d)
    s.fake.ctl.clear_faults()
    mib = (os.path.getsize(s.root / "data" / "data.mdb") >> 20) + 2
    s.cfg.write_text(base + 'store = { map_initial = "%dMiB", map_max = "%dMiB" }\n' % (mib, mib))
    fill = subprocess.run([DBFILL, str(s.root / "data"), str(mib << 20)], capture_output=True,
                          text=True)
    assert fill.returncode == 0, fill
    d = s.start()  # ready, though what start-up writes cannot commit
    d.wait_for(r"event=store\.(commit|write)_failed .*", timeout=10)
    time.sleep(1)
    assert s.fake.ctl.posts() == []
    assert d.stop() == 0

    s.cfg.write_text(base + 'store = { map_initial = "%dMiB", map_max = "256MiB" }\n' % mib)
    d = s.start()
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=60)
    assert len(s.fake.ctl.posts()) == 1
