"""Fault injection (POST /_fake/faults): every kind observably happens, matching rules work."""

import email.utils
import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import pytest

import fakectl
from fake_bodies import CREATOR_INFO, ONE, STATUS, TOKEN, TWO, VIDEO_INIT, data, direct, error, file, pull

MiB = 1024 * 1024
CONNECTION_ERRORS = (ConnectionError, http.client.HTTPException, OSError)


def ledger_entry(fake, path):
    return fakectl.wait_until(lambda: [r for r in fake.ctl.requests(path) if r["done"]], message="ledger")[-1]


def test_status_fault_fires_count_times(fake, api):
    rule = fake.ctl.add_fault(kind="status", path_prefix=CREATOR_INFO, status=503, count=2)
    assert rule["id"] == 1 and rule["fired"] == 0
    assert error(api.post_json(CREATOR_INFO)) == (503, "internal_error")
    assert error(api.post_json(CREATOR_INFO)) == (503, "internal_error")
    assert api.post_json(CREATOR_INFO).status == 200
    assert fake.ctl.faults()[0]["fired"] == 2
    assert [(r["status"], r["fault"]) for r in fake.ctl.requests(CREATOR_INFO)] == [
        (503, "status"), (503, "status"), (200, None)]


def test_status_fault_custom_code_and_body(fake, api):
    fake.ctl.add_fault(kind="status", path_prefix=VIDEO_INIT, status=500, error_code="internal_error", message="boom")
    fake.ctl.add_fault(kind="status", path_prefix=VIDEO_INIT, status=502, body="<html>bad gateway</html>")
    resp = api.post_json(VIDEO_INIT, direct())
    assert error(resp) == (500, "internal_error") and resp.json()["error"]["message"] == "boom"
    resp = api.post_json(VIDEO_INIT, direct())
    assert resp.status == 502 and resp.body == b"<html>bad gateway</html>"
    assert fake.ctl.publishes() == []  # a status fault never reaches the handler


def test_status_fault_after_the_work_is_done(fake, api):
    """phase=after: TikTok did the work, then its answer is an error."""
    fake.ctl.add_fault(kind="status", path_prefix=VIDEO_INIT, status=500, phase="after")
    resp = api.post_json(VIDEO_INIT, direct())
    assert error(resp) == (500, "internal_error")
    assert len(fake.ctl.publishes()) == 1  # the init was handled


def test_status_fault_on_oauth_uses_the_flat_shape(fake):
    fake.ctl.add_fault(kind="status", path_prefix=TOKEN, status=503)
    resp = fake.api().form(TOKEN, {"grant_type": "refresh_token"})
    assert resp.status == 503
    assert resp.json()["error"] == "temporarily_unavailable" and "log_id" in resp.json()


def test_429_with_retry_after_seconds(fake, api):
    fake.ctl.add_fault(kind="rate_limit", path_prefix=VIDEO_INIT, retry_after=3)
    resp = api.post_json(VIDEO_INIT, direct())
    assert error(resp) == (429, "rate_limit_exceeded")
    assert resp.headers["retry-after"] == "3"


def test_429_with_retry_after_http_date(fake, api):
    fake.ctl.skew(1000)  # the date follows the fake clock
    fake.ctl.add_fault(kind="rate_limit", path_prefix=VIDEO_INIT, retry_after=30, retry_after_format="http-date")
    resp = api.post_json(VIDEO_INIT, direct())
    assert resp.status == 429
    when = email.utils.parsedate_to_datetime(resp.headers["retry-after"]).timestamp()
    assert abs(when - (time.time() + 1030)) < 5
    assert resp.headers["retry-after"].endswith("GMT")


def test_reset_in_the_middle_of_a_chunk(fake, api):
    size = 6 * MiB
    url = data(api.post_json(VIDEO_INIT, direct(file(size))))["upload_url"]
    fake.ctl.add_fault(kind="reset", path_prefix="/upload/video/", method="PUT", after_bytes=1_000_000)
    body = b"\x01" * size
    with pytest.raises(CONNECTION_ERRORS):
        fakectl.http_request("PUT", url, body, {"Content-Type": "video/mp4",
                                                "Content-Range": "bytes 0-%d/%d" % (size - 1, size)})
    entry = ledger_entry(fake, "/upload/video/")
    assert entry["status"] is None and entry["fault"] == "reset"
    assert fake.ctl.publishes()[0]["uploaded_bytes"] == 0
    assert api.put_chunk(url, body, 0, size).status == 201  # the retry of the same chunk works


