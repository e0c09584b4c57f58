"""Login Kit v2 (§1): authorize page, code exchange with PKCE hex, refresh rotation, revoke."""

import base64
import hashlib
import json
from urllib.parse import urlsplit

import pytest

import fakectl
from fake_bodies import ONE, REVOKE, TOKEN, TWO, USER_INFO, error

REDIRECT = "https://tikd.example.test/oauth/callback"
TOKEN_FIELDS = {"access_token", "expires_in", "open_id", "refresh_expires_in", "refresh_token", "scope", "token_type"}


def exchange(fake, auth_code, verifier=None, redirect_uri=REDIRECT, **override):
    fields = {"client_key": "fake_client_key", "client_secret": "fake_client_secret", "code": auth_code,
              "grant_type": "authorization_code", "redirect_uri": redirect_uri}
    if verifier is not None:
        fields["code_verifier"] = verifier
    fields.update(override)
    return fake.api().form(TOKEN, {k: v for k, v in fields.items() if v is not None})


def refresh(fake, refresh_token, **override):
    fields = dict({"client_key": "fake_client_key", "client_secret": "fake_client_secret",
                   "grant_type": "refresh_token", "refresh_token": refresh_token}, **override)
    return fake.api().form(TOKEN, fields)


def oauth_error(resp):
    body = resp.json()
    assert set(body) == {"error", "error_description", "log_id"}, body
    return resp.status, body["error"]


def user_info_status(fake, access_token):
    return fake.api(access_token).get(USER_INFO + "?fields=open_id").status


# --- authorize page ---

def test_authorize_redirects_back_with_code_scopes_and_state(fake):
    resp, query = fakectl.authorize(fake.base_url, scopes=("user.info.basic", "video.publish"), state="s-42")
    assert resp.status == 302
    location = resp.headers["location"]
    assert location.startswith(REDIRECT + "?")
    assert query["scopes"] == "user.info.basic,video.publish"
    assert query["state"] == "s-42"
    # codes carry characters that must be URL-decoded before the exchange (§1.2)
    assert "%2A" in location or "%21" in location
    assert "*" in query["code"] and "!" in query["code"]


@pytest.mark.parametrize("params,status,error_name", [
    ({"client_key": None}, 400, "invalid_request"),
    ({"client_key": "someone_else"}, 400, "invalid_client"),
    ({"redirect_uri": "https://evil.example.test/cb"}, 400, "invalid_request"),
    ({"redirect_uri": REDIRECT + "?x=1"}, 400, "invalid_request"),
])
def test_authorize_without_a_safe_redirect_answers_an_error_page(fake, params, status, error_name):
    client_key = params.get("client_key", "fake_client_key")
    redirect = params.get("redirect_uri", REDIRECT)
    resp, _ = fakectl.authorize(fake.base_url, client_key=client_key, redirect_uri=redirect)
    assert resp.status == status
    assert resp.json()["error"] == error_name
    assert "location" not in resp.headers


@pytest.mark.parametrize("extra,error_name", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "user.info.basic video.publish"}, "invalid_scope"),  # spaces, not commas
    ({"scope": "video.delete"}, "invalid_scope"),
    ({"code_challenge": "abc", "code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": "S256"}, "invalid_request"),
    ({"state": None}, "invalid_request"),
])
def test_authorize_errors_go_back_to_the_redirect_uri(fake, extra, error_name):
    resp, query = fakectl.authorize(fake.base_url, extra=extra)
    assert resp.status == 302
    assert query["error"] == error_name
    assert "code" not in query


def test_authorize_rejects_a_scope_the_app_was_not_approved_for(fake):
    fake.ctl.set_config(app_scopes=["user.info.basic", "video.upload"])
    _, query = fakectl.authorize(fake.base_url, scopes=("user.info.basic", "video.publish"))
    assert query["error"] == "invalid_scope"


def test_authorize_wildcard_port_redirect_uri(fake):
    resp, query = fakectl.authorize(fake.base_url, redirect_uri="http://127.0.0.1:53187/oauth/callback")
    assert resp.status == 302 and "code" in query
    resp, _ = fakectl.authorize(fake.base_url, redirect_uri="http://127.0.0.1:53187/other")
    assert resp.status == 400


