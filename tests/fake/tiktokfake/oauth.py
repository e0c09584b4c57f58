"""Login Kit v2 (§1): the authorize page, the token endpoint and revoke; bearer-token checks.

The authorize page simulates a user who approves at once (or denies, per config). Codes are
single-use and short-lived; PKCE uses TikTok's hex quirk: code_challenge = hex(sha256(verifier))
(§1.3). Refresh rotates strictly by default (§1.6). Revoke kills every token of the user's grant
and queues `authorization.removed` with reason 5 (§1.8).
"""

import hashlib
import hmac
import re
from urllib.parse import urlencode

from .config import SCOPES
from .core import AccessToken, AuthCode, Grant, RefreshToken
from .wire import ApiError, OAuthError, Response, json_response, media_type

VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
FORM_TYPE = "application/x-www-form-urlencoded"


# --- authorize page (§1.1, §1.2) ---

def _redirect_uri_registered(cfg, uri):
    for registered in cfg["redirect_uris"]:
        if registered == uri:
            return True
        if ":*" in registered:
            pattern = re.escape(registered).replace(re.escape(":*"), r":[0-9]{1,5}")
            if re.fullmatch(pattern, uri):
                return True
    return False


def _redirect(uri, params):
    sep = "&" if "?" in uri else "?"
    location = uri + sep + urlencode(params)
    return Response(302, b"", content_type="text/plain", headers=[("Location", location)])


def authorize(core, req):
    cfg = core.cfg
    client_key = req.param("client_key")
    redirect_uri = req.param("redirect_uri")
    # Without a known client and a registered redirect URI there is nowhere safe to send the
    # user back to: TikTok shows an error page. The fake answers 400 with a flat error.
    if not client_key:
        return _page_error(400, "invalid_request", "client_key is missing.")
    if client_key != cfg["client_key"]:
        return _page_error(400, "invalid_client", "client_key is unknown.")
    if not redirect_uri:
        return _page_error(400, "invalid_request", "redirect_uri is missing.")
    if not _redirect_uri_registered(cfg, redirect_uri):
        return _page_error(400, "invalid_request", "redirect_uri is not registered for this app.")

    state = req.param("state")

    def fail(error, description):
        params = {"error": error, "error_description": description}
        if state is not None:
            params["state"] = state
        return _redirect(redirect_uri, params)

    if req.param("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code.")
    if state is None and cfg["require_state"]:
        return fail("invalid_request", "state is missing.")
    scope_param = req.param("scope")
    if not scope_param:
        return fail("invalid_request", "scope is missing.")
    requested = scope_param.split(",")  # comma-separated (§1.1), no spaces
    for scope in requested:
        if scope not in SCOPES or scope not in cfg["app_scopes"]:
            return fail("invalid_scope", "Scope %r is unknown or not approved for this app." % scope)
    challenge = req.param("code_challenge")
    method = req.param("code_challenge_method")
    if challenge is not None or method is not None:
        if not challenge:
            return fail("invalid_request", "code_challenge is missing.")
        if method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256.")
    elif cfg["require_pkce"]:
        return fail("invalid_request", "code_challenge is required for this app.")

    who = req.param("fake_user") or cfg["default_creator"]
    creator = core.find_creator(who)
    if creator is None:
        return _page_error(400, "invalid_request", "fake_user %r is not a configured creator." % who)
    if cfg["authorize_deny"] or req.param("fake_deny") in ("1", "true"):
        return fail("access_denied", "The user denied the request.")
    grant_only = cfg["authorize_grant_scopes"]
    if req.param("fake_scopes") is not None:
        grant_only = [s for s in req.param("fake_scopes").split(",") if s]
    granted = [s for s in dict.fromkeys(requested) if grant_only is None or s in grant_only]

    with core.lock:
        code = core.rand.auth_code()
        core.codes[code] = AuthCode(
            code=code,
            client_key=client_key,
            open_id=creator["open_id"],
            scopes=granted,
            redirect_uri=redirect_uri,
            code_challenge=challenge,
            expires_at=core.now() + cfg["auth_code_ttl_sec"],
        )
        core.issued["codes"].append(code)
    params = {"code": code, "scopes": ",".join(granted)}
    if state is not None:
        params["state"] = state
    return _redirect(redirect_uri, params)


