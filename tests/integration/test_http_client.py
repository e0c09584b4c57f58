"""core/http against the fake TikTok, through tests/tools/httpdrive: many
requests on one loop, stalls, resets mid-upload, Retry-After in both forms,
bounded retries, the circuit breaker, constant memory for streamed bodies,
and TLS verification."""
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fake"))
import fakectl  # noqa: E402

TOOLS = os.environ.get("TIKD_TOOLS", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build",
    "tests"))
VIDEO_INIT = "/v2/post/publish/video/init/"


def drive(url, *args, timeout=60, stderr=None):
    r = subprocess.run([os.path.join(TOOLS, "httpdrive")] + list(args) + [url],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    if stderr is not None:
        stderr.append(r.stderr)
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    return lines[:-1], lines[-1]["peak_rss_kb"]


@pytest.fixture
def fake():
    f = fakectl.InProcessFake()
    f.start()
    yield f
    f.stop()


def arrivals(fake, prefix):
    return [r for r in fake.ctl.ledger()["requests"] if r["path"].startswith(prefix)]


def upload_url(fake, token, size):
    body = {"post_info": {"privacy_level": "SELF_ONLY", "title": "t",
                          "brand_content_toggle": False, "brand_organic_toggle": False},
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": size,
                            "total_chunk_count": 1}}
    r = fake.api(token).post_json(VIDEO_INIT, body)
    assert r.status == 200, r.body
    return r.json()["data"]["upload_url"]


def put_args(path, size):
    return ["--method", "PUT", "--body-file", str(path), "--range", "0:%d" % size,
            "--header", "Content-Type: video/mp4",
            "--header", "Content-Range: bytes 0-%d/%d" % (size - 1, size)]


def test_200_concurrent_requests_on_one_loop(fake):
    token = fake.ctl.grant()["access_token"]
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id,display_name",
                       "--count", "200", "--tiktok", "--bearer", token)
    assert len(results) == 200
    assert all(r["status"] == 200 and r["action"] == "ok" for r in results), results[:3]
    assert all(r["attempts"] == 1 for r in results)
    assert len(arrivals(fake, "/v2/user/info/")) == 200


def test_stalled_body_hits_the_low_speed_timeout(fake):
    fake.ctl.add_fault(kind="stall", path_prefix="/v2/user/info/", stall_sec=20,
                       partial_bytes=10, count=None)
    token = fake.ctl.grant()["access_token"]
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id", "--tiktok",
                       "--bearer", token, "--low-speed", "1000:1", "--attempts", "1")
    (r,) = results
    # curl_28 is the low-speed limit firing: a 20 s stall that ran its course
    # would have ended with the fault's partial body instead
    assert r["code"] == "curl_28" and r["action"] == "retry" and r["attempts"] == 1, r


def test_reset_mid_upload_is_retried_from_a_clean_state(fake, tmp_path):
    size = 1_000_000
    data = os.urandom(size)
    f = tmp_path / "clip.mp4"
    f.write_bytes(data)
    token = fake.ctl.grant()["access_token"]
    url = upload_url(fake, token, size)
    fake.ctl.add_fault(kind="reset", path_prefix="/upload/", after_bytes=300_000, count=1)
    results, _ = drive(url, *put_args(f, size), "--backoff", "0.05:0.2")
    (r,) = results
    assert r["status"] == 201 and r["attempts"] == 2, r
    puts = arrivals(fake, "/upload/")
    assert len(puts) == 2
    (pub,) = fake.ctl.publishes()
    assert pub["uploaded_bytes"] == size


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(fake, form):
    token = fake.ctl.grant()["access_token"]
    fake.ctl.add_fault(kind="rate_limit", path_prefix="/v2/user/info/", retry_after=2,
                       retry_after_format=form, count=1)
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id", "--tiktok",
                       "--bearer", token, "--backoff", "0.01:0.05")
    (r,) = results
    assert r["status"] == 200 and r["attempts"] == 2, r
    first, second = arrivals(fake, "/v2/user/info/")
    gap = second["t_mono"] - first["t_mono"]
    # an HTTP-date has whole seconds: the earliest allowed moment is at most 1 s sooner
    assert gap >= (2.0 if form == "seconds" else 1.0), gap