def test_fake_user_picks_the_creator_by_open_id_or_username(fake):
    for who in (TWO, "acct_two"):
        _, query = fakectl.authorize(fake.base_url, extra={"fake_user": who})
        assert exchange(fake, query["code"]).json()["open_id"] == TWO
    _, query = fakectl.authorize(fake.base_url)
    assert exchange(fake, query["code"]).json()["open_id"] == ONE  # default creator
    resp, _ = fakectl.authorize(fake.base_url, extra={"fake_user": "nobody"})
    assert resp.status == 400


def test_user_can_deny(fake):
    fake.ctl.set_config(authorize_deny=True)
    _, query = fakectl.authorize(fake.base_url, state="st")
    assert query["error"] == "access_denied" and query["state"] == "st"
    fake.ctl.set_config(authorize_deny=False)
    _, query = fakectl.authorize(fake.base_url, extra={"fake_deny": "1"})
    assert query["error"] == "access_denied"


def test_user_can_grant_only_some_scopes(fake):
    fake.ctl.set_config(authorize_grant_scopes=["user.info.basic", "video.upload"])
    _, query = fakectl.authorize(fake.base_url, scopes=("user.info.basic", "video.publish", "video.upload"))
    assert query["scopes"] == "user.info.basic,video.upload"
    body = exchange(fake, query["code"]).json()
    assert body["scope"] == "user.info.basic,video.upload"
    _, query = fakectl.authorize(fake.base_url, extra={"fake_scopes": "user.info.basic"})
    assert query["scopes"] == "user.info.basic"


# --- code exchange ---

def test_code_exchange_returns_the_flat_token_body(fake):
    _, query = fakectl.authorize(fake.base_url)
    resp = exchange(fake, query["code"])
    assert resp.status == 200
    body = resp.json()
    assert set(body) == TOKEN_FIELDS  # flat: no data/error wrapper (§0.2)
    assert body["access_token"].startswith("act.") and body["refresh_token"].startswith("rft.")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400 and body["refresh_expires_in"] == 31536000
    assert body["open_id"] == ONE
    assert body["scope"] == "user.info.basic,video.publish,video.upload"
    assert resp.headers["x-tt-logid"]
    assert user_info_status(fake, body["access_token"]) == 200


def test_codes_are_single_use(fake):
    _, query = fakectl.authorize(fake.base_url)
    assert exchange(fake, query["code"]).status == 200
    assert oauth_error(exchange(fake, query["code"])) == (400, "invalid_grant")


def test_codes_expire_after_their_ttl(fake):
    fake.ctl.set_config(auth_code_ttl_sec=60)
    _, query = fakectl.authorize(fake.base_url)
    fake.ctl.advance(61)
    assert oauth_error(exchange(fake, query["code"])) == (400, "invalid_grant")
    _, query = fakectl.authorize(fake.base_url)
    fake.ctl.advance(59)
    assert exchange(fake, query["code"]).status == 200


def test_redirect_uri_must_equal_the_authorize_one(fake):
    _, query = fakectl.authorize(fake.base_url)
    other = "http://127.0.0.1:8080/oauth/callback"  # registered, but not the one used
    assert oauth_error(exchange(fake, query["code"], redirect_uri=other)) == (400, "invalid_grant")
    _, query = fakectl.authorize(fake.base_url)
    assert oauth_error(exchange(fake, query["code"], redirect_uri=None)) == (400, "invalid_request")


def test_pkce_uses_the_lowercase_hex_challenge(fake):
    verifier, challenge = fakectl.pkce_pair()
    assert challenge == hashlib.sha256(verifier.encode()).hexdigest()
    _, query = fakectl.authorize(fake.base_url, code_challenge=challenge)
    assert exchange(fake, query["code"], verifier).status == 200


def test_pkce_rfc7636_base64url_challenge_is_rejected(fake):
    verifier, _ = fakectl.pkce_pair()
    b64 = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    _, query = fakectl.authorize(fake.base_url, code_challenge=b64)
    resp = exchange(fake, query["code"], verifier)
    assert oauth_error(resp) == (400, "invalid_request")
    assert resp.json()["error_description"] == "Code verifier or code challenge is invalid."


@pytest.mark.parametrize("verifier", [None, "wrong" * 10, "short"])
def test_pkce_missing_or_wrong_verifier_is_rejected(fake, verifier):
    _, challenge = fakectl.pkce_pair()
    _, query = fakectl.authorize(fake.base_url, code_challenge=challenge)
    assert oauth_error(exchange(fake, query["code"], verifier)) == (400, "invalid_request")