def _page_error(status, error, description):
    resp = json_response({"error": error, "error_description": description}, status)
    resp.error_code = error
    return resp


# --- token endpoint (§1.5, §1.6) ---

def _check_client(cfg, form):
    if not form.get("client_key"):
        raise OAuthError("invalid_request", "The request is missing a required parameter.")
    if "client_secret" not in form or form["client_secret"] == "":
        raise OAuthError("invalid_request", "Client secret is missed in request.")
    if not hmac.compare_digest(form["client_key"], cfg["client_key"]) or not hmac.compare_digest(
        form["client_secret"], cfg["client_secret"]
    ):
        raise OAuthError("invalid_client", "Client key or secret is invalid.")


def _read_form(core, req):
    if media_type(req.header("Content-Type")) != FORM_TYPE:
        req.body(core.cfg["max_json_body"])  # drain it; keep the connection usable
        raise OAuthError("invalid_request", "The request parameters are malformed.")
    try:
        return req.form_body(core.cfg["max_json_body"])
    except ValueError:
        raise OAuthError("invalid_request", "The request parameters are malformed.")


def token(core, req):
    form = _read_form(core, req)
    _check_client(core.cfg, form)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "The request is missing a required parameter.")
    if grant_type == "authorization_code":
        return json_response(_exchange_code(core, form))
    if grant_type == "refresh_token":
        return json_response(_refresh(core, form))
    if grant_type == "client_credentials":
        raise OAuthError("unauthorized_client", "This fake does not issue client access tokens.")
    raise OAuthError("unsupported_grant_type", "The grant type is not supported.")


def _exchange_code(core, form):
    code_value = form.get("code")
    redirect_uri = form.get("redirect_uri")
    if not code_value or not redirect_uri:
        raise OAuthError("invalid_request", "The request is missing a required parameter.")
    with core.lock:
        code = core.codes.get(code_value)
        if code is None or code.used or code.client_key != form["client_key"]:
            raise OAuthError("invalid_grant", "Authorization code is invalid or has been used.")
        code.used = True  # single use: any attempt past client authentication spends it
        if core.now() >= code.expires_at:
            raise OAuthError("invalid_grant", "Authorization code is expired.")
        if redirect_uri != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
        if code.code_challenge is not None:
            verifier = form.get("code_verifier")
            if (
                not verifier
                or not VERIFIER_RE.fullmatch(verifier)
                or not hmac.compare_digest(
                    hashlib.sha256(verifier.encode("ascii")).hexdigest(), code.code_challenge
                )
            ):
                raise OAuthError("invalid_request", "Code verifier or code challenge is invalid.")
        return issue_grant(core, code.open_id, code.scopes)


def issue_grant(core, open_id, scopes):
    """Create a grant with a fresh access and refresh token; return the token response body."""
    with core.lock:
        now = core.now()
        grant = Grant(
            grant_id=core.next_grant_id,
            open_id=open_id,
            scopes=list(scopes),
            refresh_expires_at=now + core.cfg["refresh_token_ttl_sec"],
        )
        core.next_grant_id += 1
        core.grants[grant.grant_id] = grant
        _new_refresh_token(core, grant, now)
        return _token_body(core, grant, _new_access_token(core, grant, now), now)


def _new_access_token(core, grant, now):
    value = core.rand.access_token()
    tok = AccessToken(
        token=value,
        grant_id=grant.grant_id,
        open_id=grant.open_id,
        scopes=list(grant.scopes),
        issued_at=now,
        expires_at=now + core.cfg["access_token_ttl_sec"],
    )
    core.access_tokens[value] = tok
    core.issued["access_tokens"].append(value)
    return tok


def _new_refresh_token(core, grant, now):
    value = core.rand.refresh_token()
    core.refresh_tokens[value] = RefreshToken(value, grant.grant_id, now, grant.refresh_expires_at)
    core.issued["refresh_tokens"].append(value)
    grant.refresh_token = value


def _token_body(core, grant, access, now):
    return {
        "access_token": access.token,
        "expires_in": int(round(access.expires_at - now)),
        "open_id": grant.open_id,
        "refresh_expires_in": int(round(grant.refresh_expires_at - now)),
        "refresh_token": grant.refresh_token,
        "scope": ",".join(grant.scopes),
        "token_type": "Bearer",
    }


