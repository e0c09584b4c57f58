"""tikd.kv and tikd.cron inside the real daemon: a rule's counter keeps
counting across a SIGHUP reload and a restart, another rule file counts on
its own, and `tikd rules check` (no database) says tikd.kv is not there."""
import re
import signal

from conftest import run_tikd

COUNTER = """
function on_load()
    local n = tikd.kv.incr("loads")
    local seen = tikd.kv.get("seen") or {}
    seen[#seen + 1] = n
    tikd.kv.set("seen", seen)
    local at = tikd.cron.parse("30 2 * * *"):next(1772868600, "America/New_York")
    tikd.log.info("%s", { n = n, seen = table.concat(seen, ","),
                          keys = table.concat(tikd.kv.keys(), ","), at = at })
end
"""


def fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_a_rule_counter_survives_reloads_and_restarts(site, daemon):
    (site / "rules" / "counter.lua").write_text(COUNTER % "counted")
    (site / "rules" / "other.lua").write_text(COUNTER % "other")
    d = daemon()
    f = fields(d.wait_for(r"rule=rules/counter\.lua msg=counted "))
    assert (f["n"], f["seen"], f["keys"]) == ("1", "1", "loads,seen"), f
    assert f["at"] == "1772955000", f  # 02:30 skipped on 2026-03-08: 03:30 EDT
    assert fields(d.wait_for(r"rule=rules/other\.lua msg=other "))["n"] == "1"  # its own
    d.wait_for(r"event=daemon\.ready")  # SIGHUP is handled from here on

    for n in (2, 3):  # each reload is a new generation running on_load again
        mark = len(d.lines)
        d.signal(signal.SIGHUP)
        f = fields(d.wait_for(r"rule=rules/counter\.lua msg=counted ", after=mark))
        assert f["n"] == str(n), f
    assert d.stop() == 0

    d = daemon()  # a restart: the values were in LMDB all along
    f = fields(d.wait_for(r"rule=rules/counter\.lua msg=counted "))
    assert (f["n"], f["seen"]) == ("4", "1,2,3,4"), f
    d.wait_for(r"event=daemon\.ready")
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    assert fields(d.wait_for(r"rule=rules/counter\.lua msg=counted ", after=mark))["n"] == "5"
    f = fields(d.wait_for(r"rule=rules/other\.lua msg=other ", after=mark))
    assert (f["n"], f["seen"]) == ("5", "1,2,3,4,5"), f
    assert d.stop() == 0


def test_rules_check_has_no_kv(site):
    (site / "rules" / "eager.lua").write_text('local n = tikd.kv.get("x")\n')
    r = run_tikd("rules", "check", config=site / "tikd.conf.lua")
    assert r.returncode != 0
    assert ("rules/eager.lua:1: tikd.kv is not available here "
            "(no database: rules are only being checked)") in r.stdout + r.stderr, r.stderr
