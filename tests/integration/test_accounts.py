"""Accounts and OAuth (Login Kit v2) end to end against the fake TikTok: the
callback page, `account complete`, both token-lifetime regimes, rejected
states, refresh before expiry with short-lived tokens and strict rotation,
invalid_grant, revocation (by `account remove` and by webhook), key rotation,
and, at the end of each test, no token the fake issued anywhere in the
database, the logs or the command output."""
import re
import threading
import time
import urllib.error
import urllib.request

import pytest


def test_connect_through_the_callback_page(s):
    d = s.start()
    location = s.approve(s.authorize_url("alice"))
    assert location.startswith(s.redirect + "?")
    page = urllib.request.urlopen(location, timeout=10)
    html = page.read().decode()
    assert page.status == 200 and "Account connected" in html and "alice" in html
    acct = s.accounts()["alice"]
    assert acct["state"] == "active" and acct["open_id"] == "-000FakeAcctOne000000000000001"
    r = s.tikd("account", "check", "alice")
    assert r.returncode == 0 and "Account One" in r.stdout, r.stderr
    # the code exchange sent the redirect URI byte for byte and a PKCE verifier
    assert "oauth.connected" in s.audit()
    # a replayed callback is refused with a page, and changes nothing
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(location, timeout=10)
    assert err.value.code == 400 and "already used" in err.value.read().decode()
    assert d.proc.poll() is None
    s.assert_no_token_leaked()



def test_a_callback_page_still_waiting_at_shutdown_gets_a_503(s):
    d = s.start()
    location = s.approve(s.authorize_url("alice"))
    s.fake.ctl.add_fault(kind="delay", path_prefix="/v2/oauth/token/", delay_sec=30)
    answer = {}

    def browser():
        try:
            page = urllib.request.urlopen(location, timeout=20)
            answer["status"] = page.status
        except urllib.error.HTTPError as err:
            answer["status"], answer["body"] = err.code, err.read().decode()

    t = threading.Thread(target=browser)
    t.start()
    deadline = time.monotonic() + 10
    while s.fake.ctl.faults()[0]["fired"] == 0:  # the code exchange is at the fake
        assert time.monotonic() < deadline, "the code exchange never reached the fake"
        time.sleep(0.05)
    assert d.stop() == 0, "\n".join(d.lines[-20:])
    t.join(timeout=10)
    assert answer.get("status") == 503 and "shutting down" in answer["body"], answer
    assert s.accounts()["alice"]["state"] == "pending"