def _refresh(core, form):
    value = form.get("refresh_token")
    if not value:
        raise OAuthError("invalid_request", "The request is missing a required parameter.")
    cfg = core.cfg
    with core.lock:
        now = core.now()
        rt = core.refresh_tokens.get(value)
        in_grace = (rt is not None and rt.status == "rotated"
                    and now - rt.rotated_at < cfg["refresh_reuse_grace_sec"])
        if rt is None or (rt.status != "active" and not in_grace):
            raise OAuthError("invalid_grant", "Refresh token is invalid or has been revoked.")
        grant = core.grants[rt.grant_id]
        if grant.revoked:
            raise OAuthError("invalid_grant", "Refresh token is invalid or has been revoked.")
        if now >= rt.expires_at:
            raise OAuthError("invalid_grant", "Refresh token is expired.")
        if cfg["refresh_revokes_old_access_token"]:
            for tok in core.access_tokens.values():
                if tok.grant_id == grant.grant_id:
                    tok.revoked = True
        if cfg["refresh_token_rotation"]:
            current = core.refresh_tokens.get(grant.refresh_token)
            for gone in (rt, current):  # a reuse in grace also retires the newest
                if gone is not None and gone.status == "active":
                    gone.status, gone.rotated_at = "rotated", now
            if cfg["refresh_extends_refresh_expiry"]:
                grant.refresh_expires_at = now + cfg["refresh_token_ttl_sec"]
            _new_refresh_token(core, grant, now)
        return _token_body(core, grant, _new_access_token(core, grant, now), now)


# --- revoke (§1.8) ---

def revoke(core, req):
    form = _read_form(core, req)
    _check_client(core.cfg, form)
    value = form.get("token")
    if not value:
        raise OAuthError("invalid_request", "The request is missing a required parameter.")
    with core.lock:
        tok = core.access_tokens.get(value)
        if tok is None:
            raise OAuthError("invalid_request", "The token is invalid.")
        revoke_open_id(core, tok.open_id, reason=5)
    return json_response({})


def revoke_open_id(core, open_id, reason):
    """Remove the user's grant(s): every access and refresh token dies, in-flight publishes fail
    with auth_removed, and `authorization.removed` is queued. Returns the number of grants killed."""
    with core.lock:
        killed = 0
        for grant in core.grants.values():
            if grant.open_id != open_id or grant.revoked:
                continue
            grant.revoked = True
            killed += 1
            for tok in core.access_tokens.values():
                if tok.grant_id == grant.grant_id:
                    tok.revoked = True
            for rt in core.refresh_tokens.values():
                if rt.grant_id == grant.grant_id and rt.status == "active":
                    rt.status = "revoked"
        if killed:
            core.webhooks.emit("authorization.removed", open_id, {"reason": reason})
            core.engine.fail_inflight(open_id, "auth_removed")
        return killed


# --- bearer tokens on the v2 API (§8 item 3) ---

def authenticate(core, req):
    """The request's live AccessToken, or ApiError 401 access_token_invalid."""
    value = req.bearer_token()
    if value is None:
        raise ApiError(401, "access_token_invalid", "The access token is invalid or not found in the request.")
    with core.lock:
        tok = core.access_tokens.get(value)
        if (tok is None or tok.revoked or core.grants[tok.grant_id].revoked
                or tok.open_id not in core.creators):  # a creator removed from config: account gone
            raise ApiError(401, "access_token_invalid", "The access token is invalid or not found in the request.")
        if core.now() >= tok.expires_at:
            raise ApiError(401, "access_token_invalid", "The access token has expired.")
        return tok


def token_open_id(core, req):
    """The open_id behind the request's bearer token, valid or not (for the ledger), or None."""
    value = req.bearer_token()
    if value is None:
        return None
    with core.lock:
        tok = core.access_tokens.get(value)
        return tok.open_id if tok else None


def require_scope(tok, *any_of):
    if not any(scope in tok.scopes for scope in any_of):
        raise ApiError(
            401,
            "scope_not_authorized",
            "The user did not authorize the scope required for completing this request.",
        )
