"""Hot reload on a change: editing a rule file (or a library it requires)
builds a new generation without a restart; a broken edit keeps the running
rules; a burst of writes is one reload."""
import time

from conftest import Daemon


def start(site):
    cfg = site / "tikd.conf.lua"
    cfg.write_text(cfg.read_text() + "rules = { watch = true }\n")
    d = Daemon(cfg)
    d.wait_for(r"event=daemon\.ready")
    return d


def test_an_edited_rule_goes_live_without_a_restart(site):
    rule = site / "rules" / "greet.lua"
    rule.write_text('function on_load() tikd.log.info("greet", { v = 1 }) end\n')
    d = start(site)
    try:
        d.wait_for(r"msg=greet v=1")
        rule.write_text('function on_load() tikd.log.info("greet", { v = 2 }) end\n')
        d.wait_for(r"msg=greet v=2", timeout=10)
        assert any("rules.reload_requested by=change" in l for l in d.lines)
        # a broken edit: refused with file:line, the running rules stay
        rule.write_text('function on_load( tikd.log.info("greet") end\n')
        d.wait_for(r"event=rules\.load_error .*greet\.lua:1:", timeout=10)
        d.wait_for(r"event=rules\.reload_failed .*kept_gen=2")
        # a library a rule requires counts too
        (site / "rules" / "lib").mkdir(exist_ok=True)
        (site / "rules" / "lib" / "words.lua").write_text('return { hello = "hallo" }\n')
        rule.write_text('local w = require "lib.words"\n'
                        'function on_load() tikd.log.info("greet", { v = w.hello }) end\n')
        d.wait_for(r"msg=greet v=hallo", timeout=10)
        (site / "rules" / "lib" / "words.lua").write_text('return { hello = "bonjour" }\n')
        d.wait_for(r"msg=greet v=bonjour", timeout=10)
        # a burst of writes is one reload, and rule tests do not count
        before = sum("event=rules.loaded" in l for l in d.lines)
        (site / "rules" / "greet_test.lua").write_text("-- a test, not a rule\n")
        for i in range(20):
            rule.write_text('local w = require "lib.words"\n'
                            'function on_load() tikd.log.info("greet", { v = %d }) end\n' % i)
        d.wait_for(r"msg=greet v=19", timeout=10)
        # one more save, after the burst's reload: whatever the burst set off
        # has happened by the time this one's reload is logged
        rule.write_text('local w = require "lib.words"\n'
                        'function on_load() tikd.log.info("greet", { v = "last" }) end\n')
        d.wait_for(r"msg=greet v=last", timeout=10)
        after = sum("event=rules.loaded" in l for l in d.lines)
        assert after - before <= 3, after - before  # the burst (at most 2) and the last save
        assert not [l for l in d.lines if "reload_requested" in l and "greet_test" in l]
        assert d.proc.poll() is None
    finally:
        d.proc.kill()
        d.proc.wait()


def test_tikd_status_shows_the_live_rules_and_a_failed_reload(site):
    from conftest import run_tikd
    cfg = site / "tikd.conf.lua"
    r = run_tikd("status", config=cfg)
    assert r.returncode == 1 and "no tikd database yet" in r.stderr, r.stdout + r.stderr
    d = start(site)
    try:
        r = run_tikd("status", config=cfg)
        assert r.returncode == 0 and "running (pid %d" % d.proc.pid in r.stdout, r.stdout
        assert "generation 1" in r.stdout and "rules/hello.lua" in r.stdout
        (site / "rules" / "bad.lua").write_text("function on_load(\n")
        d.wait_for(r"event=rules\.reload_failed")
        r = run_tikd("status", config=cfg)
        assert r.returncode == 1, r.stdout
        assert "FAILED, the rules above stay live" in r.stdout
        assert "rules/bad.lua:2:" in r.stdout, r.stdout
        assert "live rules:  generation 1" in r.stdout
    finally:
        d.proc.kill()
        d.proc.wait()
    r = run_tikd("status", config=cfg)
    assert r.returncode == 1 and "not running" in r.stdout