def test_reset_is_a_tcp_rst(fake, token):
    fake.ctl.add_fault(kind="reset", path_prefix=CREATOR_INFO)
    parts = urlsplit(fake.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n"
                      % (CREATOR_INFO, token)).encode())
        with pytest.raises(ConnectionResetError):
            while sock.recv(4096):
                pass


def test_reset_after_processing_loses_only_the_response(fake, api):
    fake.ctl.add_fault(kind="reset", path_prefix=VIDEO_INIT, phase="response")
    with pytest.raises(CONNECTION_ERRORS):
        fakectl.http_request("POST", fake.base_url + VIDEO_INIT, json.dumps(direct()).encode(),
                             {"Authorization": "Bearer " + api.token, "Content-Type": "application/json"})
    assert len(fake.ctl.publishes()) == 1  # the init happened: a lost response, not a lost request
    assert ledger_entry(fake, VIDEO_INIT)["fault"] == "reset"


def test_delay(fake, api):
    fake.ctl.add_fault(kind="delay", path_prefix=CREATOR_INFO, delay_sec=0.3)
    start = time.monotonic()
    assert api.post_json(CREATOR_INFO).status == 200
    assert time.monotonic() - start >= 0.3
    entry = ledger_entry(fake, CREATOR_INFO)
    assert entry["t_done_mono"] - entry["t_mono"] >= 0.3


def test_slow_answer_does_the_work_first(fake, api):
    """The init is done (its publish exists) while the answer still waits."""
    import threading
    fake.ctl.add_fault(kind="slow_answer", path_prefix=VIDEO_INIT, answer_delay_sec=0.5)
    got = []
    t = threading.Thread(target=lambda: got.append(api.post_json(VIDEO_INIT, direct())))
    start = time.monotonic()
    t.start()
    while not fake.ctl.publishes() and time.monotonic() - start < 5:
        time.sleep(0.01)
    assert fake.ctl.publishes() and not got  # done, not yet answered
    t.join()
    assert got[0].status == 200 and time.monotonic() - start >= 0.5
    assert ledger_entry(fake, VIDEO_INIT)["fault"] == "slow_answer"


def raw_post(fake, token, path, timeout=5):
    parts = urlsplit(fake.base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n"
                  % (path, token)).encode())
    return sock


def read_until_closed(sock):
    chunks = []
    while True:
        piece = sock.recv(65536)
        if not piece:
            return b"".join(chunks)
        chunks.append(piece)


def test_stalled_body_then_close(fake, token):
    fake.ctl.add_fault(kind="stall", path_prefix=CREATOR_INFO, partial_bytes=10, stall_sec=0.3)
    with raw_post(fake, token, CREATOR_INFO) as sock:
        start = time.monotonic()
        raw = read_until_closed(sock)
        assert time.monotonic() - start >= 0.3
    head, body = raw.split(b"\r\n\r\n", 1)
    declared = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    assert len(body) == 10 < declared


