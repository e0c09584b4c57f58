"""Bearer tokens and scopes on every v2 endpoint (§3.3), and the envelope shape (§0.2)."""

import json

import pytest

from fake_bodies import (CANCEL, CONTENT_INIT, CREATOR_INFO, INBOX_INIT, STATUS, USER_INFO, VIDEO_INIT,
                         direct, error, inbox, photo)

ENDPOINTS = [
    (CREATOR_INFO, None),
    (VIDEO_INIT, direct()),
    (INBOX_INIT, inbox()),
    (CONTENT_INIT, photo()),
    (STATUS, {"publish_id": "v_pub_url~v2-1.1"}),
    (CANCEL, {"publish_id": "v_pub_url~v2-1.1"}),
]


@pytest.mark.parametrize("path,body", ENDPOINTS)
@pytest.mark.parametrize("auth", [None, "Bearer act.unknown", "Basic abc", "Bearer "])
def test_missing_or_unknown_token_is_401_access_token_invalid(fake, path, body, auth):
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    raw = b"" if body is None else json.dumps(body).encode()
    resp = fake.api().http.request("POST", path, raw, headers)
    assert error(resp) == (401, "access_token_invalid")
    assert resp.json()["data"] == {}


def test_expired_token_is_401(fake, api):
    fake.ctl.advance(86401)
    assert error(api.post_json(CREATOR_INFO)) == (401, "access_token_invalid")


def test_clock_skew_expires_tokens(fake, api):
    fake.ctl.skew(90000)
    assert error(api.post_json(CREATOR_INFO)) == (401, "access_token_invalid")
    fake.ctl.skew(0)
    assert api.post_json(CREATOR_INFO).status == 200


@pytest.mark.parametrize("path,body,needs", [
    (CREATOR_INFO, None, "video.publish"),
    (VIDEO_INIT, direct(), "video.publish"),
    (INBOX_INIT, inbox(), "video.upload"),
    (CONTENT_INIT, photo("DIRECT_POST"), "video.publish"),
    (CONTENT_INIT, photo("MEDIA_UPLOAD"), "video.upload"),
])
def test_missing_scope_is_401_scope_not_authorized(fake, path, body, needs):
    others = [s for s in ("user.info.basic", "video.list", "video.upload", "video.publish") if s != needs]
    without = fake.ctl.grant(scopes=others)["access_token"]
    assert error(fake.api(without).post_json(path, body)) == (401, "scope_not_authorized")
    with_it = fake.ctl.grant(scopes=[needs])["access_token"]
    assert fake.api(with_it).post_json(path, body).status == 200


@pytest.mark.parametrize("scope", ["video.upload", "video.publish"])
def test_status_fetch_accepts_either_posting_scope(fake, scope):
    owner = fake.ctl.grant(scopes=["video.upload", "video.publish"])["access_token"]
    publish_id = fake.api(owner).post_json(INBOX_INIT, inbox()).json()["data"]["publish_id"]
    tok = fake.ctl.grant(scopes=[scope])["access_token"]
    assert fake.api(tok).post_json(STATUS, {"publish_id": publish_id}).status == 200
    bare = fake.ctl.grant(scopes=["user.info.basic"])["access_token"]
    assert error(fake.api(bare).post_json(STATUS, {"publish_id": publish_id})) == (401, "scope_not_authorized")


def test_success_envelope_and_log_id_header(api):
    resp = api.post_json(CREATOR_INFO)
    body = resp.json()
    assert set(body) == {"data", "error"}
    assert body["error"]["code"] == "ok" and body["error"]["message"] == ""
    assert body["error"]["log_id"] == resp.headers["x-tt-logid"]
    assert resp.headers["content-length"] == str(len(resp.body))


def test_unknown_paths_and_methods(api):
    assert error(api.post_json("/v2/post/publish/video/init", direct())) == (404, "not_found")  # no slash
    assert error(api.get(VIDEO_INIT)) == (405, "method_not_allowed")
    assert error(api.post_json(USER_INFO + "?fields=open_id")) == (405, "method_not_allowed")