def test_three_retries_at_most(fake):
    fake.ctl.add_fault(kind="status", path_prefix="/v2/user/info/", status=503, count=None)
    token = fake.ctl.grant()["access_token"]
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id", "--tiktok",
                       "--bearer", token, "--attempts", "4", "--backoff", "0.01:0.05",
                       "--breaker", "100:1")
    (r,) = results
    assert r["status"] == 503 and r["action"] == "retry" and r["attempts"] == 4
    assert len(arrivals(fake, "/v2/user/info/")) == 4


def test_breaker_opens_then_closes_after_a_healthy_probe(fake):
    fake.ctl.add_fault(kind="status", path_prefix="/v2/user/info/", status=503, count=3)
    token = fake.ctl.grant()["access_token"]
    log = []
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id", "--tiktok",
                       "--bearer", token, "--attempts", "1", "--breaker", "3:1",
                       "--count", "6", "--sequential", "--debug", stderr=log)
    assert [r["status"] for r in results] == [503, 503, 503, 200, 200, 200]
    reqs = arrivals(fake, "/v2/user/info/")
    assert len(reqs) == 6  # nothing sent while open
    assert reqs[3]["t_mono"] - reqs[2]["t_mono"] >= 0.95  # the probe waited for the open period
    # closed again by the healthy probe: the last two went without another wait
    events = re.findall(r"event=(http\.breaker_\w+)", log[0])
    assert events == ["http.breaker_open", "http.breaker_half_open", "http.breaker_closed"], \
        events


def test_streamed_body_keeps_memory_flat(fake, tmp_path):
    token = fake.ctl.grant()["access_token"]
    rss = {}
    for size in (100_000, 20_000_000):
        f = tmp_path / ("v%d.mp4" % size)
        with open(f, "wb") as out:
            out.write(os.urandom(1 << 20) * (size // (1 << 20)) + os.urandom(size % (1 << 20)))
        results, rss[size] = drive(upload_url(fake, token, size), *put_args(f, size))
        assert results[0]["status"] == 201, results
    grew_kb = rss[20_000_000] - rss[100_000]
    assert grew_kb < 4096, rss  # a 20 MB body costs well under 4 MiB


def make_ca(tmp):
    def ossl(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tikd test CA",
         "-keyout", str(tmp / "ca.key"), "-out", str(tmp / "ca.pem"))
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(tmp / "srv.key"), "-out", str(tmp / "srv.csr"))
    (tmp / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", str(tmp / "srv.csr"), "-CA", str(tmp / "ca.pem"),
         "-CAkey", str(tmp / "ca.key"), "-CAcreateserial", "-days", "2",
         "-extfile", str(tmp / "ext.cnf"), "-out", str(tmp / "srv.pem"))
    return tmp / "ca.pem", tmp / "srv.pem", tmp / "srv.key"


def test_tls_with_an_unknown_ca_is_refused(tmp_path):
    ca, cert, key = make_ca(tmp_path)
    f = fakectl.InProcessFake(tls_cert=str(cert), tls_key=str(key), ca_file=str(ca))
    f.start()
    try:
        assert f.base_url.startswith("https://")
        url = f.base_url + "/_fake/health"
        results, _ = drive(url, "--attempts", "3")
        (r,) = results
        assert r["action"] == "fail" and r["code"] == "curl_60", r
        assert r["attempts"] == 1  # an untrusted certificate is not retried
        assert "http.ca_file" in r["message"]
        results, _ = drive(url, "--ca", str(ca))
        assert results[0]["status"] == 200
    finally:
        f.stop()


def test_debug_logs_never_show_the_token(fake):
    grant = fake.ctl.grant()
    token = grant["access_token"]
    fake.ctl.add_fault(kind="status", path_prefix="/v2/user/info/", status=500, count=1)
    err = []
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id", "--tiktok", "--debug",
                       "--bearer", token, "--backoff", "0.01:0.05",
                       "--body", "refresh_token=" + grant["refresh_token"], stderr=err)
    assert results[0]["status"] == 200 and results[0]["attempts"] == 2
    log = err[0]
    assert "event=http.attempt" in log and "event=http.outcome" in log
    assert token not in log and grant["refresh_token"] not in log
    assert "Bearer" not in log


