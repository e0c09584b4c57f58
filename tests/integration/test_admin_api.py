"""The admin API (/api/v1/ on listeners of its own): bearer tokens with
roles, the unix socket by peer credentials, every change an audit record
naming who made it; and every request that is unauthenticated, of the
wrong role, cross-site, of the wrong type or too large is refused with a
stable JSON error and changes nothing."""
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import TIKD
from test_publish import connect, video


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


class Admin:
    def __init__(self, port=None, sock=None):
        self.port, self.sock = port, sock

    def call(self, method, path, token=None, body=None, headers=None, raw=None):
        c = UnixHTTP(self.sock) if self.sock else http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {"_raw": text}
        return r.status, doc


def token(s, name, role):
    r = s.tikd("admin", "token", "create", name, "--role", role)
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"tikd_[A-Za-z0-9_-]{43}", tok), r.stdout
    return tok


@pytest.fixture
def api(s, tmp_path):
    """A daemon with the admin API on a loopback port and a short socket path."""
    sockdir = tempfile.mkdtemp(prefix="tikd-", dir="/tmp")
    sock = os.path.join(sockdir, "admin.sock")
    s.cfg.write_text(s.cfg.read_text() + 'admin = { listen = { "127.0.0.1:0" }, socket = "%s" }\n'
                     % sock)
    connect(s)
    toks = {role: token(s, "t-" + role, role) for role in ("viewer", "operator", "admin")}
    d = s.start()
    port = int(re.search(r"port=(\d+)", d.wait_for(r"event=admin\.listening addr=127")).group(1))
    yield Admin(port=port), Admin(sock=sock), toks, d
    d.stop()
    if os.path.exists(sock):
        os.unlink(sock)
    os.rmdir(sockdir)


def held_job(s, tmp_path, name="held.mp4"):
    r = s.tikd("post", str(video(tmp_path / name)), "--account", "alice", "--privacy",
               "SELF_ONLY", "--approval")
    assert r.returncode == 0, r.stderr
    return int(re.search(r"job (\d+)", r.stdout).group(1))


def job_state(s, jid):
    return re.search(r"state:\s+(\S+)", s.tikd("job", "show", str(jid)).stdout).group(1)


def audit_events(s):
    return s.tikd("audit", "list").stdout


