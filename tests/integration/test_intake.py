"""Watched media folders feed the rules: a file is taken once it has
settled, once per content (a rename or a second copy is not new), with its
sidecar metadata, and the example rules route it: a cross-post to five
accounts 20 minutes apart, and an agency client's next slot in its own time
zone with a caption from the shared library."""
import datetime
import json
import os
import re
import shutil
import signal
import time
import zoneinfo

from test_publish import connect, video

BRANDS = ["brand-de", "brand-fr", "brand-es", "brand-it", "brand-uk"]


def jobs(s):
    """Every job in the queue: (id, account, due as a UTC datetime)."""
    out = []
    for line in s.tikd("queue", "--all").stdout.splitlines()[1:]:
        f = line.split()
        assert f[4] != "-", s.tikd("queue", "--all").stdout + "\n".join(s.daemons[-1].lines)
        out.append((int(f[0]), f[2], datetime.datetime.strptime(f[4], "%Y-%m-%dT%H:%M:%SZ")
                    .replace(tzinfo=datetime.timezone.utc)))
    return out


def wait_jobs(s, n, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = jobs(s)
        if len(got) >= n:
            return got
        time.sleep(0.2)
    return jobs(s)


def test_dropped_media_is_taken_once_and_routed_by_the_rules(s, tmp_path):
    inbox = tmp_path / "in"
    for sub in ("crosspost", "client-tokyo"):
        (inbox / sub).mkdir(parents=True)
    s.cfg.write_text(s.cfg.read_text() +
                     'media_roots = { "%s" }\nintake = { folders = { "%s", "%s" }, settle = 0.3 }\n'
                     % (inbox, inbox / "crosspost", inbox / "client-tokyo"))
    for i, name in enumerate(BRANDS + ["client-tokyo"]):
        s.fake.ctl.put_creator({"open_id": "-000FakeIntake%02d000000000000000" % i,
                                "username": name})
        connect(s, name, user=name)
    d = s.start()
    clip = video(tmp_path / "clip.mp4")
    # the sidecar first, then the video, copied in pieces (a copy in progress)
    (inbox / "crosspost" / "launch.json").write_text(json.dumps({"caption": "Launch day #new"}))
    data = clip.read_bytes()
    part = inbox / "crosspost" / "launch.mp4"
    with open(part, "wb") as f:
        for i in range(0, len(data), len(data) // 4 + 1):
            f.write(data[i:i + len(data) // 4 + 1])
            f.flush()
            time.sleep(0.1)
    got = wait_jobs(s, 5)
    assert sorted(a for _, a, _ in got) == sorted(BRANDS), got
    dues = sorted(t for _, _, t in got)
    assert [(b - a).total_seconds() for a, b in zip(dues, dues[1:])] == [1200.0] * 4
    assert dues[0].minute % 15 == 0 and dues[0].second == 0
    show = s.tikd("job", "show", str(got[0][0])).stdout
    assert "caption:      Launch day #new" in show and "rules/crosspost.lua" in show, show
    # the same content again, renamed or copied: not new
    os.rename(part, inbox / "crosspost" / "launch-final.mp4")
    shutil.copy(inbox / "crosspost" / "launch-final.mp4", inbox / "crosspost" / "copy.mp4")
    # both are taken as what they are, duplicates, which no rule is offered
    d.wait_for(r"event=intake\.duplicate .*path=\S*launch-final\.mp4", timeout=10)
    d.wait_for(r"event=intake\.duplicate .*path=\S*copy\.mp4", timeout=10)
    assert len(jobs(s)) == 5
    # an agency client: its next slot in Tokyo, a caption from the shared library
    (inbox / "client-tokyo" / "ramen.json").write_text(
        json.dumps({"title": "Ramen night", "tags": ["food"]}))
    shutil.copy(video(tmp_path / "ramen.mp4", mdat=250_000), inbox / "client-tokyo" / "ramen.mp4")
    got = wait_jobs(s, 6)
    mine = [j for j in got if j[1] == "client-tokyo"]
    assert len(mine) == 1, "\n".join(d.lines)
    (jid, acct, due), = mine
    local = due.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute) in ((8, m) for m in range(6)) or \
        (local.hour, local.minute) in ((20, m) for m in range(30, 36)), local
    show = s.tikd("job", "show", str(jid)).stdout
    assert "caption:      Ramen night #food #tokyo #madewithtikd" in show, show
    assert "privacy:      PUBLIC_TO_EVERYONE" in show and "rules/agency.lua" in show
    # a restart offers nothing again: its scan finds every file known
    d.stop()
    d = s.start()
    line = d.wait_for(r"event=intake\.scanned ")
    assert "pending=0" in line and "known=3" in line, line  # launch-final, copy, ramen
    assert len(jobs(s)) == 6
    assert d.proc.poll() is None


def test_tikd_post_knows_content_as_the_intake_does(s, tmp_path):
    """`tikd post` feeds the same media ledger: the same video planned twice
    for an account is refused (unless --again), and a later drop of it into
    a watched folder is not new."""
    inbox = tmp_path / "in" / "crosspost"
    inbox.mkdir(parents=True)
    s.cfg.write_text(s.cfg.read_text() + 'intake = { folders = { "%s" }, settle = 0.2 }\n' % inbox)
    connect(s)
    clip = video(tmp_path / "clip.mp4")
    r = s.tikd("post", str(clip), "--account", "alice", "--privacy", "SELF_ONLY", "--at", "+1d")
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "renamed.mp4"
    shutil.copy(clip, copy)
    r = s.tikd("post", str(copy), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 1 and "already has this content as job 1 (scheduled)" in r.stderr, \
        r.stderr
    r = s.tikd("post", str(copy), "--account", "alice", "--privacy", "SELF_ONLY", "--at", "+1d",
               "--again")
    assert r.returncode == 0, r.stderr
    assert "media_hash" not in s.tikd("job", "show", "2").stdout  # (an internal field)
    d = s.start()
    shutil.copy(clip, inbox / "dropped.mp4")
    line = d.wait_for(r"event=intake\.duplicate", timeout=10)
    assert "dropped.mp4" in line and "first_path=%s" % clip in line, line


def test_content_a_rule_planned_is_known_to_tikd_post(s, tmp_path):
    """One planner for every path: a video a rule planned is refused to
    `tikd post` for the same account under any name (unless --again), and a
    rule is refused the content `tikd post` planned."""
    media = tmp_path / "media"
    media.mkdir()
    clip = video(media / "clip.mp4")
    other = video(media / "other.mp4", mdat=90_000)
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    connect(s)
    r = s.tikd("post", str(other), "--account", "alice", "--privacy", "SELF_ONLY", "--at", "+1d")
    assert r.returncode == 0, r.stderr
    (s.root / "rules" / "planner.lua").write_text("""
function on_load()
    local id, why = tikd.upload.post{ account = "alice", media = "%s", privacy = "SELF_ONLY",
                                      at = tikd.now() + 86400, key = "clip" }
    tikd.log.info("planned", { id = id or -1, why = why or "" })
    local again, refused = tikd.upload.post{ account = "alice", media = "%s",
                                             privacy = "SELF_ONLY", key = "other" }
    tikd.log.info("other", { id = again or -1, why = refused or "" })
end
""" % (clip, other))
    d = s.start()
    line = d.wait_for(r"msg=planned ")
    assert re.search(r"\bid=2\b", line), line
    line = d.wait_for(r"msg=other ")
    assert re.search(r"\bid=-1\b", line), line
    assert "already has this content as job 1 (scheduled)" in line, line
    copy = tmp_path / "renamed.mp4"
    shutil.copy(clip, copy)
    r = s.tikd("post", str(copy), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 1 and "already has this content as job 2 (scheduled)" in r.stderr, \
        r.stderr
    r = s.tikd("post", str(copy), "--account", "alice", "--privacy", "SELF_ONLY", "--at", "+2d",
               "--again")
    assert r.returncode == 0, r.stderr


def test_a_drop_the_rules_never_finished_is_offered_again_once(s, tmp_path):
    """At least once into the rules, once into the queue: killed (SIGKILL)
    while a rule's on_media waits, the daemon offers the drop again at its
    next start; planned by hash, it is one job, and a third start offers
    nothing."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\nintake = { folders = { "%s" }, '
                     'settle = 0.2 }\n' % (inbox, inbox))
    connect(s)
    rule = s.root / "rules" / "drop.lua"
    body = """
function on_media(item)
    tikd.log.info("drop: offered", { path = item.path })
    tikd.sleep(%s)
    local id, why = tikd.upload.post{ account = "alice", media = item.path, privacy = "SELF_ONLY",
                                      at = tikd.now() + 86400, key = item.hash }
    tikd.log.info("drop: planned", { id = id or -1, why = why or "" })
end
"""
    rule.write_text(body % "3600")
    d = s.start()
    shutil.copy(video(tmp_path / "clip.mp4"), inbox / "clip.mp4")
    d.wait_for(r"drop: offered", timeout=10)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    assert jobs(s) == []
    rule.write_text(body % "0")
    d = s.start()
    d.wait_for(r"event=intake\.offered_again .*clip\.mp4", timeout=10)
    d.wait_for(r"drop: planned.*id=1", timeout=10)
    assert len(jobs(s)) == 1
    d.stop()
    d = s.start()
    line = d.wait_for(r"event=intake\.scanned ")
    assert "pending=0" in line and "known=1" in line, line
    time.sleep(0.5)
    assert len(jobs(s)) == 1
    assert "drop: offered" not in "\n".join(d.lines)
