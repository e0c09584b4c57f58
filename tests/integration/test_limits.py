"""TikTok's budgets, kept (spec §3): a burst of posts runs at the allowed
rate and never above it, and a creator whose daily cap another app shares
is waited for, not failed. The fake enforces the same budgets on a scaled
clock and its ledger is the judge."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from test_publish import connect, sha, video

CREATORS = [("-000FakeAcct%03dLimits0000000000%d" % (i, i), "acct_l%d" % i) for i in range(3, 6)]


def unique_videos(tmp_path, n):
    """n valid MP4s with distinct content (the mdat is the last box: its
    last bytes are free to vary)."""
    base = video(tmp_path / "base.mp4", mdat=40_000, duration=3).read_bytes()
    paths = []
    for i in range(n):
        p = tmp_path / ("v%03d.mp4" % i)
        p.write_bytes(base[:-8] + i.to_bytes(8, "big"))
        paths.append(p)
    return paths


def five_accounts(s):
    for open_id, user in CREATORS:
        s.fake.ctl.put_creator({"open_id": open_id, "username": user})
    names = ["alice", "bob"] + [u for _, u in CREATORS]
    connect(s, "alice")
    connect(s, "bob", user="acct_two")
    for _, user in CREATORS:
        connect(s, user, user=user)
    return names


def wait_all_final(s, d, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(s.tikd("queue").stdout.splitlines()) <= 1:
            return
        time.sleep(0.5)
    raise AssertionError("jobs still waiting:\n%s\n%s" % (s.tikd("queue").stdout,
                                                         "\n".join(d.lines[-30:])))


def test_200_posts_over_5_accounts_at_the_allowed_rate_never_above(s, tmp_path):
    window = 2.0  # TikTok's minute, scaled: 6 inits per 2 s per token
    s.limits(window=window, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    names = five_accounts(s)
    files = unique_videos(tmp_path, 200)
    for i, f in enumerate(files):  # queued all at once, before tikd runs
        r = s.tikd("post", str(f), "--account", names[i % 5], "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    d = s.start()
    wait_all_final(s, d, 120)

    ledger = s.fake.ctl.ledger()
    posts = ledger["posts"]
    got = sorted(p["sha256"] for p in posts)
    assert got == sorted(sha(f) for f in files), "a post was lost or doubled"
    refused = [(q["path"], q["status"], q["error_code"]) for q in ledger["requests"]
               if q["status"] == 429 or (q["error_code"] or "").startswith("spam_risk")]
    assert refused == [], refused
    # the achieved init rate per token against the allowed 6 per window
    inits = {}
    for q in ledger["requests"]:
        if q["path"].startswith("/v2/post/publish/video/init/") and q["status"] == 200:
            inits.setdefault(q["open_id"], []).append(q["t_mono"])
    assert len(inits) == 5 and all(len(v) == 40 for v in inits.values()), inits
    allowed = 6 / window
    ratios = []
    for times in inits.values():
        times.sort()
        ratios.append(((len(times) - 1) / (times[-1] - times[0])) / allowed)
    print("init rate vs allowed per token: " + " ".join("%.3f" % r for r in ratios))
    assert min(ratios) >= 0.90, ratios
    assert max(ratios) <= 1.0, ratios  # never above: the fake would have said 429
    q = s.tikd("queue", "--all").stdout
    assert q.count("published") == 200, q
    out = s.tikd("limits").stdout
    assert "video_init" in out and "alice" in out, out
    # every init was an allowed decision (a slot used too late is replaced: a
    # few more under a slow build, such as ASan's)
    allowed = int(re.search(r"video_init\s+allowed\s+(\d+)", out).group(1))
    assert 200 <= allowed <= 220, out


def test_an_init_that_reaches_tiktok_late_holds_back_the_ones_after_it(s, tmp_path):
    """TikTok counts an init when it arrives. The third one arrives 0.4 s
    late (a slow network, a stalled machine) and the next ones on time:
    tikd's spacing alone would put 7 in one window at TikTok."""
    s.limits(window=2.0, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    s.fake.ctl.add_fault(kind="delay", path_prefix="/v2/post/publish/video/init/", delay_sec=0.4,
                         skip=2)
    connect(s, "alice")
    files = unique_videos(tmp_path, 12)
    for f in files:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    d = s.start()
    wait_all_final(s, d, 60)
    assert [f["fired"] for f in s.fake.ctl.faults()] == [1]
    ledger = s.fake.ctl.ledger()
    refused = [(q["path"], q["status"], q["error_code"]) for q in ledger["requests"]
               if q["status"] == 429]
    assert refused == [], refused
    assert sorted(p["sha256"] for p in ledger["posts"]) == sorted(sha(f) for f in files)


@pytest.fixture
def busy_machine():
    """Both cores taken by busy loops for the test's length: now and then
    tikd runs late between recording an init and sending it."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for h in hogs:
        h.kill()
        h.wait()


def test_a_loaded_machine_never_brings_inits_above_the_budget(s, tmp_path, busy_machine):
    """300 posts over 10 accounts while busy loops load the machine: an init
    that leaves late is followed by ones that leave on time, and TikTok, which
    counts arrivals, must still never see 7 in a window."""
    s.limits(window=2.0, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    names = five_accounts(s)
    for i in range(5, 10):
        open_id, user = "-000FakeAcct%03dLoaded0000000000%d" % (i, i), "acct_b%d" % i
        s.fake.ctl.put_creator({"open_id": open_id, "username": user})
        connect(s, user, user=user)
        names.append(user)
    files = unique_videos(tmp_path, 300)
    for i, f in enumerate(files):
        r = s.tikd("post", str(f), "--account", names[i % 10], "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    d = s.start()
    wait_all_final(s, d, 90)
    ledger = s.fake.ctl.ledger()
    refused = [(q["path"], q["status"], q["error_code"]) for q in ledger["requests"]
               if q["status"] == 429 or (q["error_code"] or "").startswith("spam_risk")]
    assert refused == [], refused
    assert sorted(p["sha256"] for p in ledger["posts"]) == sorted(sha(f) for f in files)
    q = s.tikd("queue", "--all").stdout
    assert q.count("published") == 300, q


def test_a_cap_shared_with_another_app_is_waited_for_not_failed(s, tmp_path):
    # 4 direct posts per creator in any 8 s; another app posts 2 of them
    s.limits(window=1, daily=4, daily_window=8, pending=100, cap_probe=1)
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s, "alice")
    open_id = "-000FakeAcctOne000000000000001"  # acct_one, whom alice connected
    s.fake.ctl.outside_posts(open_id, 2)
    files = unique_videos(tmp_path, 9)
    for f in files:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    d = s.start()
    # tikd cannot know of the other app's posts: the fake tells it once
    d.wait_for(r"event=limits\.learned .*budget=daily_posts", timeout=30)
    q = s.tikd("queue").stdout
    assert "waiting for TikTok's daily_posts budget" in q, q
    wait_all_final(s, d, 90)
    q = s.tikd("queue", "--all").stdout
    assert q.count("published") == 9 and "failed" not in q, q
    posts = sorted(p["sha256"] for p in s.fake.ctl.posts())
    assert posts == sorted(sha(f) for f in files)
    ledger = s.fake.ctl.ledger()["requests"]
    spam_inits = [r for r in ledger if "/init/" in r["path"]
                  and (r["error_code"] or "").startswith("spam_risk")]
    # after the first refusal tikd asks creator_info (free) instead of
    # spending inits on a full cap
    assert len(spam_inits) <= 2, spam_inits
    assert not [r for r in ledger if r["status"] == 429]


def test_limits_survive_a_restart_and_show_in_tikd_limits(s, tmp_path):
    s.limits(window=6, daily=3, daily_window=3600, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s, "alice")
    files = unique_videos(tmp_path, 4)
    d = s.start()
    for f in files[:2]:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY", "--wait")
        assert r.returncode == 0, r.stdout + r.stderr
    d.stop()
    out = s.tikd("limits", "alice").stdout
    assert re.search(r"daily_posts\s+2/3\b", out), out
    # a restart does not reset the budget: the third post waits for its slot
    # (6 a minute: one every 10 s), the fourth for the daily cap
    d = s.start()
    for f in files[2:]:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    d.wait_for(r"event=job\.final .*state=published", timeout=30,
               after=len(d.lines))
    time.sleep(0.5)
    q = s.tikd("queue").stdout
    assert "daily_posts budget (3 per 3600 s for this account)" in q, q
    out = s.tikd("limits", "alice").stdout
    assert re.search(r"daily_posts\s+3/3\b", out), out
    # cancelling the waiting job gives its reserved slot back
    assert re.search(r"daily_posts\s+3/3 \+1 held", out), out
    r = s.tikd("job", "cancel", "4")
    assert r.returncode == 0, r.stderr
    out = s.tikd("limits", "alice").stdout
    assert re.search(r"daily_posts\s+3/3\s+next", out), out
    assert s.fake.ctl.ledger()["requests"] and not [
        r for r in s.fake.ctl.ledger()["requests"] if r["status"] == 429]


def test_removing_an_account_gives_its_jobs_held_slots_back(s, tmp_path):
    """Account removal cancels its jobs through the same path as `tikd job
    cancel`: the slot a waiting job reserved is given back, so an account
    connected again under the name starts with its budget whole."""
    s.limits(window=6, daily=2, daily_window=3600, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s, "alice")
    files = unique_videos(tmp_path, 3)
    d = s.start()
    for f in files:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    # two go out; the third waits for the daily cap with its slot reserved
    wait = time.monotonic() + 30
    while time.monotonic() < wait and not (
            s.tikd("queue", "--all").stdout.count("published") == 2 and
            re.search(r"daily_posts\s+2/2 \+1 held", s.tikd("limits", "alice").stdout)):
        time.sleep(0.1)
    out = s.tikd("limits", "alice").stdout
    assert re.search(r"daily_posts\s+2/2 \+1 held", out), out
    d.stop()
    r = s.tikd("account", "remove", "alice")
    assert r.returncode == 0 and "1 pending job of alice cancelled" in r.stdout, r.stdout + r.stderr
    q = s.tikd("queue", "--all").stdout
    assert "cancelled: account alice was removed" in q, q
    connect(s, "alice")  # the name again: its budgets as the old jobs left them
    out = s.tikd("limits", "alice").stdout
    assert "held" not in out and re.search(r"daily_posts\s+2/2\s+next", out), out


def test_rules_declare_limiters_of_their_own_and_read_tiktoks(s, tmp_path):
    """tikd.ratelimit: a rule's limiter survives a reload and a restart, is
    the rule file's own, and TikTok's budgets are visible (not writable)."""
    s.limits(window=60, daily=7)
    connect(s, "alice")
    rule = """
function on_load()
    local hourly = tikd.ratelimit.new("client-x", { count = 3, per = 3600 })
    local got = {}
    for i = 1, 2 do
        local ok, at = hourly:take()
        got[#got + 1] = ok and "ok" or ("wait%%d"):format(math.floor(at - tikd.now() + 0.5))
    end
    local b = tikd.ratelimit.budget("alice", "daily_posts")
    tikd.log.info("%s", { takes = table.concat(got, ","), cap = b.cap, used = b.used,
                          s = tostring(hourly) })
    local ok, err = pcall(tikd.ratelimit.new, "x", { count = 0, per = 1 })
    tikd.log.info("bad", { err = err })
end
"""
    (s.root / "rules" / "a.lua").write_text(rule % "limiter_a")
    (s.root / "rules" / "b.lua").write_text(rule % "limiter_b")
    d = s.start()
    a = d.wait_for(r"msg=limiter_a ")
    b = d.wait_for(r"msg=limiter_b ")
    # 3 an hour, burst 1: one now, the next in 1200 s; each file its own
    assert "takes=ok,wait1200" in a and "takes=ok,wait1200" in b, (a, b)
    assert "cap=7" in a and "used=0" in a, a
    assert "count must be from 1" in d.wait_for(r"msg=bad ")
    d.stop()
    d = s.start()  # a restart keeps the limiter's state
    a = d.wait_for(r"msg=limiter_a ")
    assert "takes=wait1200,wait1200" in a or "takes=wait1199,wait1199" in a, a


def test_slow_creator_info_for_many_accounts_still_publishes_everything(s, tmp_path):
    """Issue 13, item 0: 200 accounts with one post each while creator_info
    answers in 0.3 s. The init slot is held before creator_info; a slot that
    went stale meanwhile is re-reserved, but the creator's answer is kept, so
    the next try goes straight on: progress whatever the latency."""
    n = int(os.environ.get("TIKD_MANY_ACCOUNTS", "200"))
    s.limits(window=2.0, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    names = []
    for i in range(n):
        user = "slow%03d" % i
        s.fake.ctl.put_creator({"open_id": "-000FakeSlow%03d0000000000000000" % i,
                                "username": user})
        connect(s, user, user=user)
        names.append(user)
    files = unique_videos(tmp_path, n)
    for name, f in zip(names, files):
        r = s.tikd("post", str(f), "--account", name, "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    s.fake.ctl.add_fault(kind="delay", path_prefix="/v2/post/publish/creator_info/query/", delay_sec=0.3,
                         count=None)
    d = s.start()
    wait_all_final(s, d, 240)
    posts = s.fake.ctl.posts()
    assert len(posts) == n, (len(posts), s.tikd("queue").stdout[-2000:])
    asked = len(s.fake.ctl.requests("/v2/post/publish/creator_info/query/"))
    assert asked <= 2 * n, asked  # each creator asked about once, not forever
    assert s.fake.ctl.faults()[0]["fired"] == asked  # every one of them slow
    assert d.proc.poll() is None


def test_the_init_endpoints_share_one_budget_by_default(s, tmp_path):
    """Issue 13, item 18: the spec leaves open whether video, inbox and photo
    inits share TikTok's 6 a minute. tikd takes the safe reading by default,
    so a fake that counts them together never refuses one."""
    s.limits(window=2.0, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.01, shared_init_bucket=True)
    connect(s, "alice")
    files = unique_videos(tmp_path, 5)
    for i, f in enumerate(files):
        mode = ["--draft"] if i % 2 else ["--privacy", "SELF_ONLY"]
        r = s.tikd("post", str(f), "--account", "alice", *mode)
        assert r.returncode == 0, r.stderr
    for i in range(3):
        r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY",
                   "--photo", "https://media.example.test/tikd/shared-%d.jpg" % i)
        assert r.returncode == 0, r.stderr
    d = s.start()
    wait_all_final(s, d, 60)
    inits = [q for q in s.fake.ctl.ledger()["requests"] if q["path"].endswith("/init/")]
    assert len(inits) >= 8, inits
    assert not [q for q in inits if q["status"] == 429], inits
    assert len(s.fake.ctl.posts()) == 8


def test_refused_inits_give_their_cap_entries_back(s, tmp_path):
    """Issue 13, item 10: inits TikTok refused (here 429s, as TikTok counts
    nothing for them) give their daily cap entries back, so tikd's count is
    TikTok's: 4 refusals and 3 posts are 3, not 7."""
    s.limits(window=2.0, daily=15, daily_window=3600, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s, "alice")
    files = unique_videos(tmp_path, 3)
    for f in files:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    s.fake.ctl.add_fault(kind="rate_limit", path_prefix="/v2/post/publish/video/init/",
                         retry_after=1, count=4)
    d = s.start()
    wait_all_final(s, d, 90)
    assert len(s.fake.ctl.posts()) == 3
    assert s.fake.ctl.faults()[0]["fired"] == 4
    d.stop()
    assert s.daily_used("alice") == 3


def test_a_429_holds_every_job_of_the_token_until_retry_after(s, tmp_path):
    """Issue 13, item 10: a 429 closes that budget for every job of the token
    until Retry-After: the HTTP layer does not retry it on its own, and no
    other job of the account calls the endpoint inside the hold."""
    s.limits(window=2.0, daily=100, daily_window=3600, pending=100)
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s, "alice")
    files = unique_videos(tmp_path, 6)
    for f in files:
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    path = "/v2/post/publish/status/fetch/"
    s.fake.ctl.add_fault(kind="rate_limit", path_prefix=path, retry_after=2, skip=2)
    d = s.start()
    wait_all_final(s, d, 90)
    assert len(s.fake.ctl.posts()) == 6
    reqs = s.fake.ctl.requests(path)
    refused = [q for q in reqs if q["status"] == 429]
    assert len(refused) == 1, reqs
    t = refused[0]["t_mono"]
    inside = [q for q in reqs if t < q["t_mono"] < t + 2 - 0.05]
    assert not inside, (t, inside)
    assert d.proc.poll() is None