def test_roles_read_and_act_and_every_change_names_its_token(s, api, tmp_path):
    tcp, _, toks, d = api
    jid = held_job(s, tmp_path)
    st, doc = tcp.call("GET", "/api/v1", toks["viewer"])
    assert st == 200 and {"method": "POST", "path": "/api/v1/jobs/{id}/approve",
                          "role": "operator"} in [
        {k: r[k] for k in ("method", "path", "role")} for r in doc["resources"]]
    st, doc = tcp.call("GET", "/api/v1/accounts", toks["viewer"])
    assert st == 200 and [a["name"] for a in doc["accounts"]] == ["alice"], doc
    assert doc["accounts"][0]["state"] == "active"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["accounts"][0]["access_expires_at"])
    assert "token" not in json.dumps(doc).replace("access_expires_at", "").replace(
        "refresh_expires_at", "")
    st, doc = tcp.call("GET", "/api/v1/jobs?state=awaiting_approval", toks["viewer"])
    assert st == 200 and [j["id"] for j in doc["jobs"]] == [jid], doc
    st, doc = tcp.call("GET", "/api/v1/jobs?due_after=2000-01-01T00:00:00Z&due_before="
                       "2000-01-02T00:00:00Z", toks["viewer"])
    assert st == 200 and doc["jobs"] == []
    st, doc = tcp.call("GET", "/api/v1/jobs?due_after=2000-01-01T00:00:00Z", toks["viewer"])
    assert [j["id"] for j in doc["jobs"]] == [jid]
    assert tcp.call("GET", "/api/v1/jobs?due_after=tomorrow", toks["viewer"])[0] == 400
    st, doc = tcp.call("GET", "/api/v1/ready", toks["viewer"])
    assert st == 200 and doc["ready"] is True
    st, doc = tcp.call("GET", "/api/v1/jobs/%d" % jid, toks["viewer"])
    assert st == 200 and doc["state"] == "awaiting_approval" and doc["privacy"] == "SELF_ONLY"
    assert doc["video"]["container"] == "mp4" and doc["video"]["duration"] > 0, doc["video"]
    assert doc["chosen_by"] == "operator" and "upload_url" not in doc
    assert any(e["event"] == "job.planned" for e in doc["history"]), doc["history"]

    # a viewer may not act: refused, nothing changes
    st, doc = tcp.call("POST", "/api/v1/jobs/%d/approve" % jid, toks["viewer"])
    assert st == 403 and doc["error"]["code"] == "forbidden", doc
    assert job_state(s, jid) == "awaiting_approval"
    # an operator may
    st, doc = tcp.call("POST", "/api/v1/jobs/%d/approve" % jid, toks["operator"],
                       body={"note": "looks right"})
    assert st == 200 and "approved" in doc["message"], doc
    assert job_state(s, jid) != "awaiting_approval"
    log = audit_events(s)
    assert re.search(r"token:t-operator\s+job\.approved", log), log
    assert re.search(r'token:t-operator\s+job\.note\s+job=%d note="looks right"' % jid, log), log
    # approving twice is a conflict with the planner's reason
    st, doc = tcp.call("POST", "/api/v1/jobs/%d/approve" % jid, toks["operator"])
    assert st == 409 and doc["error"]["code"] == "conflict", doc
    st, doc = tcp.call("POST", "/api/v1/jobs/999/cancel", toks["operator"])
    assert st == 404 and doc["error"]["code"] == "not_found", doc
    # the approved job goes on to TikTok as any other
    s.fake.ctl.set_config(time_scale=0.01)
    end = time.monotonic() + 30
    while time.monotonic() < end and job_state(s, jid) != "published":
        time.sleep(0.3)
    assert job_state(s, jid) == "published", s.tikd("job", "show", str(jid)).stdout
    st, doc = tcp.call("GET", "/api/v1/jobs/%d" % jid, toks["viewer"])
    assert doc["state"] == "published" and doc["publish_id"] and doc["history"][-1]["event"]

    # tokens: only an admin manages them; a new one works at once, a revoked one at once not
    st, doc = tcp.call("GET", "/api/v1/tokens", toks["operator"])
    assert st == 403
    st, doc = tcp.call("POST", "/api/v1/tokens", toks["admin"], body={"name": "ci", "role": "viewer"})
    assert st == 201 and doc["token"].startswith("tikd_"), doc
    ci = doc["token"]
    assert tcp.call("GET", "/api/v1/health", ci)[0] == 200
    st, doc = tcp.call("GET", "/api/v1/tokens", toks["admin"])
    names = {t["name"]: t for t in doc["tokens"]}
    assert set(names) == {"ci", "t-admin", "t-operator", "t-viewer"}
    assert names["t-viewer"]["last_used"] is not None and "tikd_" not in json.dumps(doc)
    assert tcp.call("DELETE", "/api/v1/tokens/ci", toks["admin"])[0] == 200
    st, doc = tcp.call("GET", "/api/v1/health", ci)
    assert st == 401 and doc["error"]["code"] == "unauthenticated"
    log = audit_events(s)
    assert re.search(r"token:t-admin\s+admin\.token_created\s+name=ci role=viewer", log), log
    assert re.search(r"token:t-admin\s+admin\.token_revoked\s+name=ci", log), log
    # the CLI sees what the API made, and no token is in the log or the database
    r = s.tikd("admin", "token", "list", "--json")
    assert sorted(t["name"] for t in json.loads(r.stdout)) == ["t-admin", "t-operator", "t-viewer"]
    d.stop()
    everything = "\n".join(d.lines)
    for t in list(toks.values()) + [ci]:
        assert t not in everything
        for root, _, files in os.walk(s.root / "data"):
            for f in files:
                assert t.encode() not in open(os.path.join(root, f), "rb").read()


