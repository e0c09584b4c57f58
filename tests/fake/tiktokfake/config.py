"""Configuration of the fake: defaults, merging, validation and the "strict" switch.

Every key is documented in docs/testing.md. Unknown keys are rejected so that a typo in a test
fails loudly instead of silently testing the default. Where the spec is uncertain the default
is the stricter reading; `"strict": false` flips every such key (listed in STRICT_CHOICES) to the
lenient reading unless the key is set explicitly.
"""

import copy
import ipaddress
from urllib.parse import urlsplit

SCOPES = (
    "user.info.basic",
    "user.info.profile",
    "user.info.stats",
    "video.list",
    "video.upload",
    "video.publish",
)
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")
PUBLIC_ACCOUNT_OPTIONS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]  # §2.1
PRIVATE_ACCOUNT_OPTIONS = ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]  # §2.1

# Rate-limit bucket names and the endpoints they cover (§3.1, §6.5).
RATE_BUCKETS = (
    "video_init",
    "inbox_init",
    "content_init",
    "creator_info",
    "status_fetch",
    "cancel",
    "user_info",
    "video_list",
    "video_query",
)

# key: (strict value, lenient value). The default of these keys is None = "follow `strict`".
STRICT_CHOICES = {
    "require_brand_toggles": (True, False),  # §2.2/§2.6 and §7 #3
    "reject_branded_self_only": (True, False),  # §2.2 last paragraph
    "chunk_units": ("strict", "loose"),  # §2.5 MB units
    "pending_share_mode": ("window", "concurrent"),  # §2.3 and §7 #6
    "unaudited_trigger": ("either", "account"),  # §3.2 and §7 #8
}

CREATOR_DEFAULTS = {
    "open_id": None,  # required
    "union_id": None,  # default "union-" + open_id
    "username": None,  # required
    "nickname": None,  # default: username
    "avatar_url": None,  # default https://example.invalid/avatar/<username>.jpeg (never fetched)
    "private_account": False,
    "privacy_level_options": None,  # default from private_account (§2.1)
    "comment_disabled": False,
    "duet_disabled": None,  # default: private_account (§2.1)
    "stitch_disabled": None,  # default: private_account (§2.1)
    "max_video_post_duration_sec": 300,
    "banned": False,  # spam_risk_user_banned_from_posting
    "daily_post_cap": None,  # default: the global daily_post_cap
    "app_version_ok": True,  # False: photo MEDIA_UPLOAD gives app_version_check_failed
    "outside_posts": 0,  # direct posts made by "another app" at creation time (§3.2)
    "bio_description": "",
    "profile_deep_link": None,  # default https://vm.tiktok.example.invalid/@<username>
    "is_verified": False,
    "follower_count": 0,
    "following_count": 0,
    "likes_count": 0,
    "video_count": 0,
}

DEFAULT_CREATORS = [
    {"open_id": "-000FakeAcctOne000000000000001", "username": "acct_one", "nickname": "Account One"},
    {
        "open_id": "-000FakeAcctTwo000000000000002",
        "username": "acct_two",
        "nickname": "Account Two",
        "private_account": True,
    },
]