@pytest.mark.parametrize("life", [(86400, 31536000), (7200, 15552000)])
def test_lifetimes_come_from_the_response(s, life):
    s.fake.ctl.set_config(access_token_ttl_sec=life[0], refresh_token_ttl_sec=life[1])
    r = s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice")))
    assert r.returncode == 0, r.stderr
    assert "access token for %d s" % life[0] in r.stdout
    assert "refresh token for %d days" % (life[1] // 86400) in r.stdout
    show = s.tikd("account", "show", "alice").stdout
    exp = re.search(r"access expires:\s+(\S+)", show).group(1)
    left = time.mktime(time.strptime(exp, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
    assert abs(left - life[0]) < 5
    s.assert_no_token_leaked()


def test_bad_states_are_rejected_and_change_nothing(s):
    good = s.approve(s.authorize_url("alice"))
    bob = s.approve(s.authorize_url("bob"), user="acct_two")
    before = s.accounts()
    # forged: a state tikd never issued
    forged = re.sub(r"state=[^&]+", "state=forged-state-value-0123456789abcdefghij", good)
    r = s.tikd("account", "complete", "alice", forged)
    assert r.returncode == 1 and "unknown or was already used" in r.stderr
    # missing state, TikTok's error parameter
    r = s.tikd("account", "complete", "alice", re.sub(r"&?state=[^&]+", "", good))
    assert r.returncode == 1 and "no state" in r.stderr
    # another account's state: refused, and bob's authorization still works
    r = s.tikd("account", "complete", "alice", bob)
    assert r.returncode == 1 and "started for account bob, not alice" in r.stderr
    assert s.accounts() == before
    assert s.tikd("account", "complete", "bob", bob).returncode == 0
    # replayed
    assert s.tikd("account", "complete", "alice", good).returncode == 0
    r = s.tikd("account", "complete", "alice", good)
    assert r.returncode == 1 and "already used" in r.stderr
    # a user who denies
    denied = s.approve(s.authorize_url("carol") + "&fake_deny=1")
    r = s.tikd("account", "complete", "carol", denied)
    assert r.returncode == 1 and "access_denied" in r.stderr
    assert s.accounts()["carol"]["state"] == "pending"
    audit = s.audit()
    for reason in ("unknown_state", "missing_state", "other_account", "tiktok_error"):
        assert "reason=" + reason in audit, reason
    s.assert_no_token_leaked()


def test_expired_state(s):
    s.cfg.write_text(s.cfg.read_text() + "oauth = { state_ttl = 1, sweep_interval = 0.5 }\n")
    url = s.authorize_url("alice")
    location = s.approve(url)
    time.sleep(1.5)  # the state's whole life; not a timing assertion
    r = s.tikd("account", "complete", "alice", location)
    assert r.returncode == 1 and "expired" in r.stderr
    assert s.accounts()["alice"]["state"] == "pending"
    assert "reason=expired_state" in s.audit()


@pytest.mark.parametrize("rotation", [True, False])
def test_refresh_before_expiry_with_short_tokens(s, rotation):
    s.fake.ctl.set_config(access_token_ttl_sec=4, refresh_token_rotation=rotation)
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    d = s.start()
    deadline = time.monotonic() + 10
    checks = 0
    while time.monotonic() < deadline:
        r = s.tikd("account", "check", "alice")
        assert r.returncode == 0, r.stderr
        checks += 1
    reqs = s.fake.ctl.ledger()["requests"]
    info = [q for q in reqs if q["path"].startswith("/v2/user/info/")]
    refreshes = [q for q in reqs if q["path"] == "/v2/oauth/token/"]
    assert len(info) == checks and all(q["status"] == 200 for q in info)  # no expired token
    assert len(refreshes) >= 3 and all(q["status"] == 200 for q in refreshes), (refreshes, "\n".join(d.lines)[-3000:], s.output[-6:])
    audit = s.audit()
    assert ("refresh_rotated=yes" in audit) == rotation
    assert ("refresh_rotated=no" in audit) == (not rotation)
    assert d.proc.poll() is None
    s.assert_no_token_leaked()


def test_invalid_grant_marks_needs_reauth_and_tells_the_rules(s):
    (s.root / "rules" / "watch.lua").write_text(
        "function on_account(a) tikd.log.warn('account changed', "
        "{ name = a.name, state = a.state }) end\n")
    s.fake.ctl.set_config(access_token_ttl_sec=3)
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    # TikTok forgets the grant without a webhook: the next refresh gets invalid_grant
    s.fake.ctl.set_config(webhook={"url": None})
    s.fake.ctl.revoke("-000FakeAcctOne000000000000001")
    d = s.start()
    d.wait_for(r"event=account\.state account=alice state=needs_reauth", timeout=15)
    d.wait_for(r'msg="account changed".*state=needs_reauth|state=needs_reauth.*msg="account changed"')
    assert s.accounts()["alice"]["state"] == "needs_reauth"
    r = s.tikd("account", "check", "alice")
    assert r.returncode == 1 and "account reauth alice" in r.stderr
    s.assert_no_token_leaked()


def test_authorization_removed_webhook_marks_revoked(s):
    s.fake.ctl.set_config(webhook={"url": "http://127.0.0.1:%d/webhooks/tiktok" % s.port})
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    d = s.start()
    s.fake.ctl.revoke("-000FakeAcctOne000000000000001", reason=1)
    d.wait_for(r"event=account\.state account=alice state=revoked", timeout=10)
    assert s.accounts()["alice"]["state"] == "revoked"
    # a forged delivery is refused and changes nothing
    s.fake.ctl.set_config(webhook={"url": "http://127.0.0.1:%d/webhooks/tiktok" % s.port,
                                   "wrong_signature": True})
    s.fake.ctl.emit_webhook("authorization.removed", open_id="-000FakeAcctTwo000000000000002",
                            content={"reason": 1})
    d.wait_for(r"event=webhook\.rejected reason=\"bad signature\"")
    s.assert_no_token_leaked()


def test_remove_revokes_at_tiktok_and_rotate_key_keeps_tokens(s):
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    assert s.tikd("account", "complete", "bob", s.approve(s.authorize_url("bob"),
                                                           user="acct_two")).returncode == 0
    r = s.tikd("vault", "rotate-key")
    assert r.returncode == 0 and "records re-sealed" in r.stdout, r.stderr
    # drop the old key from the file: every token still opens
    lines = [l for l in (s.root / "vault.keys").read_text().splitlines() if not l.startswith("#")]
    assert len(lines) == 2
    (s.root / "vault.keys").write_text(lines[1] + "\n")
    assert s.tikd("account", "check", "alice").returncode == 0
    r = s.tikd("account", "remove", "alice")
    assert r.returncode == 0 and "revoked at TikTok and removed" in r.stdout
    assert "alice" not in s.accounts()
    assert any(q["path"] == "/v2/oauth/revoke/" and q["status"] == 200
               for q in s.fake.ctl.ledger()["requests"])
    assert s.tikd("account", "check", "bob").returncode == 0
    assert "account.removed" in s.audit()
    assert s.tikd("audit", "verify").returncode == 0
    s.assert_no_token_leaked()


def test_rules_see_account_handles_never_tokens(s):
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    (s.root / "rules" / "who.lua").write_text("""
function on_load()
    local names = tikd.oauth.accounts()
    local a = assert(tikd.oauth.account(names[1]))
    local info = a:info()
    local fields = {}
    for k in pairs(info) do fields[#fields + 1] = k end
    table.sort(fields)
    tikd.log.info("handle", { handle = tostring(a), state = info.state,
                              fields = table.concat(fields, ","),
                              meta = tostring(getmetatable(a)) })
    local none, err = tikd.oauth.account("nobody")
    tikd.log.info("missing", { err = err })
end
""")
    d = s.start()
    line = d.wait_for(r'msg=handle')
    assert "handle=tikd.account(alice)" in line and "state=active" in line
    assert ("fields=access_expires_at,name,open_id,reason,refresh_expires_at,scopes,state"
            in line)
    assert "meta=tikd.account" in line
    d.wait_for(r'msg=missing err="no account named nobody"')
    s.assert_no_token_leaked()


def test_one_tiktok_user_is_one_account(s):
    """The same TikTok user approved for a second account name would post
    everything twice to one creator: refused, and nothing changes."""
    r = s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice")))
    assert r.returncode == 0, r.stderr
    r = s.tikd("account", "complete", "bob", s.approve(s.authorize_url("bob")))
    assert r.returncode == 1
    assert "already connected as account alice" in r.stderr, r.stderr
    rows = s.accounts()
    assert rows["alice"]["state"] == "active"
    assert rows["bob"]["state"] != "active", rows
    # alice reconnecting as herself is fine
    r = s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice", reauth=True)))
    assert r.returncode == 0, r.stderr
    s.assert_no_token_leaked()


def test_a_redirect_uri_ending_in_a_slash_is_routed_exactly(s):
    """Issue 13, item 19: the callback route is the configured redirect
    URI's exact path, a trailing '/' included."""
    slashed = s.redirect + "/"
    s.cfg.write_text(s.cfg.read_text().replace('redirect_uri = "%s"' % s.redirect,
                                               'redirect_uri = "%s"' % slashed))
    s.fake.ctl.set_config(redirect_uris=["http://127.0.0.1:*/oauth/callback/"])
    s.redirect = slashed
    s.start()
    location = s.approve(s.authorize_url("alice"))
    assert location.startswith(slashed + "?"), location
    page = urllib.request.urlopen(location, timeout=10)
    assert page.status == 200 and "Account connected" in page.read().decode()
    assert s.accounts()["alice"]["state"] == "active"
    # the path without the slash is another path
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(location.replace("/callback/?", "/callback?"), timeout=10)
    assert err.value.code == 404
    s.assert_no_token_leaked()


def test_a_bare_401_error_body_refreshes_and_posts(s, tmp_path):
    """Issue 13, item 20: an OAuth-style body without TikTok's wrapper keeps
    its code: access_token_invalid makes tikd refresh, then the post goes."""
    from test_publish import connect, video
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s)
    d = s.start()
    s.fake.ctl.add_fault(kind="status", path_prefix="/v2/post/publish/creator_info/query/",
                         status=401, body='{"error": "access_token_invalid", "error_description":'
                         ' "The access token is invalid or not found.", "log_id": "LOGBARE401"}')
    v = video(tmp_path / "clip.mp4", duration=3)
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--wait",
               timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + "\n".join(d.lines[-20:])
    assert len(s.fake.ctl.requests("/v2/oauth/token/")) >= 2  # the exchange, then a refresh
    d.wait_for(r"code=access_token_invalid .*log_id=LOGBARE401|log_id=LOGBARE401")
    s.assert_no_token_leaked()


@pytest.mark.parametrize("fmt", ["seconds", "http-date"])
def test_the_token_endpoints_retry_after_holds_the_refresh(s, fmt):
    """Issue 13, item 15: a refresh answered 429 with Retry-After is not sent
    again before it passes, by the sweep or anyone else; then it goes."""
    s.fake.ctl.set_config(access_token_ttl_sec=4)
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    s.fake.ctl.add_fault(kind="rate_limit", path_prefix="/v2/oauth/token/", retry_after=7,
                         retry_after_format=fmt)
    d = s.start()
    d.wait_for(r"event=oauth\.refresh_failed", timeout=10)
    d.wait_for(r"event=oauth\.tokens_stored .*why=oauth\.refreshed", timeout=15)
    reqs = [q for q in s.fake.ctl.ledger()["requests"] if q["path"] == "/v2/oauth/token/"]
    refused = [q for q in reqs if q["status"] == 429]
    assert len(refused) == 1, reqs
    after = [q for q in reqs if q["t_mono"] > refused[0]["t_mono"]]
    assert after and after[0]["status"] == 200, reqs
    assert after[0]["t_mono"] - refused[0]["t_mono"] >= 7 - 1.0, (fmt, reqs)  # the date has 1 s steps
    assert d.proc.poll() is None
    s.assert_no_token_leaked()


def test_bogus_callbacks_cannot_flood_the_audit_log(s):
    """Issue 13, item 12: callbacks that name no authorization tikd started
    (no state, an unknown one) come from anyone. The first of a minute is
    audited; the rest are counted and written as one record."""
    d = s.start()
    for i in range(300):
        url = "http://127.0.0.1:%d/oauth/callback?state=bogus%d&code=x" % (s.port, i)
        if i % 3 == 0:
            url = "http://127.0.0.1:%d/oauth/callback?code=x" % s.port
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 400
    # a real refusal (an authorization started for alice, answered for bob) stays its own record
    r = s.tikd("account", "complete", "bob", s.approve(s.authorize_url("alice")))
    assert r.returncode == 1
    assert d.stop() == 0
    rejected = [l for l in s.audit().splitlines() if "oauth.rejected" in l]
    assert len(rejected) <= 4, rejected
    assert any("reason=unauthenticated_callbacks count=299" in l for l in rejected), rejected
    assert any("reason=other_account" in l for l in rejected), rejected


def test_a_key_rotated_while_the_daemon_runs_is_taken_at_once(s, tmp_path):
    """Issue 13, item 9: `tikd vault rotate-key` re-seals every record under a
    new key while the daemon runs; the daemon follows the key file (opens
    what the new key sealed, seals with it from then on), so nothing pauses."""
    from test_publish import connect, video
    s.fake.ctl.set_config(time_scale=0.01, access_token_ttl_sec=4)
    connect(s)
    d = s.start()
    r = s.tikd("vault", "rotate-key")
    assert r.returncode == 0, r.stderr
    new_key = re.search(r"new key (\S+) appended", r.stdout).group(1)
    v = video(tmp_path / "clip.mp4", duration=3)
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--wait",
               timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + "\n".join(d.lines[-20:])
    d.wait_for(r"event=vault\.keys_reloaded .*sealing_key=%s" % re.escape(new_key))
    # the daemon's refreshes seal under the new key; the CLI opens them
    mark = len(d.lines)
    d.wait_for(r"event=oauth\.tokens_stored .*why=oauth\.refreshed", after=mark, timeout=15)
    r = s.tikd("account", "check", "alice")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any("not in the key file" in l for l in d.lines)
    s.assert_no_token_leaked()


def token_requests(s):
    return [q for q in s.fake.ctl.ledger()["requests"] if q["path"] == "/v2/oauth/token/"]


LOST_ANSWERS = [
    dict(kind="status", status=502, phase="after"),
    dict(kind="malformed_json"),
    dict(kind="reset", phase="response"),
]


@pytest.mark.parametrize("grace", [0, 60], ids=["strict", "lenient"])
@pytest.mark.parametrize("lost", LOST_ANSWERS, ids=lambda f: f["kind"])
def test_a_rotated_refresh_whose_answer_was_lost(s, grace, lost):
    """Issue 13, item 14: TikTok rotated the refresh token and its answer was
    lost. The old token is tried once, at once: a lenient TikTok still takes
    it; a strict one refuses it, and the account needs connecting again with
    a reason that says what happened (audited, logged, told to the rules).
    Never a second blind retry."""
    (s.root / "rules" / "watch.lua").write_text(
        "function on_account(a) tikd.log.warn('account changed', "
        "{ name = a.name, state = a.state }) end\n")
    s.fake.ctl.set_config(access_token_ttl_sec=8, refresh_reuse_grace_sec=grace)
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    s.fake.ctl.add_fault(path_prefix="/v2/oauth/token/", **lost)
    d = s.start()
    d.wait_for(r"event=oauth\.refresh_failed", timeout=15)
    if grace:
        d.wait_for(r"event=oauth\.tokens_stored .*why=oauth\.refreshed", timeout=15)
        reqs = token_requests(s)
        assert len(reqs) == 3 and reqs[2]["status"] == 200, reqs  # the lost one, the retry
        assert s.accounts()["alice"]["state"] == "active"
        r = s.tikd("account", "check", "alice")
        assert r.returncode == 0, r.stderr
    else:
        d.wait_for(r"event=oauth\.rotation_lost", timeout=15)
        d.wait_for(r'msg="account changed".*state=needs_reauth|state=needs_reauth.*msg="account changed"')
        time.sleep(1.5)  # three sweeps: nothing more is sent
        reqs = token_requests(s)
        assert len(reqs) == 3, reqs  # the exchange, the lost refresh, one retry
        assert reqs[2]["status"] == 400, reqs
        assert s.accounts()["alice"]["state"] == "needs_reauth"
        r = s.tikd("account", "check", "alice")
        assert r.returncode == 1 and "lost its answer" in r.stderr and "account reauth alice" in r.stderr, r.stderr
        assert "oauth.rotation_lost" in s.audit()
    assert d.proc.poll() is None
    s.assert_no_token_leaked()


@pytest.mark.parametrize("grace", [0, 60], ids=["strict", "lenient"])
def test_a_kill_during_a_refresh_is_recovered_at_once(s, grace):
    """Issue 13, item 7: tikd is killed while TikTok holds its refresh's
    answer. The next process does not wait out the dead one's lease: it tries
    the old token at once; a lenient TikTok takes it, a strict one means the
    account needs connecting again, with the reason."""
    s.fake.ctl.set_config(access_token_ttl_sec=8, refresh_reuse_grace_sec=grace)
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/v2/oauth/token/", answer_delay_sec=4)
    d = s.start()
    deadline = time.monotonic() + 15
    while len(token_requests(s)) < 2:  # the refresh has reached TikTok
        assert time.monotonic() < deadline, "no refresh"
        time.sleep(0.05)
    time.sleep(0.3)  # TikTok rotated; its answer waits
    d.proc.kill()
    d.proc.wait()
    t0 = time.monotonic()
    r = s.tikd("account", "check", "alice")
    took = time.monotonic() - t0
    assert took < 15, took  # the dead process's 30 s lease is not waited out
    reqs = token_requests(s)
    assert len(reqs) == 3, reqs  # the exchange, the killed refresh, one retry
    if grace:
        assert r.returncode == 0, r.stderr
        assert reqs[2]["status"] == 200
        assert s.accounts()["alice"]["state"] == "active"
    else:
        assert r.returncode == 1, r.stderr
        assert "stopped while its refresh was in flight" in r.stderr, r.stderr
        assert s.accounts()["alice"]["state"] == "needs_reauth"
    s.assert_no_token_leaked()


def test_reconnecting_an_account_sends_the_jobs_it_paused_at_once(s, tmp_path):
    """A job paused because its account lost its grant waits 10 minutes
    between looks; connecting the account again makes it due at once."""
    from test_publish import video
    s.fake.ctl.set_config(time_scale=0.01)
    assert s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice"))).returncode == 0
    s.fake.ctl.set_config(webhook={"url": None})
    s.fake.ctl.revoke("-000FakeAcctOne000000000000001")  # the access token dies at TikTok
    d = s.start()
    r = s.tikd("post", str(video(tmp_path / "v.mp4")), "--account", "alice",
               "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    d.wait_for(r"event=account\.state account=alice state=needs_reauth", timeout=15)
    d.wait_for(r"event=job\.deferred job=1 .*retry_in_s=600", timeout=15)
    r = s.tikd("account", "complete", "alice", s.approve(s.authorize_url("alice", reauth=True)))
    assert r.returncode == 0, r.stderr
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=20)
    assert len(s.fake.ctl.posts()) == 1
    s.assert_no_token_leaked()