def test_refusals_change_nothing(s, api, tmp_path):
    tcp, _, toks, d = api
    jid = held_job(s, tmp_path)
    approve = "/api/v1/jobs/%d/approve" % jid
    before = audit_events(s)
    cases = [
        ({}, None, 401, "unauthenticated"),                                  # no token
        ({"Authorization": "Bearer tikd_" + "A" * 43}, None, 401, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None, 401, "unauthenticated"),
        ({"Cookie": "token=" + toks["operator"]}, None, 401, "unauthenticated"),  # no cookies
        # a page on another site, with a token it somehow has: refused all the same
        ({"Authorization": "Bearer " + toks["operator"], "Origin": "https://evil.example"},
         None, 403, "cross_origin"),
        ({"Authorization": "Bearer " + toks["operator"], "Sec-Fetch-Site": "cross-site"},
         None, 403, "cross_origin"),
        # the body of a form, which a browser may send across sites without asking
        ({"Authorization": "Bearer " + toks["operator"],
          "Content-Type": "application/x-www-form-urlencoded"}, b"note=x", 415,
         "unsupported_media_type"),
        ({"Authorization": "Bearer " + toks["operator"], "Content-Type": "text/plain"},
         b'{"note": "x"}', 415, "unsupported_media_type"),
        ({"Authorization": "Bearer " + toks["operator"], "Content-Type": "application/json"},
         b"{not json", 400, "bad_json"),
        ({"Authorization": "Bearer " + toks["operator"], "Content-Type": "application/json"},
         b'{"note": "%s"}' % (b"x" * 70000), 413, "payload_too_large"),
        ({"Authorization": "Bearer " + toks["viewer"]}, None, 403, "forbidden"),
    ]
    for headers, raw, status, code in cases:
        st, doc = tcp.call("POST", approve, headers=headers, raw=raw)
        assert (st, doc.get("error", {}).get("code")) == (status, code), (headers, st, doc)
        assert job_state(s, jid) == "awaiting_approval"
    st, doc = tcp.call("GET", approve, toks["admin"])
    assert st == 405 and doc["error"]["code"] == "method_not_allowed"
    st, doc = tcp.call("GET", "/api/v1/nothing", toks["admin"])
    assert st == 404 and doc["error"]["code"] == "not_found"
    st, doc = tcp.call("GET", "/api/v1/jobs?limit=x", toks["admin"])
    assert st == 400 and doc["error"]["code"] == "bad_request"
    st, doc = tcp.call("GET", "/api/v1/jobs?state=nope", toks["admin"])
    assert st == 400
    assert audit_events(s) == before
    # the same origin, as the dashboard sends it, is fine
    port = tcp.port
    st, doc = tcp.call("POST", approve, toks["operator"],
                       headers={"Origin": "http://127.0.0.1:%d" % port,
                                "Sec-Fetch-Site": "same-origin"})
    assert st == 200, doc
    # the public listener has no admin API
    pub = int(re.search(r"port=(\d+)", d.wait_for(r"event=server\.listening")).group(1))
    c = http.client.HTTPConnection("127.0.0.1", pub, timeout=5)
    c.request("GET", "/api/v1/health", headers={"Authorization": "Bearer " + toks["admin"]})
    assert c.getresponse().status == 404


def test_the_socket_is_the_daemon_users_own(s, api, tmp_path):
    _, unix, toks, d = api
    mode = stat.S_IMODE(os.stat(unix.sock).st_mode)
    assert mode == 0o600, oct(mode)
    jid = held_job(s, tmp_path)
    st, doc = unix.call("GET", "/api/v1/status")  # no token: peer credentials
    assert st == 200 and doc["jobs"]["by_state"] == {"awaiting_approval": 1}, doc
    assert doc["live_gen"] >= 1
    st, doc = unix.call("POST", "/api/v1/jobs/%d/reject" % jid)
    assert st == 200, doc
    assert job_state(s, jid) == "cancelled"
    assert re.search(r"unix:uid=%d\s+job\.rejected" % os.geteuid(), audit_events(s))
    # a token on the socket counts as that token
    st, doc = unix.call("GET", "/api/v1/tokens", toks["viewer"])
    assert st == 403
    st, doc = unix.call("GET", "/api/v1/audit?limit=2", toks["viewer"])
    assert st == 200 and len(doc["records"]) == 2 and doc["next_after"] == doc["records"][1]["seq"]
    st, more = unix.call("GET", "/api/v1/audit?limit=2&after=%d" % doc["next_after"])
    assert more["records"][0]["seq"] == doc["next_after"] + 1
    st, doc = unix.call("GET", "/api/v1/audit/verify")
    assert st == 200 and doc["ok"] is True and doc["records"] > 3
    st, doc = unix.call("GET", "/api/v1/limits")
    assert st == 200 and doc["accounts"]["alice"]["video_init"]["limited"] is True, doc
    st, doc = unix.call("GET", "/api/v1/rules")
    assert st == 200 and doc["live_gen"] >= 1 and isinstance(doc["files"], list)
    st, doc = unix.call("GET", "/api/v1/schedules")  # the example rules declare some
    names = {x["name"]: x for x in doc["schedules"]}
    assert st == 200 and names["client-tokyo-slots"]["tz"] == "Asia/Tokyo", doc
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", names["client-tokyo-slots"]["next_free"])
    st, doc = unix.call("GET", "/api/v1/plan?days=2")  # tikd plan, run by the daemon as a child
    assert st == 200 and doc["days"] == 2 and isinstance(doc["posts"], list), doc
    assert unix.call("GET", "/api/v1/plan?days=0")[0] == 400
    d.stop()
    assert not os.path.exists(unix.sock)  # removed at a clean stop


