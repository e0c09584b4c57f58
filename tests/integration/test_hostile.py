"""Hostile rule code inside a real `tikd run` (issue 12): while rule files
that attack every budget run on timers and in before_publish, the daemon
keeps answering /healthz and publishes a post, every attack is reported
failed with its budget named, and the memory a hog took comes back when
its generation is dropped."""
import os
import re
import signal
import time

import fakectl
from conftest import sanitized
from test_publish import connect, video

ATTACKS = r'''
-- every attack runs on its own timer, again and again
for _, fn in ipairs({ "xpcall_loop", "close_loop", "call_chain", "json_bomb",
                      "patterns", "inserts", "slow_c", "flood" }) do
    tikd.every(3, fn)
end

-- the budget fires where a yield cannot cross C: the message handler
-- would run with hooks off
function xpcall_loop()
    table.sort({ 3, 2, 1 }, function(a, b)
        xpcall(function() while true do end end, function() while true do end end)
        return a < b
    end)
end
-- a <close> handler that loops, after the budget ran out
function close_loop()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    table.sort({ 3, 2, 1 }, function(a, b) while true do end end)
end
-- a metatable edited after setmetatable: a table whose __call is itself
function call_chain()
    local mt = {}
    local t = setmetatable({}, mt)
    mt.__call = t
    return t()
end
-- JSON that doubles at each level
function json_bomb()
    local t = {}
    for i = 1, 40 do t = { t, t } end
    return require("cjson").encode(t)
end
-- C work the instruction count cannot see
function patterns()
    local s = string.rep("a", 3000)
    for i = 1, 100000 do pcall(string.find, s, string.rep("a*", 6) .. "b") end
end
function inserts()
    local t = {}
    for i = 1, 200000 do t[i] = i end
    for i = 1, 100000 do table.insert(t, 1, i) end
end
function slow_c()
    local s = string.rep("x", 4 * 1024 * 1024)
    while true do local y = s .. s end
end
function flood()
    for i = 1, 1e8 do print("flood", i) end
end
'''

# memory kept from call to call, up to the rule file's budget
HOG = r'''
tikd.every(1, "hold")
hog = {}
function hold()
    local chunk = string.rep("h", 1024 * 1024 - 64)
    for i = 1, 16 do hog[#hog + 1] = chunk .. #hog end
end
'''

# before_publish answers that must be read as plain data, never through
# their metatables: one loops, one raises
LOOPING_ANSWER = r'''
function before_publish(job, creator)
    return setmetatable({}, { __index = function() while true do end end })
end
'''
RAISING_ANSWER = r'''
function before_publish(job, creator)
    return setmetatable({}, { __index = function() error("gotcha") end })
end
'''



def rss_kib(pid):
    """Resident anonymous memory (the heap; not the database's file pages)."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^RssAnon:\s+(\d+) kB", f.read(), re.M).group(1))


def healthy(s):
    r = fakectl.http_request("GET", "http://127.0.0.1:%d/healthz" % s.port, timeout=5)
    return r.status == 200


def test_hostile_rules_cannot_stop_the_daemon(s, tmp_path):
    s.fake.ctl.set_config(time_scale=0.01)
    s.cfg.write_text(s.cfg.read_text() + 'lua = { call_time = 0.25, rule_memory = "96MiB" }\n')
    connect(s)
    d = s.start()
    d.wait_for(r"event=rules\.loaded gen=1")
    base = rss_kib(d.proc.pid)
    rules = s.root / "rules"
    (rules / "zz_attacks.lua").write_text(ATTACKS)
    (rules / "zz_hog.lua").write_text(HOG)
    (rules / "zz_looping.lua").write_text(LOOPING_ANSWER)
    (rules / "zz_raising.lua").write_text(RAISING_ANSWER)
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.loaded gen=2")

    # every attack is reported failed, naming its budget; the loop answers
    # between them
    spent = "instruction budget exceeded|time budget exceeded"  # which first: the machine's speed
    want = {
        "xpcall_loop": spent,
        "close_loop": spent,
        "call_chain": "attempt to call a table value",
        "json_bomb": spent + "|memory budget exceeded",
        "patterns": "pattern too complex|time budget exceeded",
        "inserts": spent,
        "slow_c": "time budget exceeded",
        "flood": spent,
        "hold": "bytes per rule file: lua.rule_memory",
    }
    for fn, text in want.items():
        line = d.wait_for(r"event=rule\.call_failed .*fn=%s " % fn, timeout=30)
        assert re.search(text, line), line
        assert "zz_hog.lua" in line if fn == "hold" else "zz_attacks.lua" in line, line
        assert healthy(s)
    d.wait_for(r"event=rule\.output_suppressed .*fn=flood")
    peak = rss_kib(d.proc.pid)
    measure = not sanitized()
    assert peak > base + 64 * 1024 or not measure, (base, peak)

    # a post goes through both hostile before_publish answers
    v = video(tmp_path / "clip.mp4", duration=3)
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY",
               "--caption", "still here", "--wait", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + "\n".join(d.lines[-40:])
    assert "published" in r.stdout
    assert [p["title"] for p in s.fake.ctl.posts()] == ["still here"]
    assert healthy(s)
    prints = sum("event=rule.print " in l for l in d.lines)
    assert prints <= 1200 * 2, prints  # a rule file's minute, whatever the calls
    assert d.proc.poll() is None

    # drop the hostile files: their generation goes, and its memory with it
    for f in ("zz_attacks.lua", "zz_hog.lua", "zz_looping.lua", "zz_raising.lua"):
        os.remove(rules / f)
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.loaded gen=3", after=mark)
    d.wait_for(r"event=rules\.gen_closed gen=2", after=mark, timeout=30)
    deadline = time.monotonic() + 10  # the pages go back as the allocator returns them
    while (after := rss_kib(d.proc.pid)) >= base + 24 * 1024 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert after < base + 24 * 1024 or not measure, (base, peak, after)
    assert healthy(s)
    s.assert_no_token_leaked()