def test_stalled_body_that_finishes(fake, token):
    fake.ctl.add_fault(kind="stall", path_prefix=CREATOR_INFO, partial_bytes=5, stall_sec=0.5, then="finish")
    with raw_post(fake, token, CREATOR_INFO) as sock:
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 5:
            got += sock.recv(65536)
        assert len(got.split(b"\r\n\r\n", 1)[1]) == 5  # headers and 5 body bytes ...
        sock.settimeout(0.05)
        with pytest.raises(socket.timeout):
            sock.recv(65536)  # ... then nothing during the stall ...
        sock.settimeout(5)
        while not got.endswith(b"}}"):
            got += sock.recv(65536)  # ... then the rest
    assert json.loads(got.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "ok"


@pytest.mark.parametrize("mode", ["truncate", "garbage"])
def test_malformed_json_after_the_work_is_done(fake, api, mode):
    fake.ctl.add_fault(kind="malformed_json", path_prefix=VIDEO_INIT, mode=mode)
    resp = api.post_json(VIDEO_INIT, direct())
    assert resp.status == 200
    with pytest.raises(ValueError):
        resp.json()
    assert len(fake.ctl.publishes()) == 1


def test_token_revocation_fault(fake, api):
    fake.ctl.add_fault(kind="revoke_token", path_prefix=STATUS, reason=4)
    assert api.post_json(CREATOR_INFO).status == 200
    assert error(api.post_json(STATUS, {"publish_id": "x"})) == (401, "access_token_invalid")
    assert error(api.post_json(CREATOR_INFO)) == (401, "access_token_invalid")
    event = fake.ctl.webhooks()["events"][-1]
    assert (event["event"], event["user_openid"], event["content"]) == ("authorization.removed", ONE, {"reason": 4})


@pytest.mark.parametrize("source,stage,reason", [
    (pull(), "download", "video_pull_failed"),
    (pull(), "processing", "internal"),
    (file(1000), "download", "frame_rate_check_failed"),  # no download stage: fails after processing
])
def test_fail_publish_fault(fake_factory, source, stage, reason):
    fake = fake_factory({"time_scale": 0})
    api = fake.api(fake.ctl.grant()["access_token"])
    fake.ctl.add_fault(kind="fail_publish", path_prefix=VIDEO_INIT, reason=reason, stage=stage)
    d = data(api.post_json(VIDEO_INIT, direct(source)))
    if "upload_url" in d:
        assert api.put_chunk(d["upload_url"], b"v" * 1000, 0, 1000).status == 201
    s = data(api.post_json(STATUS, {"publish_id": d["publish_id"]}))
    assert (s["status"], s["fail_reason"]) == ("FAILED", reason)
    assert fake.ctl.webhooks()["events"][-1]["content"]["reason"] == reason
    assert fake.ctl.posts() == []


def test_matching_by_method_open_id_and_skip(fake):
    one = fake.api(fake.ctl.grant(ONE)["access_token"])
    two = fake.api(fake.ctl.grant(TWO)["access_token"])
    fake.ctl.add_fault(kind="status", path_prefix="/v2/post/", method="GET", status=500, count=None)
    fake.ctl.add_fault(kind="status", path_prefix="/v2/post/", open_id=TWO, status=500, count=None, skip=1)
    assert one.post_json(CREATOR_INFO).status == 200  # POST: the GET rule does not match
    assert one.post_json(CREATOR_INFO).status == 200  # ONE: the TWO rule does not match
    assert two.post_json(CREATOR_INFO).status == 200  # skipped once
    assert [two.post_json(CREATOR_INFO).status for _ in range(3)] == [500, 500, 500]  # count null: forever


def test_probability(fake_factory):
    fake = fake_factory({"seed": 7})
    api = fake.api(fake.ctl.grant()["access_token"])
    fake.ctl.add_fault(kind="status", path_prefix=CREATOR_INFO, status=500, count=None, probability=0.0)
    assert {api.post_json(CREATOR_INFO).status for _ in range(10)} == {200}
    fake.ctl.clear_faults()
    fake.ctl.add_fault(kind="status", path_prefix=CREATOR_INFO, status=500, count=None, probability=0.5)
    codes = [api.post_json(CREATOR_INFO).status for _ in range(19)]
    assert codes.count(500) > 0 and codes.count(200) > 0


def test_delete_and_clear(fake, api):
    a = fake.ctl.add_fault(kind="status", path_prefix=CREATOR_INFO, status=500, count=None)
    fake.ctl.add_fault(kind="status", path_prefix=VIDEO_INIT, status=500, count=None)
    fake.ctl.delete_fault(a["id"])
    assert api.post_json(CREATOR_INFO).status == 200
    assert api.post_json(VIDEO_INIT, direct()).status == 500
    fake.ctl.clear_faults()
    assert fake.ctl.faults() == []
    assert api.post_json(VIDEO_INIT, direct()).status == 200


@pytest.mark.parametrize("rule", [
    {"kind": "explode"},
    {"kind": "status", "stauts": 500},
    {"kind": "delay"},
    {"kind": "slow_answer", "answer_delay_sec": "soon"},
    {"kind": "status", "path_prefix": "v2/"},
    {"kind": "rate_limit", "retry_after_format": "minutes"},
    {"kind": "status", "probability": 2},
])
def test_bad_rules_are_refused(fake, rule):
    with pytest.raises(fakectl.ControlError):
        fake.ctl.add_fault(**rule)


def test_several_rules_in_one_call(fake, api):
    rules = fake.ctl.add_faults([{"kind": "status", "path_prefix": CREATOR_INFO, "status": 500},
                                 {"kind": "delay", "path_prefix": CREATOR_INFO, "delay_sec": 0.01}])
    assert [r["id"] for r in rules] == [1, 2]
    assert [api.post_json(CREATOR_INFO).status for _ in range(2)] == [500, 200]
    assert [r["fault"] for r in fake.ctl.requests(CREATOR_INFO)] == ["status", "delay"]