def test_token_commands_refuse_bad_input(s):
    for args, why in [
        (["create", "x"], "expected: admin token create NAME --role"),
        (["create", "x", "--role", "root"], "'root' is not a role"),
        (["create", "-x", "--role", "viewer"], "unknown option '-x'"),
        (["revoke"], "expected: admin token revoke NAME"),
        (["list", "--yaml"], "admin token list takes only --json"),
    ]:
        r = s.tikd("admin", "token", *args)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    r = s.tikd("admin", "token", "create", "bad/name", "--role", "viewer")
    assert r.returncode == 1 and "not a token name" in r.stderr
    token(s, "ops", "operator")
    r = s.tikd("admin", "token", "create", "ops", "--role", "admin")
    assert r.returncode == 1 and "a token called ops exists" in r.stderr
    r = s.tikd("admin", "token", "revoke", "nobody")
    assert r.returncode == 1 and "no token called nobody" in r.stderr
    r = s.tikd("admin", "token", "revoke", "ops")
    assert r.returncode == 0 and "revoked token ops" in r.stdout
    assert "NAME" in s.tikd("admin", "token", "list").stdout


def test_the_openapi_file_is_what_the_daemon_serves(s, api):
    """docs/openapi.json lists exactly the resources the daemon routes, with
    the role each needs; a change in either without the other fails here."""
    tcp, _, toks, _ = api
    spec = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                                       "openapi.json")))
    documented = {(m.upper(), p, op["x-role"]) for p, ops in spec["paths"].items()
                  for m, op in ops.items()}
    st, doc = tcp.call("GET", "/api/v1", toks["viewer"])
    served = {(r["method"], r["path"], r["role"]) for r in doc["resources"]}
    assert documented == served, (documented - served, served - documented)
    codes = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
                ["code"]["enum"])
    api_c = open(os.path.join(os.path.dirname(__file__), "..", "..", "cli", "api.c")).read()
    used = set(re.findall(r'fail\([^,]+, \d+, "([a-z_]+)"', api_c))
    used |= {"payload_too_large", "method_not_allowed", "not_found", "shutting_down"}
    assert used <= codes, used - codes