def test_response_bodies_are_capped(fake):
    token = fake.ctl.grant()["access_token"]
    results, _ = drive(fake.base_url + "/v2/user/info/?fields=open_id,display_name", "--tiktok",
                       "--bearer", token, "--max-response", "40")
    (r,) = results
    assert r["action"] == "fail" and r["attempts"] == 1, r
    assert "larger than the 40-byte limit" in r["message"]


def test_a_request_sent_once_is_never_resent_on_a_kept_connection(fake):
    """An init takes a kept connection. When that connection dies after the
    server has read the init whole and acted on it, libcurl would resend it
    on a new connection unasked, and TikTok would see a second init; tikd
    refuses the resend, and the init ends as one that may have been sent."""
    token = fake.ctl.grant()["access_token"]
    body = json.dumps({"post_info": {"privacy_level": "SELF_ONLY", "title": "t",
                                     "brand_content_toggle": False,
                                     "brand_organic_toggle": False},
                       "source_info": {"source": "FILE_UPLOAD", "video_size": 1000,
                                       "chunk_size": 1000, "total_chunk_count": 1}})
    # the second init is handled, then its connection is reset before the answer
    fake.ctl.add_fault(kind="reset", phase="response", path_prefix=VIDEO_INIT, skip=1, count=1)
    results, _ = drive(fake.base_url + VIDEO_INIT, "--method", "POST", "--body", body,
                       "--header", "Content-Type: application/json; charset=UTF-8",
                       "--bearer", token, "--tiktok", "--not-sent-only", "--attempts", "3",
                       "--count", "3", "--sequential")
    first, lost, third = results
    assert first["status"] == 200 and third["status"] == 200, results
    # (a fresh connection's reset says curl's own words: this one was kept)
    assert lost["status"] == 0 and lost["attempts"] == 1, lost
    assert "it may have reached the server, so it was not sent again" in lost["message"], lost
    assert lost["action"] == "retry" and lost["code"] == "curl_56", lost
    assert len(arrivals(fake, VIDEO_INIT)) == 3
    assert len(fake.ctl.publishes()) == 3


def test_a_request_whose_resend_cannot_connect_is_not_sent_again():
    """The server reads the second request whole, then goes away: its
    connection and its listening socket close. libcurl's resend then fails
    to connect, which alone would read as "never sent"; it was sent."""
    import socket
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    seen = []

    def serve():
        c, _ = ls.accept()
        buf = b""
        while len(seen) < 2:
            while b"\r\n\r\n" not in buf:
                buf += c.recv(65536)
            head, _, rest = buf.partition(b"\r\n\r\n")
            n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(rest) < n:
                rest += c.recv(65536)
            seen.append(rest[:n])
            buf = rest[n:]
            if len(seen) == 1:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        ls.close()
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    url = "http://127.0.0.1:%d/v2/post/publish/video/init/" % ls.getsockname()[1]
    results, _ = drive(url, "--method", "POST", "--body", '{"init": 1}', "--not-sent-only",
                       "--attempts", "3", "--backoff", "0.05:0.1", "--count", "2",
                       "--sequential")
    t.join(5)
    first, lost = results
    assert first["status"] == 200, first
    assert lost["status"] == 0 and lost["attempts"] == 1, lost
    assert "not sent again" in lost["message"], lost
    assert len(seen) == 2
