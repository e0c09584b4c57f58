"""Tenants: three clients of an agency on one daemon. A rule of one tenant
acting on another's account, file, host, kv, jobs or budgets is refused as
if the thing did not exist, and nothing changes at TikTok; each tenant's
hooks hear only its own; a broken rule file in one tenant leaves the others
reloading; a tenant's own quota holds its posts back."""
import http.server
import json
import re
import signal
import threading
import time

import pytest

from test_publish import video

USERS = {"alice": "acct_one", "bob": "acct_two", "carol": "acct_three"}
TENANT = {"alice": "acme", "bob": "beta", "carol": "gamma"}


class Host(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):
        Host.hits.append((self.server.server_address[1], self.path))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def hosts():
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Host) for _ in range(2)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    Host.hits.clear()
    yield [srv.server_address[1] for srv in servers]
    for srv in servers:
        srv.shutdown()


def setup_tenants(s, hosts, acme_extra=""):
    """acme and beta, each with a media folder and a host of its own; gamma
    with neither. Accounts alice (acme), bob (beta), carol (gamma)."""
    s.fake.ctl.put_creator({"open_id": "-000FakeAcctThree0000000000003", "username": "acct_three"})
    for t in ("acme", "beta", "gamma"):
        (s.root / "rules" / t).mkdir()
        (s.root / "media" / t).mkdir(parents=True)
    s.cfg.write_text(s.cfg.read_text() + """
tenants = {
    acme = { media_roots = { "media/acme" }, http = { allow_hosts = { "127.0.0.1:%d" } } %s },
    beta = { media_roots = { "media/beta" }, http = { allow_hosts = { "127.0.0.1:%d" } } },
    gamma = {},
}
""" % (hosts[0], acme_extra, hosts[1]))
    for name, user in USERS.items():
        r = s.tikd("account", "add", name, "--tenant", TENANT[name])
        assert r.returncode == 0, r.stderr
        url = re.search(r"^\s+(http\S+/v2/auth/authorize/\S+)$", r.stdout, re.M).group(1)
        r = s.tikd("account", "complete", name, s.approve(url, user=user))
        assert r.returncode == 0, r.stderr


def fields(line):
    return dict((m.group(1), m.group(2) if m.group(2) is not None else m.group(3))
                for m in re.finditer(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))', line))


def logged(d, msg, n=1, pred=lambda f: True, timeout=30):
    """The fields of the first n lines tikd.log wrote with msg (and pred)."""
    out, k = [], 0
    deadline = time.monotonic() + timeout
    while len(out) < n:
        d.wait_for(r'msg=(?:"%s"|%s\b)' % (re.escape(msg), re.escape(msg)), after=k,
                   timeout=max(0.1, deadline - time.monotonic()))
        while k < len(d.lines):
            line, k = d.lines[k], k + 1
            f = fields(line)
            if f.get("msg") == msg and pred(f):
                out.append(f)
    return out


def probes(d, n):
    """acme's hostile rule's probe lines, by what each tried."""
    return {f["what"]: f for f in logged(d, "probe", n)}