def parse_metrics(text):
    """Prometheus text format 0.0.4, strictly: every sample's family was
    announced with HELP and TYPE; returns {(name, frozenset(labels)): value}."""
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, "family announced twice: " + name
            types[name] = kind
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.groups()
        fam = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert fam in types, "no TYPE for " + name
        if types[fam] == "counter":
            assert fam.endswith("_total"), fam
        pairs = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))
        out[(name, pairs)] = float(value)
    return types, out


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_metrics_count_what_happened(s, api, tmp_path):
    tcp, unix, toks, d = api
    st, doc = tcp.call("GET", "/metrics")
    assert st == 401  # a scraper needs a token (Prometheus: authorization.credentials)
    s.fake.ctl.set_config(time_scale=0.01)
    s.fake.ctl.add_faults([{"kind": "rate_limit", "retry_after": 1, "count": 1,
                            "path_prefix": "/v2/post/publish/status/fetch/"}])
    r = s.tikd("post", str(video(tmp_path / "m.mp4")), "--account", "alice", "--privacy",
               "SELF_ONLY", "--wait")
    assert r.returncode == 0 and "published" in r.stdout, r.stdout + r.stderr
    (s.root / "rules" / "broken.lua").write_text("this is not lua\n")
    d.signal(1)  # SIGHUP: a reload that fails
    d.wait_for(r"event=rules\.reload_failed")
    c = http.client.HTTPConnection("127.0.0.1", tcp.port, timeout=10)
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + toks["viewer"]})
    resp = c.getresponse()
    text = resp.read().decode()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith(
        "text/plain; version=0.0.4"), resp.getheader("Content-Type")
    types, m = parse_metrics(text)
    for target in ("creator_info", "video_init", "upload", "status"):
        ok = metric(m, "tikd_http_requests_total", target=target, outcome="ok")
        assert ok and ok >= 1, (target, text)
        count = metric(m, "tikd_http_request_duration_seconds_count", target=target)
        assert count == metric(m, "tikd_http_request_duration_seconds_bucket", target=target,
                               le="+Inf") >= ok
    assert metric(m, "tikd_http_rate_limited_total", target="status") == 1
    assert metric(m, "tikd_upload_bytes_total") == os.path.getsize(tmp_path / "m.mp4")
    assert metric(m, "tikd_posts_total", outcome="published", reason="") == 1
    assert metric(m, "tikd_jobs", state="published") == 1
    assert metric(m, "tikd_jobs", state="scheduled") == 0
    assert metric(m, "tikd_accounts", state="active") == 1
    assert metric(m, "tikd_accounts", state="needs_reauth") == 0
    assert metric(m, "tikd_rule_reloads_total", result="ok") == 1
    assert metric(m, "tikd_rule_reloads_total", result="failed") == 1
    assert metric(m, "tikd_rules_generation") == 1
    assert metric(m, "tikd_store_writable") == 1
    assert metric(m, "tikd_budget_decisions_total", budget="video_init", decision="allowed") >= 1
    assert metric(m, "tikd_api_requests_total", code="401") == 1
    assert types["tikd_http_request_duration_seconds"] == "histogram"
    # the buckets only grow
    b = sorted((float(dict(k[1])["le"].replace("+Inf", "inf")), v) for k, v in m.items()
               if k[0] == "tikd_http_request_duration_seconds_bucket"
               and dict(k[1])["target"] == "upload")
    assert all(x[1] <= y[1] for x, y in zip(b, b[1:])), b
    # no secret in the metrics
    assert "tikd_" + "A" not in text and "act." not in text


class Stream:
    """A Server-Sent Events client on its own thread: events as they come."""

    def __init__(self, port, path, token, headers=None):
        import queue
        import threading
        self.q, self.events = queue.Queue(), []
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        h = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        ev = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if not line:
                    if ev:
                        self.q.put(ev)
                    ev = {}
                elif line.startswith(":"):
                    self.q.put({"comment": line})
                else:
                    k, _, v = line.partition(": ")
                    ev[k] = v
        except Exception:
            pass
        self.q.put(None)

    def wait(self, pred, timeout=20):
        for ev in self.events:  # already here
            if "data" in ev and pred(ev["event"], json.loads(ev["data"])):
                return ev
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                ev = self.q.get(timeout=max(0.05, end - time.monotonic()))
            except Exception:
                continue
            if ev is None:
                raise AssertionError("stream ended; got %r" % self.events)
            self.events.append(ev)
            if "data" in ev and pred(ev["event"], json.loads(ev["data"])):
                return ev
        raise AssertionError("no such event in %ss; got %r" % (timeout, self.events))

    def close(self):
        self.conn.sock.shutdown(socket.SHUT_RDWR)  # the reading thread's recv returns
        self.conn.close()


