"""The `tikd` command: usage errors, help, rules check, config errors, and the
daemon's lifecycle (start, reload good and bad rules, backup while running,
graceful stop, audit chain)."""
import datetime
import re
import signal
import time

from conftest import run_tikd


def test_usage_errors_exit_2():
    for args in ([], ["bogus"], ["--bogus", "run"], ["run", "extra"], ["rules"],
                 ["rules", "frobnicate"], ["backup"], ["audit", "frob"], ["version", "x"],
                 ["--config"]):
        r = run_tikd(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "usage: tikd" in r.stderr, args


def test_help_and_version():
    r = run_tikd("--help")
    assert r.returncode == 0 and "rules check [DIR]" in r.stdout
    r = run_tikd("help", "run")
    assert r.returncode == 0 and "SIGHUP reloads the rules" in r.stdout
    r = run_tikd("backup", "--help")
    assert r.returncode == 0 and "usage: tikd backup DEST" in r.stdout
    r = run_tikd("help", "config")
    assert r.returncode == 0 and "tiktok.api_url" in r.stdout
    r = run_tikd("version")
    assert r.returncode == 0 and r.stdout.startswith("tikd ")


def test_rules_check_reports_file_and_line(site):
    cfg = site / "tikd.conf.lua"
    r = run_tikd("rules", "check", config=cfg)
    assert r.returncode == 0, r.stderr
    assert "rules/hello.lua: ok" in r.stdout
    bad = site / "bad"
    bad.mkdir()
    (bad / "one.lua").write_text("function f()\n  return 1 +\nend\n")
    (bad / "two.lua").write_text("io.open('/etc/passwd')\n")
    (bad / "three.lua").write_text("function ok() end\n")
    r = run_tikd("rules", "check", str(bad), config=cfg)
    assert r.returncode == 1
    assert "bad/one.lua:3:" in r.stderr
    assert "bad/two.lua:1: attempt to index a nil value (global 'io')" in r.stderr
    assert "3 rule files checked" in r.stdout and "2 failed" in r.stdout


def test_bad_config_is_refused_at_start(site):
    cfg = site / "bad.conf.lua"
    cfg.write_text('log = { level = "loud" }\n')
    r = run_tikd("run", config=cfg)
    assert r.returncode == 1
    assert "key 'log.level': value \"loud\" is not allowed" in r.stderr
    r = run_tikd("run", config=site / "tikd.conf.lua", env={"TIKD_LOG_LEVEL": "loud"})
    assert r.returncode == 1 and "TIKD_LOG_LEVEL" in r.stderr
    assert not (site / "data").exists()  # nothing was created


def test_missing_or_wrong_vault_key_stops_tikd_before_anything_changes(site):
    cfg = site / "tikd.conf.lua"
    (site / "vault.keys").chmod(0o644)
    r = run_tikd("run", config=cfg)
    assert r.returncode == 1 and "mode 0644" in r.stderr and "chmod 600" in r.stderr
    assert not (site / "data").exists()
    (site / "vault.keys").unlink()
    r = run_tikd("run", config=cfg)
    assert r.returncode == 1 and "tikd vault init" in r.stderr
    # a database sealed under one key refuses another
    assert run_tikd("vault", "init", config=cfg).returncode == 0
    assert run_tikd("backup", str(site / "b0"), config=cfg).returncode == 1  # no db yet
    first = (site / "vault.keys").read_text()
    d0 = run_tikd("vault", "rotate-key", config=cfg)
    assert d0.returncode == 0, d0.stderr
    (site / "vault.keys").unlink()
    assert run_tikd("vault", "init", config=cfg).returncode == 0
    assert (site / "vault.keys").read_text() != first
    before = (site / "data" / "data.mdb").read_bytes()
    r = run_tikd("run", config=cfg)
    assert r.returncode == 1 and "do not open this database" in r.stderr
    assert (site / "data" / "data.mdb").read_bytes() == before


def test_daemon_lifecycle(site, daemon):
    d = daemon()
    d.wait_for(r"event=rules\.loaded gen=1 .*rules/hello\.lua")
    d.wait_for(r"event=daemon\.ready")
    d.wait_for(r"caption measured")

    # a broken rule: the reload fails, names file:line, and gen 1 keeps running
    (site / "rules" / "broken.lua").write_text("function x(\n")
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.load_error gen=2 error=\"rules/broken\.lua:2:")
    d.wait_for(r"event=rules\.reload_failed gen=2 .*kept_gen=1")

    # fixed: gen 3 goes live and runs its on_load
    (site / "rules" / "broken.lua").write_text("function on_load() tikd.log.info('fixed') end\n")
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.loaded gen=3 .*rules/broken\.lua")
    d.wait_for(r"rule=rules/broken\.lua msg=fixed")

    # a hot backup while it runs
    r = run_tikd("backup", str(site / "bk"), config=site / "tikd.conf.lua")
    assert r.returncode == 0, r.stderr
    assert (site / "bk" / "data.mdb").stat().st_size > 0

    # it stops as soon as its running calls end, not when the grace period does
    assert d.stop() == 0
    d.wait_for(r"event=daemon\.stopping signal=TERM")
    d.wait_for(r"event=daemon\.stopped")
    assert not any("daemon.grace_expired" in l for l in d.lines), d.lines

    r = run_tikd("audit", "verify", config=site / "tikd.conf.lua")
    assert r.returncode == 0, r.stderr
    # daemon.start, three reloads (one failed), daemon.stop
    assert "audit chain intact: 5 records" in r.stdout


