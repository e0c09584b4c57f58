"""Rules that declare accounts, schedules and timers: posts land in the next
free slot of a schedule, in its time zone, never twice in one slot (also
across a restart), timers call the rule, and a bad declaration is refused
with file:line while the running rules stay (a cron that never fires too)."""
import datetime
import re
import time

from conftest import run_tikd
from test_publish import connect, video

RULE = """
tikd.account("alice", { tz = "Europe/Berlin", privacy = "SELF_ONLY", caption = "#daily" })
tikd.schedule("alice-daily", { account = "alice", slots = { "0 9 * * *", "0 13 * * *",
                                                             "30 18 * * *" } })
tikd.every(3600, "plan")

function plan()
    for i = 1, 4 do
        local id, slot = tikd.upload.post{ account = "alice", schedule = "alice-daily",
                                           media = "%s", key = "clip-" .. i, again = true }
        tikd.log.info("planned", { id = id, slot = slot or -1 })
    end
end

function on_load() plan() end -- and then every hour, from the timer
"""


def due_times(s):
    """Each job's due time, from `tikd queue`, as UTC datetimes."""
    out = s.tikd("queue").stdout.splitlines()[1:]
    return [datetime.datetime.strptime(line.split()[4], "%Y-%m-%dT%H:%M:%SZ") for line in out]