def test_uppercase_hex_challenge_does_not_match(fake):
    verifier, challenge = fakectl.pkce_pair()
    _, query = fakectl.authorize(fake.base_url, code_challenge=challenge.upper())
    assert oauth_error(exchange(fake, query["code"], verifier)) == (400, "invalid_request")


def test_require_pkce_option(fake):
    fake.ctl.set_config(require_pkce=True)
    _, query = fakectl.authorize(fake.base_url)
    assert query["error"] == "invalid_request"
    assert fakectl.obtain_tokens(fake.base_url, pkce=True)["access_token"]


def test_token_endpoint_takes_form_encoding_only(fake):
    _, query = fakectl.authorize(fake.base_url)
    fields = {"client_key": "fake_client_key", "client_secret": "fake_client_secret", "code": query["code"],
              "grant_type": "authorization_code", "redirect_uri": REDIRECT}
    resp = fake.api().post_json(TOKEN, fields)
    assert oauth_error(resp) == (400, "invalid_request")
    assert resp.json()["error_description"] == "The request parameters are malformed."
    # the code was not spent by the malformed request
    assert exchange(fake, query["code"]).status == 200


@pytest.mark.parametrize("override,expected", [
    ({"client_secret": None}, "invalid_request"),
    ({"client_secret": "nope"}, "invalid_client"),
    ({"client_key": "nope"}, "invalid_client"),
    ({"client_key": None}, "invalid_request"),
    ({"grant_type": "password"}, "unsupported_grant_type"),
    ({"grant_type": None}, "invalid_request"),
    ({"code": "not-a-code"}, "invalid_grant"),
])
def test_token_endpoint_errors(fake, override, expected):
    _, query = fakectl.authorize(fake.base_url)
    resp = exchange(fake, query["code"], **override)
    assert oauth_error(resp) == (400, expected)
    if override == {"client_secret": None}:
        assert resp.json()["error_description"] == "Client secret is missed in request."


def test_oauth_error_status_can_be_200(fake):
    fake.ctl.set_config(oauth_error_status=200)
    assert oauth_error(refresh(fake, "rft.unknown")) == (200, "invalid_grant")


# --- refresh ---

def test_refresh_rotates_strictly_by_default(fake):
    first = fakectl.obtain_tokens(fake.base_url)
    resp = refresh(fake, first["refresh_token"])
    assert resp.status == 200
    second = resp.json()
    assert set(second) == TOKEN_FIELDS
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert oauth_error(refresh(fake, first["refresh_token"])) == (400, "invalid_grant")
    assert refresh(fake, second["refresh_token"]).status == 200


def test_refresh_without_rotation_returns_the_same_refresh_token(fake):
    fake.ctl.set_config(refresh_token_rotation=False)
    first = fakectl.obtain_tokens(fake.base_url)
    second = refresh(fake, first["refresh_token"]).json()
    assert second["refresh_token"] == first["refresh_token"]
    assert refresh(fake, first["refresh_token"]).status == 200


def test_a_rotated_refresh_token_works_within_the_reuse_grace(fake):
    """The lenient reading of §1.6: a client whose answer was lost may send the
    old refresh token again for a while; that retires the newest one too."""
    fake.ctl.set_config(refresh_reuse_grace_sec=30)
    first = fakectl.obtain_tokens(fake.base_url)
    second = refresh(fake, first["refresh_token"]).json()  # its answer "lost"
    third = refresh(fake, first["refresh_token"])
    assert third.status == 200
    third = third.json()
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])
    assert refresh(fake, third["refresh_token"]).status == 200
    fake.ctl.advance(31)
    assert oauth_error(refresh(fake, first["refresh_token"])) == (400, "invalid_grant")
    assert oauth_error(refresh(fake, second["refresh_token"])) == (400, "invalid_grant")


@pytest.mark.parametrize("access_ttl,refresh_ttl", [(86400, 31536000), (7200, 15552000), (30, 120)])
def test_lifetimes_are_configurable_and_enforced(fake, access_ttl, refresh_ttl):
    fake.ctl.set_config(access_token_ttl_sec=access_ttl, refresh_token_ttl_sec=refresh_ttl)
    tokens = fakectl.obtain_tokens(fake.base_url)
    assert (tokens["expires_in"], tokens["refresh_expires_in"]) == (access_ttl, refresh_ttl)
    fake.ctl.advance(access_ttl - 2)
    assert user_info_status(fake, tokens["access_token"]) == 200
    fake.ctl.advance(3)
    resp = fake.api(tokens["access_token"]).get(USER_INFO + "?fields=open_id")
    assert error(resp) == (401, "access_token_invalid")
    renewed = refresh(fake, tokens["refresh_token"]).json()
    assert user_info_status(fake, renewed["access_token"]) == 200
    # a rotated refresh token keeps the grant's deadline: the remaining lifetime is reported
    assert renewed["refresh_expires_in"] == refresh_ttl - access_ttl - 1
    fake.ctl.advance(refresh_ttl)
    assert oauth_error(refresh(fake, renewed["refresh_token"])) == (400, "invalid_grant")


