"""PUT {upload_url} (§2.4, §2.5 "At PUT"): headers, order, expiry, progress."""

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest

from fake_bodies import STATUS, VIDEO_INIT, data, direct, error, file
from fakectl import wait_until

SIZE, CHUNK = 12 * 1024 * 1024, 5 * 1024 * 1024  # 2 chunks: 5 MiB, then 7 MiB
BODY = bytes(range(256)) * (SIZE // 256)


@pytest.fixture
def upload_url(api):
    return data(api.post_json(VIDEO_INIT, direct(file(SIZE, CHUNK))))["upload_url"]


def chunk(i):
    first = i * CHUNK
    return BODY[first:first + CHUNK] if i == 0 else BODY[first:], first


def put(api, url, i, **kw):
    part, first = chunk(i)
    return api.put_chunk(url, part, first, SIZE, **kw)


def test_in_order_chunks_give_206_then_201(api, upload_url):
    resp = put(api, upload_url, 0)
    assert resp.status == 206 and resp.body == b""
    assert resp.headers["content-range"] == "bytes 0-%d/%d" % (CHUNK, SIZE)  # count of bytes received
    assert put(api, upload_url, 1).status == 201


def test_progress_header_can_use_the_last_index(fake, api, upload_url):
    fake.ctl.set_config(upload_progress_range="last_index")
    assert put(api, upload_url, 0).headers["content-range"] == "bytes 0-%d/%d" % (CHUNK - 1, SIZE)


def test_out_of_order_overlap_and_extra_chunks_are_416(api, upload_url):
    assert error(put(api, upload_url, 1)) == (416, "range_mismatch")  # gap
    assert put(api, upload_url, 0).status == 206
    assert error(put(api, upload_url, 0)) == (416, "range_mismatch")  # overlap: already received
    assert put(api, upload_url, 1).status == 201
    assert error(put(api, upload_url, 1)) == (416, "range_mismatch")  # nothing left to send


def test_a_chunk_of_the_wrong_size_is_416(api, upload_url):
    short = BODY[:CHUNK - 1]
    assert error(api.put_chunk(upload_url, short, 0, SIZE)) == (416, "range_mismatch")
    assert put(api, upload_url, 0).status == 206


@pytest.mark.parametrize("headers,expected", [
    ({"Content-Type": "application/octet-stream"}, 400),
    ({"Content-Type": "image/jpeg"}, 400),
    ({"Content-Range": "bytes 0-%d/%d" % (CHUNK - 1, SIZE + 1)}, 400),  # wrong total
    ({"Content-Range": "bytes 0-%d/%d" % (CHUNK, SIZE)}, 400),  # range longer than the body
    ({"Content-Range": "0-%d/%d" % (CHUNK - 1, SIZE)}, 400),
    ({"Content-Range": "bytes 0-%d/*" % (CHUNK - 1)}, 400),
])
def test_bad_headers_are_400(api, upload_url, headers, expected):
    resp = put(api, upload_url, 0, headers=headers)
    assert resp.status == expected
    assert put(api, upload_url, 0).status == 206  # nothing was counted


@pytest.mark.parametrize("ctype", ["video/mp4", "video/quicktime", "video/webm"])
def test_accepted_content_types(api, upload_url, ctype):
    assert put(api, upload_url, 0, content_type=ctype).status == 206


def test_missing_content_range_or_length_is_400(fake, api, upload_url):
    part, _ = chunk(0)
    resp = api.http.request("PUT", upload_url, part, {"Content-Type": "video/mp4"})
    assert error(resp) == (400, "invalid_params")
    # no Content-Length: a chunked body
    parts = urlsplit(upload_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("PUT", parts.path + "?" + parts.query, body=iter([part[:1000], part[1000:]]),
                     headers={"Content-Type": "video/mp4", "Content-Range": "bytes 0-%d/%d" % (CHUNK - 1, SIZE)},
                     encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 400 and json.loads(resp.read())["error"]["code"] == "invalid_params"
        conn.request("PUT", parts.path + "?" + parts.query, body=part, headers={
            "Content-Type": "video/mp4", "Content-Range": "bytes 0-%d/%d" % (CHUNK - 1, SIZE)})
        assert conn.getresponse().status == 206  # the chunked body was drained: same connection
    finally:
        conn.close()


def test_expired_upload_url_is_403(fake, api, upload_url):
    assert put(api, upload_url, 0).status == 206
    fake.ctl.advance(3600)
    assert error(put(api, upload_url, 1)) == (403, "upload_url_expired")


def test_unknown_upload_is_404(api, upload_url):
    bad_token = upload_url.rsplit("=", 1)[0] + "=wrong"
    assert error(put(api, bad_token, 0)) == (404, "upload_not_found")
    bad_id = upload_url.replace("upload_id=", "upload_id=1")
    assert error(put(api, bad_id, 0)) == (404, "upload_not_found")


def test_a_chunk_cut_short_is_not_counted(fake, api, upload_url):
    parts = urlsplit(upload_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        head = ("PUT %s?%s HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\n"
                "Content-Range: bytes 0-%d/%d\r\n\r\n" % (parts.path, parts.query, CHUNK, CHUNK - 1, SIZE))
        sock.sendall(head.encode())
        sock.sendall(BODY[:1000])
    publish_id = fake.ctl.publishes()[0]["publish_id"]
    def finished_puts():
        return [r for r in fake.ctl.requests("/upload/video/") if r["done"]]

    wait_until(finished_puts, message="the cut PUT to be recorded")
    assert finished_puts()[0]["error_code"] == "client_gone"
    status = data(api.post_json(STATUS, {"publish_id": publish_id}))
    assert status["uploaded_bytes"] == 0
    assert put(api, upload_url, 0).status == 206


def test_keep_alive_survives_a_rejected_chunk(api, upload_url):
    conn_before = api.http._conn
    assert error(put(api, upload_url, 1)) == (416, "range_mismatch")
    assert put(api, upload_url, 0).status == 206
    assert api.http._conn is conn_before
