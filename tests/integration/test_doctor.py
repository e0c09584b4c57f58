"""`tikd doctor` and the daemon's daily compliance check: a clean site
passes; a token or the client secret in plain text anywhere in the data
directory or a given log, an account that needs reconnecting, a loose file
mode, a broken audit chain or a plain-HTTP redirect off loopback each fail
with what and where (never the secret itself); the result is an audit
record; the daemon runs the same check as a child, shows it as metrics and
tells the rules' on_alert."""
import json
import os
import re
import time

from test_admin_api import parse_metrics, metric, token
from test_publish import connect


def doctor(s, *args):
    r = s.tikd("doctor", "--json", *args)
    doc = json.loads(r.stdout)
    return r.returncode, {c["check"]: c for c in doc["checks"]}, doc


def test_a_clean_site_passes_and_each_problem_fails(s, tmp_path):
    connect(s)
    rc, checks, doc = doctor(s)
    assert rc == 0 and doc["ok"], doc
    assert checks["secrets.plaintext"]["level"] == "ok"
    assert re.search(r"none of 3 secrets", checks["secrets.plaintext"]["detail"])  # 2 tokens + secret
    assert checks["tiktok.redirect_uri"]["level"] == "warn"  # http on loopback: the fake
    assert checks["tiktok.audited"]["level"] == "warn"
    assert checks["audit.chain"]["level"] == "ok"
    plain = s.tikd("doctor")
    assert plain.returncode == 0 and re.search(r"^ok +files\.modes", plain.stdout, re.M), plain.stdout

    # a token in plain text in a file of the data directory, and in a log
    tok = [t for t in s.fake.ctl.tokens()["all"] if t.startswith("act.")][-1]
    leak = s.root / "data" / "debug.dump"
    leak.write_bytes(b"\x00" * 5000 + b"Authorization: Bearer " + tok.encode() + b"\n" * 3)
    os.chmod(leak, 0o600)
    log = tmp_path / "tikd.log"
    log.write_text("level=info all fine\n" * 100 + "oops " + s.fake_client_secret + "\n")
    rc, checks, doc = doctor(s, "--log", str(log))
    assert rc == 1 and not doc["ok"]
    d = checks["secrets.plaintext"]
    assert d["level"] == "FAIL" and "an access token of alice in %s" % leak in d["detail"], d
    assert "the client secret of the app in %s" % log in d["detail"], d
    out = s.tikd("doctor", "--log", str(log))
    assert out.returncode == 1 and tok not in out.stdout + out.stderr
    assert s.fake_client_secret not in out.stdout + out.stderr
    leak.unlink()

    # loose modes
    os.chmod(s.root / "data", 0o755)
    rc, checks, _ = doctor(s)
    assert rc == 1 and checks["files.modes"]["level"] == "FAIL"
    assert "data is mode 755" in checks["files.modes"]["detail"]
    os.chmod(s.root / "data", 0o700)

    # an account TikTok stopped: it must be reconnected
    s.fake.ctl.revoke(s.accounts()["alice"]["open_id"])
    r = s.tikd("account", "check", "alice")
    rc, checks, _ = doctor(s)
    assert checks["accounts.reauth"]["level"] in ("FAIL", "warn"), (r.stdout, r.stderr, checks)
    assert "alice" in checks["accounts.reauth"]["detail"]

    # every run is on the record
    audit = s.audit()
    assert len(re.findall(r"operator\s+compliance\.check\s+fails=", audit)) >= 4
    assert re.search(r"compliance\.check\s+fails=2 warns=\d+ failed=secrets\.plaintext,", audit) \
        or re.search(r"compliance\.check\s+fails=1 warns=\d+ failed=secrets\.plaintext", audit), audit


def test_an_audited_app_on_https_and_an_open_admin_listener(s, tmp_path):
    """(Plain HTTP off loopback never gets this far: the config refuses it.)"""
    s.cfg.write_text(s.cfg.read_text() + 'tiktok = { redirect_uri = "https://tikd.example.com/cb", '
                     'webhook_url = "https://tikd.example.com/webhooks/tiktok", '
                     'audited = true }\nlimits = { active_users = 5 }\n'
                     'admin = { listen = { "0.0.0.0:0" } }\n')
    rc, checks, _ = doctor(s)
    assert rc == 0, checks
    assert checks["tiktok.redirect_uri"]["level"] == "ok"
    assert checks["tiktok.webhook_url"]["level"] == "ok"
    assert checks["tiktok.audited"]["level"] == "ok"
    assert checks["admin.listen"]["level"] == "warn" and "0.0.0.0:0" in checks["admin.listen"]["detail"]
    s.cfg.write_text(s.cfg.read_text() + 'tiktok = { audited = false }\nlimits = { active_users = 0 }\n')
    rc, checks, _ = doctor(s)
    assert checks["tiktok.audited"]["level"] == "warn"
    assert "limits.active_users is 0" in checks["tiktok.audited"]["detail"]


def test_the_daemon_checks_daily_and_alerts(s, tmp_path):
    s.cfg.write_text(s.cfg.read_text() + 'compliance = { interval = 1 }\n'
                     'admin = { listen = { "127.0.0.1:0" } }\n')
    connect(s)
    (s.root / "rules" / "alerts.lua").write_text(
        "function on_alert(a) tikd.log.warn('alert', { kind = a.kind, subject = a.subject, "
        "detail = a.detail }) end\n")
    tok = token(s, "prom", "viewer")
    d = s.start()
    port = int(re.search(r"port=(\d+)", d.wait_for(r"event=admin\.listening addr=127")).group(1))
    line = d.wait_for(r"event=compliance\.checked ", timeout=20)
    assert "fails=0" in line, line
    # a leak appears: the next check fails, says where, and the rules hear of it
    leak = s.root / "data" / "leak.txt"
    leak.write_text(s.fake_client_secret)
    os.chmod(leak, 0o600)
    line = d.wait_for(r"event=compliance\.failed check=secrets\.plaintext", timeout=20)
    assert "leak.txt" in line and s.fake_client_secret not in line
    line = d.wait_for(r"msg=alert .*kind=compliance", timeout=20)
    assert "subject=secrets.plaintext" in line
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + tok})
    _, m = parse_metrics(c.getresponse().read().decode())
    assert metric(m, "tikd_compliance_failures") >= 1
    assert metric(m, "tikd_compliance_check_level", check="secrets.plaintext") == 2
    assert metric(m, "tikd_compliance_last_run_timestamp_seconds") > time.time() - 60
    # a failed reload is an alert too
    (s.root / "rules" / "broken.lua").write_text("x = = 1\n")
    import signal
    d.signal(signal.SIGHUP)
    line = d.wait_for(r"msg=alert .*kind=reload", timeout=20)
    assert "broken.lua:1" in line, line
    assert d.stop() == 0