def test_the_event_stream_follows_jobs_without_polling(s, api, tmp_path):
    tcp, _, toks, d = api
    st = Stream(tcp.port, "/api/v1/events", toks["viewer"])
    assert st.resp.status == 200
    assert st.resp.getheader("Content-Type") == "text/event-stream"
    jid = held_job(s, tmp_path)
    # another process's change (the CLI's approval) comes from the audit log
    r = s.tikd("job", "approve", str(jid))
    assert r.returncode == 0, r.stderr
    ev = st.wait(lambda t, d: t == "audit" and d["event"] == "job.approved")
    assert json.loads(ev["data"])["actor"] == "operator" and "job=%d" % jid in ev["data"]
    # the pipeline's own saves, as it makes them, to the end
    s.fake.ctl.set_config(time_scale=0.01)
    st.wait(lambda t, d: t == "job" and d["id"] == jid and d["state"] == "uploading")
    last = st.wait(lambda t, d: t == "job" and d["id"] == jid and d["state"] == "published")
    # a client that reconnects with Last-Event-ID gets what came after it; a filter holds
    first = next(e for e in st.events if e.get("event") == "job")
    st.close()
    again = Stream(tcp.port, "/api/v1/events?job=%d" % jid, toks["viewer"],
                   {"Last-Event-ID": first["id"]})
    ev = again.wait(lambda t, d: t == "job" and d["state"] == "published")
    assert ev["id"] == last["id"]
    assert all(json.loads(e["data"]).get("id", jid) == jid or e["event"] == "audit"
               for e in again.events if "data" in e)
    again.close()
    # the stream needs a viewer; unauthenticated it is refused like any request
    st, doc = tcp.call("GET", "/api/v1/events")
    assert st == 401
    st, doc = tcp.call("GET", "/api/v1/events?job=x", toks["viewer"])
    assert st == 400
    # a daemon that stops ends its streams and exits cleanly
    st = Stream(tcp.port, "/api/v1/events", toks["viewer"])
    assert d.stop() == 0
    end = time.monotonic() + 10
    while time.monotonic() < end and st.q.get(timeout=10) is not None:
        pass
    assert "event=daemon.stopped" in "\n".join(d.lines)


def test_the_cli_json_is_the_api_json(s, api, tmp_path):
    """`--json` of the read commands prints what the API answers: one view."""
    tcp, _, toks, d = api
    jid = held_job(s, tmp_path)
    v = toks["viewer"]

    def cli(*args):
        r = s.tikd(*args)
        assert r.returncode == 0, (args, r.stderr)
        return json.loads(r.stdout)

    assert cli("queue", "--json") == tcp.call("GET", "/api/v1/jobs", v)[1]["jobs"]
    assert cli("queue", "--all", "--json") == tcp.call("GET", "/api/v1/jobs?all=1", v)[1]["jobs"]
    assert cli("job", "show", str(jid), "--json") == tcp.call("GET", "/api/v1/jobs/%d" % jid, v)[1]
    def no_tz(o):  # the API adds the zone the live rules declare (the CLI has no rules)
        o = dict(o)
        assert o.pop("tz", "UTC") == "UTC"
        return o
    assert cli("account", "list", "--json") == [
        no_tz(a) for a in tcp.call("GET", "/api/v1/accounts", v)[1]["accounts"]]
    assert cli("account", "show", "alice", "--json") == no_tz(
        tcp.call("GET", "/api/v1/accounts/alice", v)[1])
    mine, theirs = cli("limits", "--json"), tcp.call("GET", "/api/v1/limits", v)[1]
    for doc in (mine, theirs):  # "next" is now, to the second, for a budget with room
        for budgets in doc["accounts"].values():
            for b in budgets.values():
                b.pop("next_at", None)
        doc["app_active_users"].pop("next_at", None)
    assert mine == theirs
    assert set(cli("limits", "alice", "--json")["accounts"]) == {"alice"}
    st = cli("status", "--json")
    api_st = tcp.call("GET", "/api/v1/status", v)[1]
    assert st["running"] is True and st["pid"] == api_st["pid"] == d.proc.pid
    assert st["jobs"] == api_st["jobs"] and st["rules"] == api_st["rules"]
    recs = cli("audit", "list", "--json", "--last", "3")
    assert len(recs) == 3
    api_recs = tcp.call("GET", "/api/v1/audit?after=%d&limit=3" % (recs[0]["seq"] - 1), v)[1]
    assert api_recs["records"] == recs
    # a photo post shows its images in the queue
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--at",
               "2030-01-01T10:00:00Z", "--photo", "https://media.example.test/tikd/a.jpg",
               "--photo", "https://media.example.test/tikd/b.jpg")
    assert r.returncode == 0, r.stderr
    queue = s.tikd("queue").stdout
    assert "2 images: a.jpg" in queue and "2030-01-01T10:00:00Z" in queue, queue
    # errors: a name that does not exist, and --json where it means nothing
    r = s.tikd("job", "show", "999", "--json")
    assert r.returncode == 1 and "no job 999" in r.stderr
    r = s.tikd("account", "show", "bob", "--json")
    assert r.returncode == 1 and "no account named bob" in r.stderr
    r = s.tikd("job", "approve", str(jid), "--json")
    assert r.returncode == 2 and "unknown option '--json'" in r.stderr