def test_a_rule_cannot_touch_another_tenants_things(s, tmp_path, hosts):
    s.fake.ctl.set_config(time_scale=0.01)
    setup_tenants(s, hosts)
    mine = video(s.root / "media" / "acme" / "mine.mp4", duration=3)
    theirs = video(s.root / "media" / "beta" / "theirs.mp4", duration=4)
    bobs = video(tmp_path / "bobs.mp4", duration=5)
    # bob's own job, planned by the operator before the daemon starts: job 1
    r = s.tikd("post", str(bobs), "--account", "bob", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    (s.root / "rules" / "acme" / "hostile.lua").write_text("""
local function probe(what, ok, err)
    tikd.log.info("probe", { what = what, ok = ok and true or false, err = tostring(err) })
end
function on_load()
    probe("post_bob", tikd.upload.post{ account = "bob", media = "%(mine)s", privacy = "SELF_ONLY" })
    probe("post_zed", tikd.upload.post{ account = "zed", media = "%(mine)s", privacy = "SELF_ONLY" })
    probe("post_their_file", tikd.upload.post{ account = "alice", media = "%(theirs)s",
                                               privacy = "SELF_ONLY" })
    probe("http_their_host", pcall(tikd.http.request, { url = "http://127.0.0.1:%(beta)d/x" }))
    probe("http_own_host", tikd.http.request{ url = "http://127.0.0.1:%(acme)d/mine" })
    probe("handle_bob", tikd.oauth.account("bob"))
    probe("handle_zed", tikd.oauth.account("zed"))
    probe("accounts", true, table.concat(tikd.oauth.accounts(), ","))
    probe("budget_bob", pcall(tikd.ratelimit.budget, "bob", "daily_posts"))
    probe("budget_zed", pcall(tikd.ratelimit.budget, "zed", "daily_posts"))
    probe("status_bob_job", tikd.upload.status(1))
    probe("await_bob_job", tikd.upload.await(1, 1))
    tikd.kv.set("secret", "acme only")
    probe("post_alice", tikd.upload.post{ account = "alice", media = "%(mine)s",
                                          privacy = "SELF_ONLY", key = "one" })
end
function before_publish(job) tikd.log.info("heard", { who = "acme", hook = "before", account = job.account }) end
function on_published(job) tikd.log.info("heard", { who = "acme", hook = "published", account = job.account }) end
""" % {"mine": mine, "theirs": theirs, "beta": hosts[1], "acme": hosts[0]})
    (s.root / "rules" / "beta" / "watcher.lua").write_text("""
function on_load() tikd.log.info("beta kv", { secret = tostring(tikd.kv.get("secret")) }) end
function before_publish(job) tikd.log.info("heard", { who = "beta", hook = "before", account = job.account }) end
function on_published(job) tikd.log.info("heard", { who = "beta", hook = "published", account = job.account }) end
""")
    d = s.start()
    p = probes(d, 13)
    # another tenant's account is no account: the same answer word for word
    assert p["post_bob"]["ok"] == "false" and p["post_zed"]["ok"] == "false"
    assert p["post_bob"]["err"].replace("bob", "X") == p["post_zed"]["err"].replace("zed", "X")
    assert "no such account" in p["post_bob"]["err"]
    assert p["handle_bob"]["ok"] == "false"
    assert p["handle_bob"]["err"].replace("bob", "X") == p["handle_zed"]["err"].replace("zed", "X")
    assert p["budget_bob"]["ok"] == "false"
    assert p["budget_bob"]["err"].replace("bob", "X") == p["budget_zed"]["err"].replace("zed", "X")
    assert p["accounts"]["err"] == "alice"
    # another tenant's file, host and job
    assert p["post_their_file"]["ok"] == "false"
    assert "media_roots" in p["post_their_file"]["err"]
    assert p["http_their_host"]["ok"] == "false" and "allow_hosts" in p["http_their_host"]["err"]
    assert p["http_own_host"]["ok"] == "true"
    assert [h for h in Host.hits if h[0] == hosts[1]] == []
    assert p["status_bob_job"] == dict(p["status_bob_job"], ok="false", err="no job 1")
    assert p["await_bob_job"] == dict(p["await_bob_job"], ok="false", err="no job 1")
    # its own post goes
    assert p["post_alice"]["ok"] == "true", p["post_alice"]
    assert logged(d, "beta kv")[0]["secret"] == "nil"

    # each tenant's hooks hear only of its own jobs
    for who in ("alice", "bob"):
        logged(d, "heard", pred=lambda f: f["hook"] == "published" and f["account"] == who,
               timeout=60)
    heard = [f for f in map(fields, d.lines) if f.get("msg") == "heard"]
    assert {(h["who"], h["account"]) for h in heard} == {("acme", "alice"), ("beta", "bob")}, heard

    # at TikTok: bob's one post (the operator's) and alice's; nothing else
    posts = s.fake.ctl.posts()
    by = sorted((p["open_id"][-1], p["sha256"]) for p in posts)
    import hashlib
    digest = lambda f: hashlib.sha256(open(f, "rb").read()).hexdigest()
    assert by == sorted([("1", digest(mine)), ("2", digest(bobs))]), posts

    # the records name the rule file, its tenant and the generation
    r = s.tikd("queue", "--all", "--json", "--tenant", "acme")
    rows = json.loads(r.stdout)
    assert [(j["account"], j["tenant"]) for j in rows] == [("alice", "acme")]
    r = s.tikd("job", "show", str(rows[0]["id"]), "--json")
    job = json.loads(r.stdout)
    assert re.fullmatch(r"rule:acme/hostile\.lua@gen\d+", job["chosen_by"]), job["chosen_by"]
    assert "tenant=acme" in s.audit()
    assert json.loads(s.tikd("queue", "--all", "--json", "--tenant", "gamma").stdout) == []
    assert d.stop() == 0
    s.assert_no_token_leaked()


def test_a_broken_tenant_keeps_its_rules_and_stops_no_other(s, hosts):
    setup_tenants(s, hosts)
    acme = s.root / "rules" / "acme" / "a.lua"
    beta = s.root / "rules" / "beta" / "b.lua"
    acme.write_text("function on_load() tikd.log.info('loaded', { v = 'acme1' }) end\n")
    beta.write_text("function on_load() tikd.log.info('loaded', { v = 'beta1' }) end\n")
    d = s.start()
    logged(d, "loaded", 2)
    acme.write_text("function on_load( tikd.log.info('never') end\n")  # a syntax error
    beta.write_text("function on_load() tikd.log.info('loaded', { v = 'beta2' }) end\n")
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.reload_failed .*tenant=acme", after=mark)
    d.wait_for(r"msg=loaded v=beta2", after=mark)  # (one field: its order is sure)
    r = s.tikd("status", "--json")
    st = json.loads(r.stdout)
    t = st["tenants"]
    assert t["acme"]["last_reload"]["ok"] is False
    assert any("acme/a.lua:1" in e for e in t["acme"]["last_reload"]["errors"])
    assert t["acme"]["live_gen"] > 0 and t["acme"]["rules"] == ["acme/a.lua"]
    assert t["beta"]["last_reload"]["ok"] is True and t["beta"]["live_gen"] > t["acme"]["live_gen"]
    assert t["gamma"]["live_gen"] > 0
    out = s.tikd("status").stdout
    assert re.search(r"tenant acme: +generation \d+.*FAILED", out), out
    assert re.search(r"acme/a\.lua:1:", out), out
    assert "tenant=acme" in s.audit()
    assert d.stop() == 0


def test_a_tenants_own_quota_holds_its_posts(s, tmp_path, hosts):
    s.fake.ctl.set_config(time_scale=0.01)
    setup_tenants(s, hosts, acme_extra=", quota = { posts_per_day = 2 }")
    d = s.start()
    for i in range(3):
        v = video(tmp_path / ("q%d.mp4" % i), duration=3 + i)
        r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    v = video(tmp_path / "b.mp4", duration=9)
    assert s.tikd("post", str(v), "--account", "bob", "--privacy", "SELF_ONLY").returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = json.loads(s.tikd("queue", "--all", "--json").stdout)
        done = [j for j in rows if j["state"] == "published"]
        held = [j for j in rows if j["state"] == "deferred" and "tenant acme" in (j["reason"] or "")]
        if len(done) == 3 and held:
            break
        time.sleep(0.3)
    assert sorted(j["account"] for j in done) == ["alice", "alice", "bob"], rows
    assert len(held) == 1 and "own quota" in held[0]["reason"], rows
    assert len(s.fake.ctl.posts()) == 3
    assert d.stop() == 0


def test_cli_keeps_tenants_apart(s, hosts, tmp_path):
    setup_tenants(s, hosts)
    # a tenant that does not exist
    r = s.tikd("account", "add", "dave", "--tenant", "nope")
    assert r.returncode != 0 and "no tenant named 'nope'" in r.stderr
    # rules check: another tenant's account is as unknown as one that is not there
    (s.root / "rules" / "acme" / "sched.lua").write_text(
        'tikd.schedule("s", { account = "bob", slots = { "0 9 * * *" } })\n')
    r = s.tikd("rules", "check", "--tenant", "acme")
    assert r.returncode == 1 and "unknown account 'bob'" in r.stderr, r.stdout + r.stderr
    (s.root / "rules" / "acme" / "sched.lua").write_text(
        'tikd.schedule("s", { account = "alice", slots = { "0 9 * * *" } })\n')
    r = s.tikd("rules", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tenant acme:" in r.stdout and "tenant gamma:" in r.stdout
    # moving an account with a job still to go is refused; without, it moves
    v = video(tmp_path / "m.mp4", duration=3)
    assert s.tikd("post", str(v), "--account", "carol", "--at", "2099-01-01T00:00:00Z",
                  "--privacy", "SELF_ONLY").returncode == 0
    r = s.tikd("account", "set-tenant", "carol", "acme")
    assert r.returncode == 1 and "still to go" in r.stderr
    job = json.loads(s.tikd("queue", "--json").stdout)[0]["id"]
    assert s.tikd("job", "cancel", str(job)).returncode == 0
    r = s.tikd("account", "set-tenant", "carol", "acme")
    assert r.returncode == 0, r.stderr
    acc = json.loads(s.tikd("account", "show", "carol", "--json").stdout)
    assert acc["tenant"] == "acme"
    assert "account.tenant" in s.audit()
    # tikd plan needs to know whose rules
    r = s.tikd("plan")
    assert r.returncode != 0 and "--tenant" in r.stderr
    assert s.tikd("plan", "--tenant", "beta").returncode == 0


def test_config_refuses_tenants_that_overlap(s, hosts):
    s.cfg.write_text(s.cfg.read_text() + """
tenants = { a = { rules_dir = "rules/x" }, b = { rules_dir = "rules/x/y" } }
""")
    r = s.tikd("status")
    assert r.returncode != 0 and "each rule file belongs to one tenant" in r.stderr
    s.cfg.write_text(s.cfg.read_text() + """
tenants = { a = { rules_dir = "rules/x" }, b = { rules_dir = "rules/y" }, ["Bad!"] = {} }
""")
    r = s.tikd("status")
    assert r.returncode != 0 and "tenant name" in r.stderr


def test_a_tenants_admin_token_sees_only_its_tenant(s, hosts, tmp_path):
    from test_admin_api import Admin
    s.fake.ctl.set_config(time_scale=0.01)
    setup_tenants(s, hosts)
    s.cfg.write_text(s.cfg.read_text() + 'admin = { listen = { "127.0.0.1:0" } }\n')
    r = s.tikd("admin", "token", "create", "acme-ops", "--role", "operator", "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip().splitlines()[-1]
    r = s.tikd("admin", "token", "create", "acme-root", "--role", "admin", "--tenant", "acme")
    assert r.returncode != 0 and "viewer or an operator" in r.stderr
    bobs = video(tmp_path / "bob.mp4", duration=3)
    assert s.tikd("post", str(bobs), "--account", "bob", "--privacy", "SELF_ONLY",
                  "--at", "2099-01-01T00:00:00Z").returncode == 0
    d = s.start()
    port = int(re.search(r"port=(\d+)", d.wait_for(r"event=admin\.listening addr=127")).group(1))
    api = Admin(port=port)
    st, doc = api.call("GET", "/api/v1/accounts", tok)
    assert st == 200 and [a["name"] for a in doc["accounts"]] == ["alice"], doc
    st_bob, bob = api.call("GET", "/api/v1/accounts/bob", tok)
    st_zed, zed = api.call("GET", "/api/v1/accounts/zed", tok)
    assert st_bob == st_zed == 404
    assert bob["error"]["message"].replace("bob", "X") == zed["error"]["message"].replace("zed", "X")
    st, doc = api.call("GET", "/api/v1/jobs?all=1", tok)
    assert st == 200 and doc["jobs"] == []
    assert api.call("GET", "/api/v1/jobs/1", tok)[0] == 404
    st, doc = api.call("POST", "/api/v1/jobs/1/cancel", tok, body={})
    assert st == 404, doc
    mine = video(s.root / "media" / "acme" / "mine.mp4", duration=4)
    theirs = video(s.root / "media" / "beta" / "theirs.mp4", duration=5)
    st, doc = api.call("POST", "/api/v1/posts", tok, body={
        "account": "bob", "media": str(mine), "privacy": "SELF_ONLY"})
    assert st in (400, 404, 422) and "bob" in json.dumps(doc), doc
    st, doc = api.call("POST", "/api/v1/posts", tok, body={
        "account": "alice", "media": str(theirs), "privacy": "SELF_ONLY"})
    assert st == 400 and "media_roots" in doc["error"]["message"], doc
    st, doc = api.call("POST", "/api/v1/posts", tok, body={
        "account": "alice", "media": str(mine), "privacy": "SELF_ONLY"})
    assert st in (200, 201), doc
    st, doc = api.call("GET", "/api/v1/limits", tok)
    assert st == 200 and list(doc["accounts"]) == ["alice"], doc
    for path in ("/api/v1/status", "/api/v1/audit", "/metrics", "/api/v1/tokens"):
        st, doc = api.call("GET", path, tok)
        assert st == 403, (path, doc)
    # the job the rules of bob's tenant planned is untouched, and at TikTok only alice posted
    job = json.loads(s.tikd("job", "show", "1", "--json").stdout)
    assert job["state"] == "scheduled"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not s.fake.ctl.posts():
        time.sleep(0.2)
    assert [p["open_id"][-1] for p in s.fake.ctl.posts()] == ["1"]
    assert d.stop() == 0
