"""Trying rules before they go live: `tikd plan` shows what the rules would
post over the next days on a copy of the database and a virtual clock
(schedule and timer rules, on_media with --media), writes nothing to the
real database, and surfaces rule errors with file:line; `tikd rules test`
runs *_test.lua files with tikd.test and fails a bad one with file:line."""
import datetime
import hashlib
import json
import os
import re
import zoneinfo

from conftest import run_tikd
from test_publish import connect, video

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")

WEEKLY = """
tikd.account("alice", { tz = "Europe/Berlin", privacy = "SELF_ONLY" })
tikd.schedule("alice-daily", { account = "alice", slots = { "0 9 * * *", "0 13 * * *",
                                                             "30 18 * * *" } })
tikd.every(86400, "plan")

function plan()
    local day = tikd.kv.incr("day")
    tikd.log.info("planning", { day = day })
    for i = 1, 3 do
        local id, err = tikd.upload.post{ account = "alice", schedule = "alice-daily",
            media = "%s", caption = ("day %%d post %%d"):format(day, i),
            key = ("d%%d-%%d"):format(day, i), again = true } -- the one clip, on purpose

        assert(id, err)
    end
end
"""


def setup_media(s, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    return media


def weekly(s, tmp_path):
    media = setup_media(s, tmp_path)
    clip = video(media / "clip.mp4")
    connect(s)
    (s.root / "rules" / "weekly.lua").write_text(WEEKLY % clip)
    return media


def expected_captions():
    return ["day %d post %d" % (d, i) for d in range(1, 8) for i in range(1, 4)]


def test_plan_shows_a_week_of_a_schedule_and_timer_rule(s, tmp_path):
    weekly(s, tmp_path)
    r = s.tikd("plan", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)
    # the timer fires at once and then daily: 7 firings in 7 days, 3 posts each,
    # each in the next free slot at 09:00, 13:00 or 18:30 Berlin time
    assert [x["caption"] for x in rows] == expected_captions()
    dues = [datetime.datetime.fromtimestamp(x["due_at"], datetime.timezone.utc) for x in rows]
    assert dues == sorted(dues) and len(set(dues)) == 21
    for x, due in zip(rows, dues):
        local = due.astimezone(BERLIN)
        assert (local.hour, local.minute) in ((9, 0), (13, 0), (18, 30)), x
        assert x["local"] == local.strftime("%Y-%m-%d %H:%M ") + local.tzname(), x
        assert x["due"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert x["tz"] == "Europe/Berlin" and x["account"] == "alice"
        assert (x["kind"], x["mode"], x["privacy"]) == ("video", "direct", "SELF_ONLY")
        assert x["media"].endswith("/clip.mp4") and x["images"] is None
        assert x["chosen_by"] == "rule:rules/weekly.lua@gen0"
        assert x["state"] == "scheduled"
    # the first post is the first free slot after now
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now - datetime.timedelta(minutes=5) < dues[0] <= now + datetime.timedelta(days=1)

    # the same as a table: one aligned row per post, in due order
    r = s.tikd("plan")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = lines[0]
    for col in ("DUE (UTC)", "LOCAL", "ACCOUNT", "KIND", "MODE", "PRIVACY", "MEDIA", "CAPTION",
                "CHOSEN BY"):
        assert col in head, head
    body = lines[1:22]
    cap = head.index("CAPTION")
    assert [line[cap:].split("  ")[0] for line in body] == expected_captions()
    for line, x in zip(body, rows):
        assert line.startswith(x["due"] + "  " + x["local"]), (line, x)
        assert "alice" in line and "clip.mp4" in line and "SELF_ONLY" in line
    assert re.match(r"21 posts planned from \S+ to \S+ \(a dry run", lines[22]), lines[22]

    # --days: fewer firings
    r = s.tikd("plan", "--days", "2", "--json")
    assert [x["caption"] for x in json.loads(r.stdout)] == expected_captions()[:6]


SIDE = """
tikd.schedule("alice-media", { account = "alice", slots = "0 12 * * *", tz = "Asia/Tokyo" })

function on_media(item)
    local caption = (item.meta and item.meta.caption or item.name) .. " " ..
                    item.hash:sub(1, 12) .. " " .. item.size
    local id, err = tikd.upload.post{ account = "alice", schedule = "alice-media",
                                      media = item.path, caption = caption,
                                      privacy = "MUTUAL_FOLLOW_FRIENDS", key = item.hash }
    assert(id, err)
end
"""


def test_plan_media_dir_calls_on_media(s, tmp_path):
    media = setup_media(s, tmp_path)
    connect(s)
    drop = media / "drop"
    drop.mkdir()
    a = video(drop / "a.mp4", duration=3)
    b = video(drop / "b.mp4", duration=5)
    (drop / "b.json").write_text(json.dumps({"caption": "from the sidecar ✨"}))
    c = video(drop / "c.mp4", duration=4)
    (drop / "c.json").write_text("{ not json")
    (drop / "d.mp4").write_bytes(a.read_bytes())  # the same content again
    (drop / "notes.txt").write_text("not media")
    (drop / ".hidden.mp4").write_bytes(b.read_bytes())
    (s.root / "rules" / "media.lua").write_text(SIDE)
    r = s.tikd("plan", "--media", str(drop), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)
    # one post per new content, in name order, one a day at noon in Tokyo: as
    # the intake of `tikd run` would offer them (no sidecars, hidden files or
    # other kinds; known content once)
    assert [os.path.basename(x["media"]) for x in rows] == ["a.mp4", "b.mp4", "c.mp4"]
    assert re.search(r"note: \S+/d\.mp4: the intake knows this content already", r.stderr)
    # each file's media verdict, as `tikd media check` gives it, before the rules see it
    assert re.search(r"media: \S+/a\.mp4: ok with warnings: video mp4 H\.264 1080x1920 "
                     r"30\.00 fps 3\.0 s", r.stderr), r.stderr

    def h(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()[:12]

    assert rows[0]["caption"] == "a.mp4 %s %d" % (h(a), a.stat().st_size)
    assert rows[1]["caption"] == "from the sidecar ✨ %s %d" % (h(b), b.stat().st_size)
    assert rows[2]["caption"] == "c.mp4 %s %d" % (h(c), c.stat().st_size)  # bad sidecar: no meta
    for x in rows:
        assert x["local"].endswith(" 12:00 JST") and x["tz"] == "Asia/Tokyo", x
        assert x["privacy"] == "MUTUAL_FOLLOW_FRIENDS"
    days = [x["local"][:10] for x in rows]
    assert len(set(days)) == 3
    # media outside media_roots: the rule's post is refused, as it would be live
    other = tmp_path / "elsewhere"
    other.mkdir()
    video(other / "x.mp4")
    r = s.tikd("plan", "--media", str(other), "--json")
    assert r.returncode == 1
    assert "is not under media_roots" in r.stderr
    assert re.search(r"rules/media\.lua:\d+: .*not a readable file under media_roots", r.stderr)


def snapshot(s):
    db = s.root / "data" / "data.mdb"
    st = db.stat()
    return db.read_bytes(), st.st_mtime_ns, st.st_size, s.tikd("queue", "--all").stdout


def test_plan_writes_nothing(s, tmp_path):
    media = weekly(s, tmp_path)
    # a post already in the queue holds the first free slot
    d = s.start()
    d.wait_for(r"msg=planning day=1")
    d.stop()
    first = s.tikd("queue").stdout.splitlines()[1:]
    assert len(first) == 3  # the daemon's own first firing
    before = snapshot(s)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = run_tikd("plan", "--json", "--media", str(media), config=s.cfg,
                 env=dict(s.env, TMPDIR=str(tmp)))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    after = snapshot(s)
    assert before[1:] == after[1:] and before[0] == after[0]
    # the plan starts after the queue: kv and the timer's rhythm come from the copy
    assert rows[0]["id"] == 4
    due_taken = {line.split()[4] for line in first}
    assert not due_taken & {x["due"] for x in rows}
    assert [x["caption"] for x in rows][:3] == ["day 2 post 1", "day 2 post 2", "day 2 post 3"]
    # the temporary copy is gone
    assert os.listdir(tmp) == []


def test_plan_without_a_database(site):
    cfg = site / "tikd.conf.lua"
    cfg.write_text(cfg.read_text() + 'data_dir = "fresh"\n')
    r = run_tikd("plan", config=cfg)
    assert r.returncode == 0, r.stderr
    assert re.match(r"nothing planned from \S+ to \S+ \(a dry run", r.stdout), r.stdout
    assert not (site / "fresh").exists()


def test_plan_notes_posts_over_the_daily_limit(s, tmp_path):
    media = setup_media(s, tmp_path)
    clip = video(media / "clip.mp4")
    connect(s)
    (s.root / "rules" / "burst.lua").write_text("""
function on_load()
    for i = 1, 16 do
        assert(tikd.upload.post{ account = "alice", media = "%s", privacy = "SELF_ONLY",
                                 at = tikd.now() + 3600 + i * 60, key = "b" .. i,
                                 again = true }) -- one clip sixteen times, on purpose
    end
end
""" % clip)
    r = s.tikd("plan")
    assert r.returncode == 0, r.stderr
    assert re.search(r"note: alice: 16 direct posts fall within 24 h from \S+, above "
                     r"limits\.daily_posts \(15\)", r.stdout), r.stdout


GOOD_TEST = """
local T = require "tikd.test"

function test_a_week_of_posts()
    T.clock("2026-03-27 07:00", "Europe/Berlin") -- the clocks move on Sunday the 29th
    T.account("alice")
    -- daily at 06:00 UTC: 7 firings (the example rules' timers fire too)
    T.ok(T.timers("2026-04-02 08:00", "Europe/Berlin") >= 7)
    local jobs = T.jobs("alice")
    T.eq(#jobs, 21)
    T.eq(T.localtime(jobs[1].due, "Europe/Berlin"), "2026-03-27 09:00")
    T.eq(T.localtime(jobs[4].due), "2026-03-28 08:00") -- CET: UTC+1
    T.eq(T.localtime(jobs[7].due, "Europe/Berlin"), "2026-03-29 09:00")
    T.eq(T.localtime(jobs[7].due), "2026-03-29 07:00") -- CEST: UTC+2
    T.eq(T.localtime(jobs[21].due, "Europe/Berlin"), "2026-04-02 18:30")
    T.eq({ jobs[1].caption, jobs[1].privacy, jobs[1].mode, jobs[1].kind, jobs[1].state },
         { "day 1 post 1", "SELF_ONLY", "direct", "video", "scheduled" })
    T.match(jobs[1].chosen_by, "^rule:rules/weekly%.lua@gen0$")
    T.eq(T.now(), T.clock("2026-04-02 08:00", "Europe/Berlin"))
end

function test_call_returns_what_the_rule_returns()
    T.eq(T.call("weekly", "twice", 21), 42)
    T.eq({ T.call("rules/weekly.lua", "pair") }, { 1, "two" })
end

function test_no_account_no_post()
    T.err(function() T.call("weekly", "plan") end, "no such account")
    T.eq(T.jobs(), {})
end
"""

BAD_TEST = """
local T = require "tikd.test"

function test_passes()
    T.ok(true)
end

function test_wrong_count()
    T.account("alice")
    T.timers("2026-01-02 12:00")
    T.eq(#T.jobs(), 5, "posts in two days")
end

function test_deep_difference()
    T.eq({ a = { 1, 2, { x = "y" } } }, { a = { 1, 2, { x = "z" } } })
end
"""


def test_rules_test_passes_a_good_file_and_fails_a_bad_one(s, tmp_path):
    weekly(s, tmp_path)
    rules = s.root / "rules"
    with open(rules / "weekly.lua", "a") as f:
        f.write("function twice(n) return n * 2 end\nfunction pair() return 1, 'two' end\n")
    (rules / "weekly_test.lua").write_text(GOOD_TEST)
    r = s.tikd("rules", "test")
    # the example rule's tests (rules/three_slots_test.lua) run too
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rules/weekly_test.lua\n  ok   test_a_week_of_posts\n" \
           "  ok   test_call_returns_what_the_rule_returns\n  ok   test_no_account_no_post\n" \
        in r.stdout, r.stdout
    assert "rules/three_slots_test.lua\n  ok   test_four_videos" in r.stdout
    # ... and every shipped example rule's tests (rules/*_test.lua) pass
    assert re.search(r"^\d+ tests in \d+ files: \d+ passed, 0 failed$", r.stdout, re.M)
    for example in ("agency", "crosspost", "ab_captions", "quiet_hours"):
        assert "rules/%s_test.lua\n  ok" % example in r.stdout, r.stdout
    # nothing reached the real database
    assert "day 1" not in s.tikd("queue", "--all").stdout

    (rules / "bad_test.lua").write_text(BAD_TEST)
    r = s.tikd("rules", "test", str(rules / "bad_test.lua"))
    assert r.returncode == 1, r.stdout
    assert r.stdout.splitlines() == [
        "rules/bad_test.lua",
        "  ok   test_passes",
        "  FAIL test_wrong_count: rules/bad_test.lua:11: posts in two days: expected 5, got 6",
        '  FAIL test_deep_difference: rules/bad_test.lua:15: at a[3].x: expected "z", got "y"',
        "3 tests in 1 file: 1 passed, 2 failed"], r.stdout


def test_rule_errors_surface_with_file_and_line(s, tmp_path):
    rules = s.root / "rules"
    # a file that does not load: plan and rules test both refuse, with file:line
    (rules / "broken.lua").write_text("function on_load()\n  x = = 1\nend\n")
    r = s.tikd("plan")
    assert r.returncode == 1 and "rules/broken.lua:2:" in r.stderr, r.stderr
    r = s.tikd("rules", "test")
    assert r.returncode == 1 and re.search(r"FAIL \(load\) rules/broken\.lua:2:", r.stdout)
    (rules / "broken.lua").unlink()
    # calls that fail, reach for the network or wait too long are reported;
    # the rest of the plan still runs
    (rules / "calls.lua").write_text(
        'tikd.every(3600, "tick")\n'
        'function on_load()\n'
        '  tikd.http.request{ url = "https://example.com/" }\n'
        'end\n'
        'function tick()\n'
        '  if tikd.kv.incr("n") == 3 then error("third tick") end\n'
        'end\n'
        'function on_media(item) tikd.sleep(600) end\n')
    media = tmp_path / "m"
    media.mkdir()
    (media / "x.mp4").write_bytes(b"x")
    r = s.tikd("plan", "--days", "1", "--media", str(media))
    assert r.returncode == 1
    assert re.search(r"error: hook rules/calls\.lua:on_load at \S+: rules/calls\.lua:3: "
                     r"tikd\.http is not available here", r.stderr), r.stderr
    assert re.search(r"error: timer rules/calls\.lua:tick at \S+: rules/calls\.lua:6: third tick",
                     r.stderr), r.stderr
    assert len(re.findall("third tick", r.stderr)) == 1
    assert re.search(r"error: hook rules/calls\.lua:on_media at \S+: .*cancelled: still waiting",
                     r.stderr), r.stderr
    assert "nothing planned" in r.stdout
    # in a rule test, the same failure is the test's, with the rule's line
    (rules / "calls_test.lua").write_text(
        'local T = require "tikd.test"\n'
        'function test_ticks() T.timers(T.now() + 3 * 3600) end\n'
        'function test_waits() T.media{ name = "a.mp4" } end\n')
    r = s.tikd("rules", "test", str(rules / "calls_test.lua"))
    assert r.returncode == 1
    assert re.search(r"FAIL test_ticks: rules/calls_test\.lua:2: T\.timers: timer "
                     r"rules/calls\.lua:tick at 2026-01-01T02:00:00Z: rules/calls\.lua:6: "
                     r"third tick", r.stdout), r.stdout
    assert re.search(r"FAIL test_waits: rules/calls_test\.lua:3: T\.media: rules/calls\.lua:8: "
                     r"tikd\.sleep cannot wait in `tikd rules test`", r.stdout), r.stdout
    # tikd.test is not there for rules outside a test
    (rules / "calls.lua").write_text('local T = require "tikd.test"\n')
    r = s.tikd("rules", "check")
    assert r.returncode == 1
    assert "tikd.test is only available in `tikd rules test`" in r.stderr, r.stderr
