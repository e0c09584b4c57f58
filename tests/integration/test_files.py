"""Files that are not what their names say (issue 13, item 2): a FIFO, a
directory or a device where tikd expects a rule file, a library, the
config, the vault key file, a sidecar or media is refused with a clear error,
never waited on; the daemon keeps serving and stops on SIGTERM."""
import json
import os
import signal
import time

from conftest import run_tikd
import fakectl
from test_publish import connect, video


def healthy(s):
    return fakectl.http_request("GET", "http://127.0.0.1:%d/healthz" % s.port,
                                timeout=2).status == 200


def test_a_fifo_named_like_a_rule_is_refused_and_the_rules_stay(s):
    d = s.start()
    os.mkfifo(s.root / "rules" / "evil.lua")
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    line = d.wait_for(r"event=rules\.load_error", after=mark)
    d.wait_for(r"event=rules\.reload_failed .*kept_gen=1", after=mark)
    assert "evil.lua" in line and "not a regular file" in line, line
    assert healthy(s)
    r = s.tikd("rules", "check", timeout=10)
    assert r.returncode == 1 and "evil.lua: not a regular file" in r.stdout + r.stderr, r
    os.remove(s.root / "rules" / "evil.lua")
    # a library a rule requires, planted as a FIFO
    (s.root / "rules" / "lib").mkdir(exist_ok=True)
    os.mkfifo(s.root / "rules" / "lib" / "trap.lua")
    (s.root / "rules" / "uses_trap.lua").write_text('local t = require "trap"\n')
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    line = d.wait_for(r"event=rules\.load_error", after=mark)
    d.wait_for(r"event=rules\.reload_failed .*kept_gen=1", after=mark)
    assert "trap.lua" in line, line
    assert healthy(s)
    t0 = time.monotonic()
    assert d.stop(timeout=10) == 0
    assert time.monotonic() - t0 < 8


def test_a_fifo_as_config_or_key_file_is_refused(site, tmp_path):
    cfg = tmp_path / "fifo.conf.lua"
    os.mkfifo(cfg)
    r = run_tikd("status", config=cfg, timeout=10)
    assert r.returncode == 1 and "not a regular file" in r.stderr, r.stderr
    (site / "vault.keys").unlink()
    os.mkfifo(site / "vault.keys")
    r = run_tikd("run", config=site / "tikd.conf.lua", timeout=10)
    assert r.returncode == 1 and "not a regular file" in r.stderr, r.stderr


def test_a_config_that_returns_a_value_is_refused(tmp_path):
    cfg = tmp_path / "five.conf.lua"
    cfg.write_text("return 5\n")
    r = run_tikd("status", config=cfg, timeout=10)
    assert r.returncode == 1
    assert "returned a number" in r.stderr, r.stderr


def test_fifos_in_an_intake_folder_never_stop_the_daemon(s, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n'
                     'intake = { folders = { "%s" }, settle = 0.2 }\n' % (inbox, inbox))
    (s.root / "rules" / "take.lua").write_text(
        "function on_media(m) tikd.log.info('seen', { path = m.path, caption = m.meta"
        " and m.meta.caption or '-' }) end\n")
    connect(s)
    d = s.start()
    os.mkfifo(inbox / "trap.mp4")
    os.mkfifo(inbox / "real.json")  # the sidecar of a real video
    video(inbox / "real.mp4")
    line = d.wait_for(r"msg=seen .*real\.mp4", timeout=20)
    assert "caption=-" in line, line
    assert healthy(s)
    time.sleep(0.5)
    assert not any("trap.mp4" in l and "msg=seen" in l for l in d.lines)
    assert d.stop(timeout=10) == 0