def test_refresh_can_extend_the_refresh_deadline(fake):
    fake.ctl.set_config(refresh_extends_refresh_expiry=True, refresh_token_ttl_sec=1000)
    tokens = fakectl.obtain_tokens(fake.base_url)
    fake.ctl.advance(500)
    assert refresh(fake, tokens["refresh_token"]).json()["refresh_expires_in"] == 1000


def test_refresh_can_revoke_the_previous_access_token(fake):
    fake.ctl.set_config(refresh_revokes_old_access_token=True)
    tokens = fakectl.obtain_tokens(fake.base_url)
    refresh(fake, tokens["refresh_token"])
    assert user_info_status(fake, tokens["access_token"]) == 401


def test_old_access_token_survives_a_refresh_by_default(fake):
    tokens = fakectl.obtain_tokens(fake.base_url)
    refresh(fake, tokens["refresh_token"])
    assert user_info_status(fake, tokens["access_token"]) == 200


# --- revoke ---

def revoke(fake, token, **override):
    fields = dict({"client_key": "fake_client_key", "client_secret": "fake_client_secret", "token": token}, **override)
    return fake.api().form(REVOKE, fields)


def test_revoke_kills_access_and_refresh_token_and_queues_the_webhook(fake):
    tokens = fakectl.obtain_tokens(fake.base_url)
    resp = revoke(fake, tokens["access_token"])
    assert resp.status == 200 and resp.json() == {}
    assert user_info_status(fake, tokens["access_token"]) == 401
    assert oauth_error(refresh(fake, tokens["refresh_token"])) == (400, "invalid_grant")
    events = fake.ctl.webhooks()["events"]
    assert [(e["event"], e["user_openid"], e["content"]) for e in events] == [
        ("authorization.removed", ONE, {"reason": 5})]
    assert json.loads(json.loads(events[0]["body"])["content"]) == {"reason": 5}
    # revoking again is harmless and queues nothing new
    assert revoke(fake, tokens["access_token"]).status == 200
    assert len(fake.ctl.webhooks()["events"]) == 1


def test_revoke_checks_client_and_token(fake):
    tokens = fakectl.obtain_tokens(fake.base_url)
    assert oauth_error(revoke(fake, tokens["access_token"], client_secret="bad")) == (400, "invalid_client")
    assert oauth_error(revoke(fake, "act.unknown")) == (400, "invalid_request")
    assert user_info_status(fake, tokens["access_token"]) == 200


def test_control_revoke_removes_every_grant_of_the_user(fake):
    a = fakectl.obtain_tokens(fake.base_url)
    b = fakectl.obtain_tokens(fake.base_url)
    other = fakectl.obtain_tokens(fake.base_url, open_id=TWO)
    assert fake.ctl.revoke(ONE, reason=1) == {"revoked_grants": 2}
    assert user_info_status(fake, a["access_token"]) == 401
    assert user_info_status(fake, b["access_token"]) == 401
    assert user_info_status(fake, other["access_token"]) == 200
    assert fake.ctl.webhooks()["events"][-1]["content"] == {"reason": 1}


def test_tokens_endpoint_lists_every_issued_token(fake):
    first = fakectl.obtain_tokens(fake.base_url)
    second = refresh(fake, first["refresh_token"]).json()
    listed = fake.ctl.tokens()
    for value in (first["access_token"], second["access_token"]):
        assert value in listed["access_tokens"] and value in listed["all"]
    for value in (first["refresh_token"], second["refresh_token"]):
        assert value in listed["refresh_tokens"] and value in listed["all"]
    assert len(listed["codes"]) == 1


def test_issued_tokens_need_form_encoding(fake):
    tokens = fakectl.obtain_tokens(fake.base_url)
    assert "!" in tokens["refresh_token"]
    host = urlsplit(fake.base_url)
    assert host.hostname == "127.0.0.1"