def test_posts_land_in_the_next_free_slots_never_twice(s, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    clip = video(media / "clip.mp4")
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    connect(s)
    (s.root / "rules" / "daily.lua").write_text(RULE % clip)
    d = s.start()
    d.wait_for(r"msg=planned .*id=4\b", timeout=10)
    time.sleep(0.3)
    dues = sorted(due_times(s))
    assert len(dues) == 4
    # 09:00, 13:00 and 18:30 Berlin time (UTC+1 in winter; the test runs in any season)
    for t in dues:
        local = t.replace(tzinfo=datetime.timezone.utc).astimezone(
            __import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) in ((9, 0), (13, 0), (18, 30)), local
    assert len(set(dues)) == 4  # four different slots
    show = s.tikd("job", "show", "1").stdout
    assert "chosen by:    rule:rules/daily.lua@gen1" in show
    assert "privacy:      SELF_ONLY" in show and "caption:      #daily" in show
    # a restart runs on_load again: the keys make it plan nothing twice
    d.stop()
    d = s.start()
    d.wait_for(r"msg=planned .*id=4\b")
    time.sleep(0.3)
    assert sorted(due_times(s)) == dues
    # a second rule booking into the same account's schedule takes the next
    # free slot, not one of these
    (s.root / "rules" / "more.lua").write_text(
        'tikd.schedule("alice-more", { account = "alice", slots = "0 13 * * *" })\n'
        'function on_load() local id, slot = tikd.upload.post{ account = "alice",'
        ' schedule = "alice-more", media = "%s", key = "x", again = true }'
        ' tikd.log.info("more", { slot = slot }) end\n' % clip)
    d.proc.send_signal(__import__("signal").SIGHUP)
    line = d.wait_for(r"msg=more ")
    slot = float(re.search(r"slot=([0-9.]+)", line).group(1))
    got = datetime.datetime.utcfromtimestamp(slot)
    assert got not in dues and got > min(dues), (got, dues)
    out = s.tikd("rules", "check").stdout
    assert "schedule alice-daily: account alice, 3 slots in Europe/Berlin" in out, out
    assert "timer rules/daily.lua:plan every 3600 s" in out, out


def test_bad_declarations_are_refused_with_file_and_line(s, tmp_path):
    connect(s)
    d = s.start()
    bad = s.root / "rules" / "bad.lua"
    for text, says in (
            ('tikd.schedule("x", { account = "alice", slots = "61 * * * *" })',
             "bad.lua:1:.*slot 1: cron: minute field: 61 is out of range 0-59"),
            ('tikd.schedule("x", { account = "nobody", slots = "0 9 * * *" })',
             "bad.lua:1:.*unknown account 'nobody'"),
            ('tikd.account("alice", { tz = "Mars/Olympus" })',
             "bad.lua:1:.*unknown time zone 'Mars/Olympus'"),
            ('tikd.account("alice", { privacy = "EVERYONE" })',
             "bad.lua:1:.*unknown privacy level 'EVERYONE'"),
            ('\n\ntikd.at("0 25 * * *", "f")', r"bad.lua:3:.*hour field: 25"),
            ('function on_load() tikd.schedule("y", { account = "alice", slots = "0 9 * * *" }) end',
             "call it at the top of a rule file")):
        bad.write_text(text + "\n")
        r = s.tikd("rules", "check")
        if "top of a rule file" in says:  # only a call can show it: the load is fine
            assert r.returncode == 0, r.stdout + r.stderr
            continue
        assert r.returncode == 1 and re.search(says, r.stderr), (text, r.stderr)
    bad.unlink()
    assert d.proc.poll() is None


def test_caption_helpers(s):
    (s.root / "rules" / "captions.lua").write_text("""
function on_load()
    local c = tikd.caption("{title} by {who} {tags}",
                           { title = "Sunrise 🌅", who = "Ana", tags = { "#a", "#b" } })
    tikd.log.info("cap1", { c = c })
    local _, err2 = tikd.caption("{title} {nope}", { title = "x" })
    tikd.log.info("cap2", { err = err2 })
    local _, err3 = tikd.caption("{t}", { t = ("😀"):rep(46) }, 90)
    tikd.log.info("cap3", { err = err3 })
    tikd.log.info("tags", { t = tikd.hashtags({ "food", "#Travel" }, { "#food", "acme" }) })
    local a, b, c4 = tikd.rotate("x", { "A", "B" }), tikd.rotate("x", { "A", "B" }),
                     tikd.rotate("x", { "A", "B" })
    tikd.log.info("rot", { r = a .. b .. c4 })
end
""")
    d = s.start()
    assert 'c="Sunrise 🌅 by Ana #a #b"' in d.wait_for(r"msg=cap1 ")
    assert "no value for {nope}" in d.wait_for(r"msg=cap2 ")
    assert "92 UTF-16 units long; TikTok allows 90" in d.wait_for(r"msg=cap3 ")
    assert 't="#food #Travel #acme"' in d.wait_for(r"msg=tags ")
    assert "r=ABA" in d.wait_for(r"msg=rot ")
    d.stop()
    d = s.start()  # the rotation goes on where it was
    assert "r=BAB" in d.wait_for(r"msg=rot ")


def test_a_cancelled_post_gives_its_slot_back(s, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    clip = video(media / "clip.mp4")
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    connect(s)
    (s.root / "rules" / "one.lua").write_text("""
tikd.schedule("s", { account = "alice", slots = "0 12 * * *" })
function on_load()
    for _, k in ipairs({ "a", "b" }) do
        local id, slot = tikd.upload.post{ account = "alice", schedule = "s", media = "%s",
                                           privacy = "SELF_ONLY", key = k .. (tikd.kv.get("n") or ""),
                                           again = true }
        tikd.log.info("booked", { id = id, slot = slot })
    end
    tikd.kv.set("n", "again")
end
""" % clip)
    d = s.start()
    first = d.wait_for(r"msg=booked .*id=1\b")
    d.wait_for(r"msg=booked .*id=2\b")
    slot1 = re.search(r"slot=(\d+)", first).group(1)
    assert s.tikd("job", "cancel", "1").returncode == 0
    d.stop()
    d = s.start()  # new keys: two more posts; the first takes the slot job 1 gave back
    again = d.wait_for(r"msg=booked .*id=3\b")
    assert re.search(r"slot=(\d+)", again).group(1) == slot1, (first, again)


def test_a_cms_fed_timer_rule(s, tmp_path):
    """rules/cms.lua: a timer fetches a CMS export from an allow-listed
    host and plans what is new into the account's schedule, once."""
    import http.server
    import json
    import threading
    export = [{"id": "a1", "video_url": "https://media.example.test/tikd/cms-1.mp4",
               "caption": "From the CMS #one", "privacy": "PUBLIC_TO_EVERYONE"},
              {"id": "a2", "video_url": "https://media.example.test/tikd/cms-2.mp4",
               "caption": "From the CMS #two"}]

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(export).encode()
            self.send_response(200 if self.path == "/tikd/export.json" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        rule = (s.root / "rules" / "cms.lua").read_text()
        rule = rule.replace("http://127.0.0.1:8099/", "http://127.0.0.1:%d/" % port)
        rule = rule.replace('tikd.every(900, "sync")', 'tikd.every(1, "sync")')
        (s.root / "rules" / "cms.lua").write_text(rule)
        s.cfg.write_text(s.cfg.read_text() + 'http = { allow_hosts = { "127.0.0.1:%d" } }\n' % port)
        s.fake.ctl.put_creator({"open_id": "-000FakeCms000000000000000001", "username": "cms_c"})
        connect(s, "cms-creator", user="cms_c")
        d = s.start()
        d.wait_for(r"msg=\"cms: synced\" .*planned=2|msg=\"cms: synced\" .*items=2", timeout=15)
        export.append({"id": "a3", "video_url": "https://media.example.test/tikd/cms-3.mp4",
                       "caption": "From the CMS #three"})
        d.wait_for(r"items=3", timeout=15)
        time.sleep(0.5)
        q = s.tikd("queue", "--all").stdout
        lines = [l for l in q.splitlines()[1:] if "cms-creator" in l]
        assert len(lines) == 3, q  # each item once, however often the timer runs
        show = s.tikd("job", "show", "1").stdout
        assert "media:        https://media.example.test/tikd/cms-1.mp4" in show, show
        assert "caption:      From the CMS #one" in show
        assert "privacy:      PUBLIC_TO_EVERYONE" in show and "rules/cms.lua" in show
        two = s.tikd("job", "show", "2").stdout
        assert "privacy:      SELF_ONLY" in two  # the account's declared default
        for t in due_times(s):
            local = t.replace(tzinfo=datetime.timezone.utc).astimezone(
                __import__("zoneinfo").ZoneInfo("Europe/London"))
            assert (local.hour, local.minute) in ((8, 0), (12, 0), (17, 0)), local
    finally:
        srv.shutdown()


def test_a_deliberate_skip_is_on_the_record(s):
    (s.root / "rules" / "picky.lua").write_text("""
function on_load()
    tikd.upload.skip{ account = "alice", media = "/srv/in/blurry.mp4", reason = "too dark" }
    local ok, err = pcall(tikd.upload.skip, { account = "alice" })
    tikd.log.info("noreason", { err = err })
end
""")
    d = s.start()
    d.wait_for(r"event=post\.skipped .*reason=\"too dark\"")
    assert "a reason is required" in d.wait_for(r"msg=noreason")
    audit = s.audit()
    assert "rule:rules/picky.lua@gen1" in audit and "post.skipped" in audit, audit
    assert 'reason="too dark"' in audit


def test_a_cron_that_never_fires_is_refused(site):
    """`0 0 30 2 *` parses, but a rule declaring it would load and never run:
    `tikd rules check` refuses it, with file:line, wherever it is declared."""
    rule = site / "rules" / "never.lua"
    head = 'tikd.account("ana", { tz = "Europe/Berlin" })\n'
    for text, says in (
            ('tikd.schedule("ana-x", { account = "ana", slots = "0 0 30 2 *" })',
             r"rules/never\.lua:2: tikd\.schedule 'ana-x': slot 1: cron: '0 0 30 2 \*' never "
             r"fires"),
            ('tikd.schedule("ana-x", { account = "ana",\n'
             '                         slots = { "0 9 * * *", "0 0 31 4,6,9,11 *" } })',
             r"rules/never\.lua:2: .*slot 2: cron: '0 0 31 4,6,9,11 \*' never fires"),
            ('\ntikd.at("0 0 30 2 *", "f", "Europe/Berlin")',
             r"rules/never\.lua:3: tikd\.at: cron: '0 0 30 2 \*' never fires"),
            ('tikd.schedule("ana-x", { account = "ana", slots = "0 9 * * *",\n'
             '  blackout = { { cron = "0 0 30 2 *", hours = 2 } } })',
             r"rules/never\.lua:2: .*blackout 1: cron: '0 0 30 2 \*' never fires")):
        rule.write_text(head + text + "\n")
        r = run_tikd("rules", "check", config=site / "tikd.conf.lua")
        assert r.returncode != 0, (text, r.stdout)
        assert re.search(says, r.stderr), (text, r.stderr)
    # rare is not never: leap days, and both day fields restricted (every
    # Monday in February, and February 30 never)
    rule.write_text(head + 'tikd.schedule("ana-x", { account = "ana",\n'
                    '  slots = { "0 9 29 2 *", "0 9 30 2 MON" } })\n'
                    'tikd.at("0 0 29 2 *", "f")\n')
    r = run_tikd("rules", "check", config=site / "tikd.conf.lua")
    assert r.returncode == 0, r.stderr
    assert "rules/never.lua: ok" in r.stdout, r.stdout