DEFAULTS = {
    "strict": True,
    "seed": None,
    "log_requests": False,
    "public_base_url": None,  # base used in upload_url; default the server's own base URL
    "socket_timeout_sec": 30,
    "max_json_body": 1048576,
    # --- the app (client) ---
    "client_key": "fake_client_key",
    "client_secret": "fake_client_secret",
    "redirect_uris": ["https://tikd.example.test/oauth/callback", "http://127.0.0.1:*/oauth/callback"],
    "app_scopes": list(SCOPES),  # scopes TikTok approved for the app (§1.9)
    "audited": True,
    # --- Login Kit (§1) ---
    "require_pkce": False,  # desktop apps: authorize without code_challenge -> invalid_request
    "require_state": True,
    "auth_code_ttl_sec": 300,
    "access_token_ttl_sec": 86400,
    "refresh_token_ttl_sec": 31536000,
    "refresh_token_rotation": True,  # strict rotation (§1.6); False = same refresh token back
    # seconds a rotated refresh token still refreshes (the lenient reading of §1.6: a client
    # whose answer was lost can try again); 0 = it dies at once
    "refresh_reuse_grace_sec": 0,
    "refresh_extends_refresh_expiry": False,  # False: a rotated token keeps the grant's deadline
    "refresh_revokes_old_access_token": False,
    "oauth_error_status": 400,  # 400, or 200 as seen in the field (§1.10)
    "default_creator": DEFAULT_CREATORS[0]["open_id"],
    "authorize_deny": False,  # the simulated user clicks "Cancel"
    "authorize_grant_scopes": None,  # list: the user grants only these (of those requested)
    # --- creators (accounts) ---
    "creators": DEFAULT_CREATORS,
    # --- Content Posting (§2, §3) ---
    "verified_domains": ["media.example.test"],
    "verified_url_prefixes": ["https://cdn.example.test/tikd/"],
    "rate_limits": {
        "video_init": 6,
        "inbox_init": 6,
        "content_init": 6,
        "creator_info": 20,
        "status_fetch": 30,
        "cancel": None,
        "user_info": 600,
        "video_list": 600,
        "video_query": 600,
    },
    "rate_limit_window_sec": 60,
    "shared_init_bucket": False,
    "rate_limit_retry_after": False,  # add Retry-After to rate_limit_exceeded (undocumented)
    "daily_post_cap": 15,
    "daily_post_window_sec": 86400,
    "pending_share_cap": 5,
    "pending_share_window_sec": 86400,
    "active_user_cap": None,  # audited client: None = no cap
    "unaudited_active_user_cap": 5,
    "active_user_window_sec": 86400,
    "upload_url_ttl_sec": 3600,
    "upload_expired_fails": False,  # True: an expired, unfinished upload turns FAILED
    "upload_expired_fail_reason": "internal",
    "upload_progress_range": "count",  # 206 Content-Range end: "count" or "last_index" (§2.4)
    "cancel_cutoff_fraction": 0.8,  # a download past this fraction is "near completion"
    "userinfo_scope_error": "scope_permission_missed",  # or "scope_not_authorized" (§6.1)
    "time_scale": 1.0,  # multiplies every processing delay; 0 = instant
    "processing": {
        "download_sec": 3.0,
        "processing_sec": 3.0,
        "moderation_sec": 5.0,
        "inbox_auto_post_sec": None,  # None: the simulated user never posts the draft by itself
        "pull_video_bytes": 10000000,  # simulated size of a pulled video (downloaded_bytes)
        "pull_photo_bytes": 500000,  # simulated size of one pulled photo
    },
    # --- webhooks (§5) ---
    "webhook": {
        "url": None,  # loopback http(s) URL; None = no deliveries (events are still recorded)
        "ca_file": None,  # for an https URL
        "stale_t_sec": 0,  # sign with t = now - stale_t_sec
        "wrong_signature": False,
        "duplicates": 0,  # extra identical deliveries of every event
        "retry_delays_sec": [0.05, 0.1, 0.2, 0.4, 0.8],  # compressed backoff; then give up
        "accept_any_2xx": False,  # False: only 200 is a successful delivery (§5.1)
        "timeout_sec": 5.0,
    },
}
for _key in STRICT_CHOICES:
    DEFAULTS[_key] = None

NESTED = ("rate_limits", "processing", "webhook")


class ConfigError(ValueError):
    pass


def merge(base, update):
    """Return base updated by `update`; nested dicts merge one level deep, the rest replace."""
    if not isinstance(update, dict):
        raise ConfigError("config must be a JSON object")
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key not in DEFAULTS:
            raise ConfigError("unknown config key %r" % key)
        if key in NESTED and value is not None:
            if not isinstance(value, dict):
                raise ConfigError("%s must be an object" % key)
            for sub in value:
                if sub not in DEFAULTS[key]:
                    raise ConfigError("unknown config key %s.%s" % (key, sub))
            out[key] = dict(out[key], **copy.deepcopy(value))
        else:
            out[key] = copy.deepcopy(value)
    validate(out)
    return out