def test_a_mistyped_command_or_option_gets_a_suggestion(s):
    for args, said in [
        (["qeue"], "unknown command 'qeue' (did you mean 'queue'?)"),
        (["statsu"], "unknown command 'statsu' (did you mean 'status'?)"),
        (["queue", "--stat", "x"], "unknown option '--stat' (did you mean '--state'?)"),
        (["job", "aprove", "3"], "unknown subcommand 'aprove' (did you mean 'approve'?)"),
        (["post", "x.mp4", "--acount", "a"], "unknown option '--acount' (did you mean '--account'?)"),
        (["plan", "--dyas", "3"], "unknown option '--dyas' (did you mean '--days'?)"),
        (["account", "lsit"], "unknown subcommand 'lsit' (did you mean 'list'?)"),
        (["limits", "--jsn"], "unknown option '--jsn' (did you mean '--json'?)"),
        (["admin", "token", "craete", "x"], "unknown subcommand 'craete' (did you mean 'create'?)"),
        (["queue", "--frobnicate"], "unknown option '--frobnicate'\n"),
        (["frobnicate"], "unknown command 'frobnicate'\n"),
    ]:
        r = s.tikd(*args)
        assert r.returncode == 2 and said in r.stderr, (args, r.stderr)


def test_post_wait_on_a_terminal_follows_the_bytes(s, api, tmp_path):
    """`tikd post --wait` with a daemon up follows the event stream: on a
    terminal, the upload's bytes, rate and percentage, even for one chunk."""
    import pty
    s.fake.ctl.set_config(time_scale=0.01)
    s.fake.ctl.add_faults([{"kind": "delay", "path_prefix": "/upload/", "delay_sec": 0.6,
                            "count": None}])
    clip = video(tmp_path / "big.mp4", mdat=6_000_000, duration=5)
    master, slave = pty.openpty()
    p = subprocess.Popen([TIKD, "--config", str(s.cfg), "post", str(clip), "--account", "alice",
                          "--privacy", "SELF_ONLY", "--wait"], stdin=slave, stdout=slave,
                         stderr=slave, env=dict(os.environ, **s.env))
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(timeout=60) == 0, out
    text = out.decode(errors="replace")
    assert re.search(r"\] 100% 6\.\d MB of 6\.\d MB", text), text
    assert re.search(r"job \d+: published", text), text
    assert "level=info" not in text, text  # no engine log lines between the command's own


