"""Alerts reach the operator's own endpoint: each is a JSON POST signed with
HMAC-SHA256 (notify.secret), kept in the database until a receiver takes it
(a receiver that fails is retried with backoff; a daemon killed meanwhile
sends it after its restart), deduplicable by X-Tikd-Delivery; the same
alert stays quiet for notify.quiet. The triggers: a failed reload, an
account that needs reconnecting, a full daily cap, repeated failed jobs."""
import hashlib
import hmac
import http.server
import json
import re
import signal
import threading
import time

import pytest

from test_publish import connect, video

SECRET = "notify-secret-for-tests-0123456789"


class Receiver:
    """An HTTP endpoint that records what it gets and answers `codes` in turn
    (then 200)."""

    def __init__(self):
        self.got, self.codes, self.lock = [], [], threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    code = outer.codes.pop(0) if outer.codes else 200
                    outer.got.append({"headers": dict(self.headers), "body": body, "code": code,
                                      "at": time.monotonic()})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, pred, n=1, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                hits = [g for g in self.got if g["code"] == 200 and pred(json.loads(g["body"]))]
            if len(hits) >= n:
                return hits
            time.sleep(0.1)
        raise AssertionError("no such delivery; got %r" % [g["body"] for g in self.got])

    def close(self):
        self.srv.shutdown()


@pytest.fixture
def rx(s):
    r = Receiver()
    s.env["TIKD_NOTIFY_SECRET"] = SECRET
    s.cfg.write_text(s.cfg.read_text() + 'notify = { webhooks = { "http://127.0.0.1:%d/hook" }, '
                     'backoff = 0.3, failures = 2 }\n' % r.port)
    yield r
    r.close()


def verify(delivery):
    sig = dict(p.split("=", 1) for p in delivery["headers"]["X-Tikd-Signature"].split(","))
    mac = hmac.new(SECRET.encode(), sig["t"].encode() + b"." + delivery["body"],
                   hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, sig["v1"]), delivery
    assert abs(time.time() - int(sig["t"])) < 120


def test_a_failed_reload_is_delivered_signed_through_failures_and_a_kill(s, rx):
    rx.codes = [500, 503]  # the first two attempts are refused
    d = s.start()
    (s.root / "rules" / "broken.lua").write_text("x = = 1\n")
    d.signal(signal.SIGHUP)
    hit, = rx.wait(lambda b: b["kind"] == "reload")
    body = json.loads(hit["body"])
    assert body["subject"].startswith("gen=") and "broken.lua:1" in body["detail"], body
    assert hit["headers"]["X-Tikd-Event"] == "reload"
    verify(hit)
    tries = [g for g in rx.got if json.loads(g["body"])["id"] == body["id"]]
    assert [g["code"] for g in tries] == [500, 503, 200], tries
    assert all(g["headers"]["X-Tikd-Delivery"] == str(body["id"]) for g in tries)
    assert tries[2]["at"] - tries[1]["at"] >= 0.5  # backoff doubles: 0.3, then 0.6
    d.wait_for(r"event=notify\.delivered id=%d" % body["id"])

    # a receiver that is down, and a daemon killed meanwhile: sent after the restart
    rx.codes = [500] * 3
    (s.root / "rules" / "broken.lua").write_text("y = = 2\n")
    seen = len(d.lines)
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=notify\.retry ", timeout=20, after=seen)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    (s.root / "rules" / "broken.lua").unlink()  # (a rule that fails at start stops tikd)
    d = s.start()
    hits = rx.wait(lambda b: b["kind"] == "reload" and "broken.lua:1" in b["detail"]
                   and b["id"] != body["id"])
    assert len(hits) == 1
    assert d.stop() == 0


def test_repeated_failures_and_an_account_to_reconnect_are_alerts(s, rx, tmp_path):
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s)
    d = s.start()
    # repeated failures: TikTok fails two publishes (notify.failures = 2)
    s.fake.ctl.add_faults([{"kind": "fail_publish", "stage": "processing", "reason": "frame_rate_check_failed",
                            "path_prefix": "/v2/post/publish/video/init/", "count": 2}])
    for i in range(2):
        r = s.tikd("post", str(video(tmp_path / ("f%d.mp4" % i), mdat=200_000 + i)), "--account",
                   "alice", "--privacy", "SELF_ONLY", "--wait")
        assert "failed" in r.stdout + r.stderr, r.stdout + r.stderr
    hit, = rx.wait(lambda b: b["kind"] == "failures")
    body = json.loads(hit["body"])
    assert body["subject"] == "alice" and "2 failures within" in body["detail"], body
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["at"]), body
    verify(hit)

    # an account TikTok stopped needs reconnecting
    s.fake.ctl.revoke(s.accounts()["alice"]["open_id"])
    r = s.tikd("post", str(video(tmp_path / "r.mp4", mdat=300_000)), "--account", "alice",
               "--privacy", "SELF_ONLY")
    hit, = rx.wait(lambda b: b["kind"] == "account.reauth", timeout=40)
    assert json.loads(hit["body"])["subject"] == "alice"
    time.sleep(1)
    kinds = [json.loads(g["body"])["kind"] for g in rx.got if g["code"] == 200]
    assert kinds.count("account.reauth") == 1 and kinds.count("failures") == 1, kinds
    assert d.stop() == 0
    assert SECRET not in "\n".join(d.lines)


def test_a_full_daily_cap_is_one_alert(s, rx, tmp_path):
    s.fake.ctl.set_config(time_scale=0.01)
    s.limits(window=1, daily=1)
    connect(s)
    d = s.start()
    for i in range(3):
        r = s.tikd("post", str(video(tmp_path / ("c%d.mp4" % i), mdat=100_000 + i)), "--account",
                   "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    hit, = rx.wait(lambda b: b["kind"] == "daily_cap")
    body = json.loads(hit["body"])
    assert body["subject"] == "alice" and "the daily post cap is full until" in body["detail"]
    verify(hit)
    time.sleep(1)  # the third job waits too: quiet (notify.quiet), no second alert
    kinds = [json.loads(g["body"])["kind"] for g in rx.got if g["code"] == 200]
    assert kinds.count("daily_cap") == 1, kinds
    assert d.stop() == 0


def test_an_endpoint_that_keeps_failing_is_an_alert(s, rx, tmp_path):
    # two attempts a request, so two requests fail for good before the circuit
    # breaker (5 failed attempts in a row) holds the rest back
    s.cfg.write_text(s.cfg.read_text() + "http = { max_attempts = 2 }\n")
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s)
    d = s.start()
    s.fake.ctl.add_faults([{"kind": "status", "status": 503, "count": 4,
                            "path_prefix": "/v2/post/publish/creator_info/query/"}])
    for i in range(2):
        r = s.tikd("post", str(video(tmp_path / ("e%d.mp4" % i), mdat=400_000 + i)), "--account",
                   "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    hit, = rx.wait(lambda b: b["kind"] == "failures" and b["subject"].startswith("endpoint:"))
    body = json.loads(hit["body"])
    assert body["subject"] == "endpoint:creator_info", body
    assert "creator_info/query" in body["detail"] and "2 failures within" in body["detail"], body
    assert d.stop() == 0