def validate(cfg):
    for creator in cfg["creators"]:
        normalize_creator(creator)
    for uri in cfg["redirect_uris"]:
        if not isinstance(uri, str):
            raise ConfigError("redirect_uris must be strings")
    for scope in cfg["app_scopes"]:
        if scope not in SCOPES:
            raise ConfigError("unknown scope %r in app_scopes" % scope)
    for prefix in cfg["verified_url_prefixes"]:
        parts = urlsplit(prefix)
        if parts.scheme != "https" or not parts.hostname or is_ip_host(parts.hostname):
            raise ConfigError("verified URL prefix %r must be https on a named host (§2.9)" % prefix)
    if cfg["oauth_error_status"] not in (200, 400, 401):
        raise ConfigError("oauth_error_status must be 400 or 200 (401 also allowed)")
    if cfg["upload_progress_range"] not in ("count", "last_index"):
        raise ConfigError("upload_progress_range must be count or last_index")
    if cfg["userinfo_scope_error"] not in ("scope_permission_missed", "scope_not_authorized"):
        raise ConfigError("userinfo_scope_error must be scope_permission_missed or scope_not_authorized")
    if resolve(cfg, "chunk_units") not in ("strict", "loose", "decimal", "binary"):
        raise ConfigError("chunk_units must be strict, loose, decimal or binary")
    if resolve(cfg, "pending_share_mode") not in ("window", "concurrent"):
        raise ConfigError("pending_share_mode must be window or concurrent")
    if resolve(cfg, "unaudited_trigger") not in ("either", "account"):
        raise ConfigError("unaudited_trigger must be either or account")
    ids = [c["open_id"] for c in cfg["creators"]]
    if len(set(ids)) != len(ids):
        raise ConfigError("creator open_ids must be unique")
    if cfg["default_creator"] not in ids:
        raise ConfigError("default_creator %r is not among the creators" % cfg["default_creator"])
    url = cfg["webhook"]["url"]
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or not is_loopback_host(parts.hostname):
            raise ConfigError("webhook.url must be an http(s) URL on a loopback host (no traffic leaves the machine)")


def resolve(cfg, key):
    """The effective value of a key, applying the strict switch to STRICT_CHOICES keys."""
    value = cfg[key]
    if value is None and key in STRICT_CHOICES:
        strict_value, lenient_value = STRICT_CHOICES[key]
        return strict_value if cfg["strict"] else lenient_value
    return value


def normalize_creator(creator):
    """Check a creator object and return it with every default filled in."""
    if not isinstance(creator, dict):
        raise ConfigError("a creator must be a JSON object")
    for key in creator:
        if key not in CREATOR_DEFAULTS:
            raise ConfigError("unknown creator key %r" % key)
    out = dict(CREATOR_DEFAULTS, **creator)
    if not isinstance(out["open_id"], str) or not out["open_id"]:
        raise ConfigError("a creator needs an open_id")
    if not isinstance(out["username"], str) or not out["username"]:
        raise ConfigError("a creator needs a username")
    private = bool(out["private_account"])
    if out["nickname"] is None:
        out["nickname"] = out["username"]
    if out["union_id"] is None:
        out["union_id"] = "union-" + out["open_id"]
    if out["avatar_url"] is None:
        out["avatar_url"] = "https://example.invalid/avatar/%s.jpeg" % out["username"]
    if out["profile_deep_link"] is None:
        out["profile_deep_link"] = "https://vm.tiktok.example.invalid/@%s" % out["username"]
    if out["privacy_level_options"] is None:
        out["privacy_level_options"] = list(PRIVATE_ACCOUNT_OPTIONS if private else PUBLIC_ACCOUNT_OPTIONS)
    for level in out["privacy_level_options"]:
        if level not in PRIVACY_LEVELS:
            raise ConfigError("unknown privacy level %r" % level)
    for key in ("duet_disabled", "stitch_disabled"):
        if out[key] is None:
            out[key] = private
    return out


def is_ip_host(host):
    """True for IP literals, including the all-digits integer form (http://2130706433/)."""
    host = host.strip("[]")
    if host.isdigit():
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def is_loopback_host(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