def stamp(line):
    """The ts= of a log line, as seconds since the epoch."""
    ts = re.search(r"\bts=(\S+)Z", line).group(1)
    return datetime.datetime.fromisoformat(ts).replace(tzinfo=datetime.timezone.utc).timestamp()


def test_sigterm_cancels_calls_after_grace(site, daemon):
    (site / "rules" / "slow.lua").write_text(
        "function on_load() tikd.sleep(3600) end\n")
    d = daemon()
    d.wait_for(r"event=daemon\.ready")
    d.wait_for(r"caption measured")  # hello.lua's on_load is done; slow.lua's is not
    d.signal(signal.SIGTERM)
    stopping = d.wait_for(r"event=daemon\.stopping signal=TERM running_calls=1")
    assert "grace_s=2" in stopping, stopping  # shutdown_grace = 2 in the site config
    assert d.stop() == 0
    expired = d.wait_for(r"event=daemon\.grace_expired cancelled=1")
    # the daemon's own clock: the call was cancelled once the grace had passed
    assert stamp(expired) - stamp(stopping) >= 2.0 - 0.01, (stopping, expired)


def test_rules_that_fail_at_start_stop_the_daemon(site):
    (site / "rules" / "bad.lua").write_text("error('no')\n")
    r = run_tikd("run", config=site / "tikd.conf.lua")
    assert r.returncode == 1
    assert "rules/bad.lua:1: no" in r.stderr


def test_signals_while_starting_never_kill_the_daemon(daemon, site):
    """`tikd post` wakes the daemon with SIGUSR1 as soon as its pid file
    exists, and an operator may SIGHUP at any time: a daemon that is still
    starting takes both."""
    import signal as sig
    pidfile = site / "data" / "tikd.pid"
    (site / "rules" / "slow.lua").write_text(  # a start that takes a while
        "local t = os.clock() while os.clock() - t < 0.3 do end\n")
    d = daemon()
    while d.proc.poll() is None and not pidfile.exists():
        time.sleep(0.0005)
    sent = 0
    while d.proc.poll() is None and not any("daemon.ready" in l for l in d.lines) and sent < 400:
        d.proc.send_signal(sig.SIGUSR1 if sent % 2 else sig.SIGHUP)
        sent += 1
        time.sleep(0.001)
    assert sent > 0
    d.wait_for(r"event=daemon\.ready", timeout=10)
    assert d.proc.poll() is None
    d.proc.send_signal(sig.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