def test_posting_through_the_api_is_the_planner_of_tikd_post(s, api, tmp_path):
    tcp, _, toks, d = api
    # the api fixture's config has no media_roots: a local file is refused at once
    op = toks["operator"]
    clip = video(tmp_path / "api.mp4", duration=4)
    st, doc = tcp.call("POST", "/api/v1/posts", op, body={"account": "alice", "media": str(clip),
                                                          "privacy": "SELF_ONLY"})
    assert st == 400 and "media_roots" in doc["error"]["message"], doc
    d.stop()
    media = tmp_path / "media"
    media.mkdir()
    clip = video(media / "api.mp4", duration=4)
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    d = s.start()
    tcp = Admin(port=int(re.search(r"port=(\d+)", d.wait_for(
        r"event=admin\.listening addr=127")).group(1)))
    s.fake.ctl.set_config(time_scale=0.01)
    st, doc = tcp.call("POST", "/api/v1/posts", toks["viewer"],
                       body={"account": "alice", "media": str(clip), "privacy": "SELF_ONLY"})
    assert st == 403
    st, doc = tcp.call("POST", "/api/v1/posts", op, body={
        "account": "alice", "media": str(clip), "privacy": "SELF_ONLY", "caption": "by API",
        "options": {"disable_duet": True}})
    assert st == 201 and doc["existing"] is False, doc
    jid = doc["id"]
    st, job = tcp.call("GET", "/api/v1/jobs/%d" % jid, op)
    assert job["chosen_by"] == "token:t-operator" and job["caption"] == "by API"
    assert job["options"]["disable_duet"] is True
    # the same content again: the planner's refusal, as for tikd post
    st, doc = tcp.call("POST", "/api/v1/posts", op, body={"account": "alice", "media": str(clip),
                                                          "privacy": "SELF_ONLY"})
    assert st == 409 and "already has this content" in doc["error"]["message"], doc
    # not a video, a missing privacy, a body without media: refused, nothing planned
    junk = media / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    for body, status, said in [
        ({"account": "alice", "media": str(junk), "privacy": "SELF_ONLY"}, 400, "not a video"),
        ({"account": "alice", "media": str(media / "nope.mp4"), "privacy": "SELF_ONLY"}, 400,
         "media_roots"),
        ({"account": "alice"}, 400, "either media"),
        ({"account": "alice", "media": "http://x.example/v.mp4", "privacy": "SELF_ONLY"}, 400,
         "https"),
        ({"account": "bob", "media": "https://media.example.test/tikd/v.mp4",
          "privacy": "SELF_ONLY"}, 400, "no such account"),
    ]:
        st, doc = tcp.call("POST", "/api/v1/posts", op, body=body)
        assert (st, said in doc["error"]["message"]) == (status, True), (body, st, doc)
    st, doc = tcp.call("POST", "/api/v1/posts", op, body={
        "account": "alice", "photos": ["https://media.example.test/tikd/p1.jpg",
                                       "https://media.example.test/tikd/p2.jpg"],
        "privacy": "SELF_ONLY", "caption": "two", "at": "2030-01-01T10:00:00Z"})
    assert st == 201 and doc["due_at"] == "2030-01-01T10:00:00Z", doc
    st, doc = tcp.call("POST", "/api/v1/posts", op, body={
        "account": "alice", "photos": ["https://media.example.test/tikd/p3.jpg"],
        "privacy": "SELF_ONLY", "at": "tomorrow"})
    assert st == 400 and "at: a time as" in doc["error"]["message"], doc
    jobs = tcp.call("GET", "/api/v1/jobs?all=1", op)[1]["jobs"]
    assert len(jobs) == 2 and jobs[1]["kind"] == "photo" and len(jobs[1]["images"]) == 2
    end = time.monotonic() + 30
    while time.monotonic() < end and job_state(s, jid) != "published":
        time.sleep(0.3)
    assert job_state(s, jid) == "published"
    assert re.search(r"token:t-operator\s+job\.planned\s+job=%d" % jid, audit_events(s))


def test_the_socket_refuses_browsers_and_a_revoked_token_loses_its_stream(s, api, tmp_path):
    tcp, unix, toks, d = api
    # a browser reaching the socket (a forwarded socket and DNS rebinding): no token, no entry
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "same-origin"},
                    {"Host": "evil.example:8788"}, {"Referer": "http://evil.example/"}):
        st, doc = unix.call("POST", "/api/v1/tokens", body={"name": "x", "role": "admin"},
                            headers=headers)
        assert st == 403 and doc["error"]["code"] == "forbidden", (headers, st, doc)
    assert "x" not in s.tikd("admin", "token", "list").stdout.split()
    # a refused request writes nothing, not even a token's last use
    fresh = token(s, "fresh", "viewer")
    st, _ = tcp.call("POST", "/api/v1/jobs/1/cancel", fresh)
    assert st == 403
    rows = {t["name"]: t for t in json.loads(s.tikd("admin", "token", "list", "--json").stdout)}
    assert rows["fresh"]["last_used"] is None
    # a stream ends when its token is revoked
    st = Stream(tcp.port, "/api/v1/events", fresh)
    assert st.resp.status == 200
    r = s.tikd("admin", "token", "revoke", "fresh")
    assert r.returncode == 0
    end = time.monotonic() + 10
    got = []
    while time.monotonic() < end:
        ev = st.q.get(timeout=10)
        if ev is None:
            break
        got.append(ev)
    assert any(e.get("event") == "revoked" for e in got), got
    assert ev is None  # the stream ended
    # too many streams for one token: refused, with why
    many = [Stream(tcp.port, "/api/v1/events", toks["viewer"]) for _ in range(8)]
    st9, doc = tcp.call("GET", "/api/v1/events", toks["viewer"])
    assert st9 == 503 and doc["error"]["code"] == "too_many_streams", doc
    for m in many:
        m.close()
