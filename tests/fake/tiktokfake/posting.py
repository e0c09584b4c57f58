"""Content Posting API (§2, §3): creator_info, the three init flavours, status fetch, cancel.

Init checks run in a fixed order, each with TikTok's code and status (§3.3):
  400 invalid_params (shape, enums, text lengths in UTF-16 units, chunk plan §2.5)
  403 privacy_level_option_mismatch, unaudited_client_can_only_post_to_private_accounts,
      url_ownership_unverified;  400 app_version_check_failed (photo MEDIA_UPLOAD)
  403 spam_risk_user_banned_from_posting, reached_active_user_cap,
      spam_risk_too_many_posts (direct) / spam_risk_too_many_pending_share (drafts)
Caps are checked and consumed under the state lock, so concurrent inits cannot both slip in.
"""

import time
from urllib.parse import urlsplit

from . import oauth
from .config import PRIVACY_LEVELS, is_ip_host
from .lifecycle import Publish, Upload
from .util import is_int, utf16_len
from .wire import ApiError, envelope, invalid_params

MiB = 1024 * 1024
# Chunk-plan bounds per reading of "MB" (§2.5). "strict" takes the stricter bound on each side.
CHUNK_UNITS = {
    "strict": dict(min_chunk=5 * MiB, max_chunk=64_000_000, max_whole=64_000_000,
                   max_last=128_000_000, max_total=4_000_000_000),
    "loose": dict(min_chunk=5_000_000, max_chunk=64 * MiB, max_whole=64 * MiB,
                  max_last=128 * MiB, max_total=4096 * MiB),
    "decimal": dict(min_chunk=5_000_000, max_chunk=64_000_000, max_whole=64_000_000,
                    max_last=128_000_000, max_total=4_000_000_000),
    "binary": dict(min_chunk=5 * MiB, max_chunk=64 * MiB, max_whole=64 * MiB,
                   max_last=128 * MiB, max_total=4096 * MiB),
}
TITLE_MAX_VIDEO = 2200
TITLE_MAX_PHOTO = 90
DESCRIPTION_MAX_PHOTO = 4000
PHOTO_MAX_IMAGES = 35


# --- field helpers: each raises invalid_params naming the field ---

def _object(parent, key, where):
    value = parent.get(key)
    if not isinstance(value, dict):
        raise invalid_params("%s%s is required and must be an object." % (where, key))
    return value


TYPE_CHECKS = {
    "bool": ("a boolean", lambda v: isinstance(v, bool)),
    "int": ("an integer", is_int),
    "str": ("a string", lambda v: isinstance(v, str)),
}


def _optional(parent, key, kind, where):
    if key not in parent or parent[key] is None:
        return None
    value = parent[key]
    name, check = TYPE_CHECKS[kind]
    if not check(value):
        raise invalid_params("%s%s must be %s." % (where, key, name))
    return value


def _text(parent, key, limit, where):
    value = _optional(parent, key, "str", where)
    if value is not None and utf16_len(value) > limit:
        raise invalid_params("%s%s is longer than %d characters (UTF-16 code units)." % (where, key, limit))
    return value


def _privacy(post_info):
    level = post_info.get("privacy_level")
    if level is None:
        raise invalid_params("post_info.privacy_level is required.")
    if level not in PRIVACY_LEVELS:
        raise invalid_params("post_info.privacy_level %r is not a valid privacy level." % (level,))
    return level


def _brand_toggles(core, post_info, level, required):
    for key in required:
        if key not in post_info and core.setting("require_brand_toggles"):
            raise invalid_params("post_info.%s is required." % key)
    branded = _optional(post_info, "brand_content_toggle", "bool", "post_info.")
    _optional(post_info, "brand_organic_toggle", "bool", "post_info.")
    if branded and level == "SELF_ONLY" and core.setting("reject_branded_self_only"):
        raise invalid_params("Branded content cannot be posted with privacy_level SELF_ONLY.")


# --- chunk plan (§2.5) ---

def check_chunk_plan(video_size, chunk_size, total_chunk_count, units="strict"):
    """Raise invalid_params unless the plan obeys §2.5 under the given reading of "MB"."""
    b = CHUNK_UNITS[units]
    for name, value in (("video_size", video_size), ("chunk_size", chunk_size),
                        ("total_chunk_count", total_chunk_count)):
        if value is None:
            raise invalid_params("source_info.%s is required for FILE_UPLOAD." % name)
        if not is_int(value) or value <= 0:
            raise invalid_params("source_info.%s must be a positive integer." % name)
    if video_size > b["max_total"]:
        raise invalid_params("The video size is too large.")
    if total_chunk_count != video_size // chunk_size:
        raise invalid_params("The total chunk count is invalid.")
    if not 1 <= total_chunk_count <= 1000:
        raise invalid_params("The total chunk count is invalid.")
    if video_size < b["min_chunk"]:
        # A file under 5 MB goes up whole.
        if chunk_size != video_size:
            raise invalid_params("The chunk size is invalid.")
        return
    if total_chunk_count == 1 and chunk_size == video_size:
        if video_size > b["max_whole"]:
            raise invalid_params("The chunk size is invalid.")  # over 64 MB needs several chunks
        return
    if not b["min_chunk"] <= chunk_size <= b["max_chunk"]:
        raise invalid_params("The chunk size is invalid.")
    if video_size > b["max_whole"] and total_chunk_count < 2:
        raise invalid_params("The chunk size is invalid.")
    if video_size - (total_chunk_count - 1) * chunk_size > b["max_last"]:
        raise invalid_params("The chunk size is invalid.")


# --- URL ownership (§2.9) ---

def url_verified(cfg, url):
    """True when `url` is https, on a named host, and covered by a verified domain or prefix."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parts.scheme != "https" or not host or is_ip_host(host) or parts.username or parts.password:
        return False
    host = host.lower().rstrip(".")
    for domain in cfg["verified_domains"]:
        domain = domain.lower().rstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return any(url.startswith(prefix) for prefix in cfg["verified_url_prefixes"])


def _check_urls(cfg, urls):
    for url in urls:
        if not url_verified(cfg, url):
            raise ApiError(403, "url_ownership_unverified",
                           "The URL %s is not on a verified domain or URL prefix of this app." % url)


# --- policy checks ---

def _check_privacy_option(creator, level):
    if level not in creator["privacy_level_options"]:
        raise ApiError(403, "privacy_level_option_mismatch",
                       "privacy_level %s is not among this creator's privacy_level_options." % level)


def _check_unaudited(core, creator, level):
    if core.cfg["audited"]:
        return
    public_account = not creator["private_account"]
    either = core.setting("unaudited_trigger") == "either"
    if public_account or (either and level != "SELF_ONLY"):
        raise ApiError(403, "unaudited_client_can_only_post_to_private_accounts",
                       "Unaudited clients can only post to private accounts with SELF_ONLY.")


def window_count(times, now, window):
    return sum(1 for t in times if t > now - window)


def _active_cap(core):
    if core.cfg["audited"]:
        return core.cfg["active_user_cap"]
    return core.cfg["unaudited_active_user_cap"]


def _cap_error(core, creator, now, direct, status):
    """The first cap that blocks this creator, as an ApiError with `status`, or None."""
    cfg = core.cfg
    open_id = creator["open_id"]
    usage = core.usage[open_id]
    if creator["banned"]:
        return ApiError(status, "spam_risk_user_banned_from_posting", "The user is banned from posting.")
    cap = _active_cap(core)
    if cap is not None:
        window = cfg["active_user_window_sec"]
        active = {o for o, t in core.active_users.items() if t > now - window}
        if open_id not in active and len(active) >= cap:
            return ApiError(status, "reached_active_user_cap",
                            "The daily limit of active users for this client has been reached.")
    if direct:
        cap = creator["daily_post_cap"] if creator["daily_post_cap"] is not None else cfg["daily_post_cap"]
        if window_count(usage.direct_posts, now, cfg["daily_post_window_sec"]) >= cap:
            return ApiError(status, "spam_risk_too_many_posts", "The user has reached the daily post limit.")
    return None


def pending_shares(core, open_id, now):
    usage = core.usage[open_id]
    if core.setting("pending_share_mode") == "window":
        return window_count([t for t, _ in usage.inbox_shares], now, core.cfg["pending_share_window_sec"])
    # concurrent: drafts not yet posted (nor failed) hold a slot
    pending = ("upload", "download", "processing", "inbox")
    return sum(1 for _, pid in usage.inbox_shares if core.publishes[pid].phase in pending)


def _check_caps(core, creator, now, direct):
    err = _cap_error(core, creator, now, direct, 403)
    if err:
        raise err
    if not direct and pending_shares(core, creator["open_id"], now) >= core.cfg["pending_share_cap"]:
        raise ApiError(403, "spam_risk_too_many_pending_share",
                       "The user has too many pending shares waiting in the inbox.")


# --- the endpoints ---

def creator_info(core, req, tok):
    req.json_body(core.cfg["max_json_body"], allow_empty=True)  # none, or {} (§2.1)
    with core.lock:
        creator = core.creators[tok.open_id]
        err = _cap_error(core, creator, core.now(), True, 200)  # HTTP 200 "intentional" (§2.1)
        if err:
            raise err
        data = {
            "creator_avatar_url": creator["avatar_url"],
            "creator_username": creator["username"],
            "creator_nickname": creator["nickname"],
            "privacy_level_options": list(creator["privacy_level_options"]),
            "comment_disabled": bool(creator["comment_disabled"]),
            "duet_disabled": bool(creator["duet_disabled"]),
            "stitch_disabled": bool(creator["stitch_disabled"]),
            "max_video_post_duration_sec": creator["max_video_post_duration_sec"],
        }
    return envelope(req.log_id, data)


def _video_source(core, body):
    source_info = _object(body, "source_info", "")
    source = source_info.get("source")
    if source == "FILE_UPLOAD":
        check_chunk_plan(source_info.get("video_size"), source_info.get("chunk_size"),
                         source_info.get("total_chunk_count"), core.setting("chunk_units"))
        return source_info, []
    if source == "PULL_FROM_URL":
        url = source_info.get("video_url")
        if not isinstance(url, str) or not url:
            raise invalid_params("source_info.video_url is required for PULL_FROM_URL.")
        return source_info, [url]
    raise invalid_params("source_info.source must be FILE_UPLOAD or PULL_FROM_URL.")


def video_init(core, req, tok):
    """Direct post of a video (§2.2)."""
    body = req.json_body(core.cfg["max_json_body"])
    post_info = _object(body, "post_info", "")
    level = _privacy(post_info)
    _text(post_info, "title", TITLE_MAX_VIDEO, "post_info.")
    for key in ("disable_duet", "disable_stitch", "disable_comment", "is_aigc"):
        _optional(post_info, key, "bool", "post_info.")
    _optional(post_info, "video_cover_timestamp_ms", "int", "post_info.")
    _brand_toggles(core, post_info, level, ("brand_content_toggle",))
    source_info, urls = _video_source(core, body)
    prefix = "v_pub_file~v2-1." if source_info["source"] == "FILE_UPLOAD" else "v_pub_url~v2-1."
    return _create(core, req, tok, "VIDEO", "DIRECT_PUBLISH", source_info, post_info, level, urls, prefix)


def inbox_video_init(core, req, tok):
    """Upload a video draft to the creator's inbox (§2.3). An extra post_info is accepted and ignored."""
    body = req.json_body(core.cfg["max_json_body"])
    source_info, urls = _video_source(core, body)
    post_info = body.get("post_info") if isinstance(body.get("post_info"), dict) else {}
    prefix = "v_inbox_file~v2." if source_info["source"] == "FILE_UPLOAD" else "v_inbox_url~v2."
    return _create(core, req, tok, "VIDEO", "INBOX_SHARE", source_info, post_info, None, urls, prefix)


def content_init(core, req, tok):
    """Photo post, DIRECT_POST or MEDIA_UPLOAD (§2.6)."""
    body = req.json_body(core.cfg["max_json_body"])
    if body.get("media_type") != "PHOTO":
        raise invalid_params("media_type must be PHOTO.")
    mode = body.get("post_mode")
    if mode not in ("DIRECT_POST", "MEDIA_UPLOAD"):
        raise invalid_params("post_mode must be DIRECT_POST or MEDIA_UPLOAD.")
    oauth.require_scope(tok, "video.publish" if mode == "DIRECT_POST" else "video.upload")
    post_info = _object(body, "post_info", "")
    _text(post_info, "title", TITLE_MAX_PHOTO, "post_info.")
    _text(post_info, "description", DESCRIPTION_MAX_PHOTO, "post_info.")
    level = None
    if mode == "DIRECT_POST":
        level = _privacy(post_info)
        for key in ("disable_comment", "auto_add_music"):
            _optional(post_info, key, "bool", "post_info.")
        _brand_toggles(core, post_info, level, ("brand_content_toggle", "brand_organic_toggle"))
    source_info = _object(body, "source_info", "")
    if source_info.get("source") != "PULL_FROM_URL":
        raise invalid_params("source_info.source must be PULL_FROM_URL for photos.")
    images = source_info.get("photo_images")
    if (not isinstance(images, list) or not 1 <= len(images) <= PHOTO_MAX_IMAGES
            or not all(isinstance(u, str) and u for u in images)):
        raise invalid_params("source_info.photo_images must list 1 to %d image URLs." % PHOTO_MAX_IMAGES)
    cover = source_info.get("photo_cover_index")
    if not is_int(cover) or not 0 <= cover < len(images):
        raise invalid_params("source_info.photo_cover_index is required and must index photo_images.")
    publish_type = "DIRECT_PUBLISH" if mode == "DIRECT_POST" else "INBOX_SHARE"
    return _create(core, req, tok, "PHOTO", publish_type, source_info, post_info, level, images,
                   "p_pub_url~v2.", photo_mode=mode)


def _create(core, req, tok, media_type, publish_type, source_info, post_info, level, urls, prefix,
            photo_mode=None):
    """Policy checks, cap accounting and the new publish, atomically under the state lock."""
    direct = publish_type == "DIRECT_PUBLISH"
    with core.lock:
        now = core.now()
        creator = core.creators[tok.open_id]
        if direct:
            _check_privacy_option(creator, level)
            _check_unaudited(core, creator, level)
        _check_urls(core.cfg, urls)
        if photo_mode == "MEDIA_UPLOAD" and not creator["app_version_ok"]:
            raise ApiError(400, "app_version_check_failed",
                           "The user's TikTok app is older than 31.8 and cannot receive photo drafts.")
        _check_caps(core, creator, now, direct)

        publish_id = prefix + str(core.rand.digits19())
        source = source_info["source"]
        pub = Publish(
            publish_id=publish_id,
            open_id=tok.open_id,
            media_type=media_type,
            publish_type=publish_type,
            source=source,
            post_info=post_info,
            privacy_level=level,
            urls=list(urls),
            created_at=now,
            created_mono=time.monotonic(),
            fail_on_expiry=bool(core.cfg["upload_expired_fails"]),
        )
        if req.planned_failure:
            reason, stage = req.planned_failure
            pub.planned_failure = (reason, stage if source == "PULL_FROM_URL" else "processing")
        core.publishes[publish_id] = pub
        core.active_users[tok.open_id] = now
        usage = core.usage[tok.open_id]
        if direct:
            usage.direct_posts.append(now)
        else:
            usage.inbox_shares.append((now, publish_id))
        data = {"publish_id": publish_id}
        if source == "FILE_UPLOAD":
            pub.upload = _new_upload(core, pub, source_info, now)
            data["upload_url"] = "%s/upload/video/?upload_id=%s&upload_token=%s" % (
                core.cfg["public_base_url"] or core.base_url, pub.upload.upload_id, pub.upload.upload_token)
            assert len(data["upload_url"]) <= 256, "upload_url longer than 256 characters"
        else:
            per_item = core.processing("pull_photo_bytes" if media_type == "PHOTO" else "pull_video_bytes")
            core.engine.start_download(pub, int(per_item) * len(urls))
    resp = envelope(req.log_id, data)
    resp.publish_id = publish_id
    return resp


def _new_upload(core, pub, source_info, now):
    upload = Upload(
        upload_id=str(core.rand.digits19()),
        upload_token=core.rand.upload_token(),
        publish_id=pub.publish_id,
        open_id=pub.open_id,
        video_size=source_info["video_size"],
        chunk_size=source_info["chunk_size"],
        total_chunk_count=source_info["total_chunk_count"],
        expires_at=now + core.cfg["upload_url_ttl_sec"],
    )
    core.uploads[upload.upload_id] = upload
    core.issued["upload_tokens"].append(upload.upload_token)
    return upload


def _owned_publish(core, req, tok):
    body = req.json_body(core.cfg["max_json_body"])
    publish_id = body.get("publish_id")
    if not isinstance(publish_id, str) or not publish_id:
        raise invalid_params("publish_id is required.")
    pub = core.publishes.get(publish_id)
    if pub is None:
        raise ApiError(400, "invalid_publish_id", "The publish_id does not exist.")
    if pub.open_id != tok.open_id:
        raise ApiError(400, "token_not_authorized_for_specified_publish_id",
                       "The access token is not authorized for this publish_id.")
    return pub


def status_fetch(core, req, tok):
    """Status of a publish (§2.7). Post ids are bare JSON integers above 2^53 (§0.3).
    Fields that do not apply are left out, as TikTok may do: clients must default them."""
    with core.lock:
        pub = _owned_publish(core, req, tok)
        data = {"status": pub.status}
        if pub.phase == "failed":
            data["fail_reason"] = pub.fail_reason
        data["publicaly_available_post_id"] = list(pub.post_ids)
        if pub.source == "FILE_UPLOAD":
            data["uploaded_bytes"] = pub.upload.received
        else:
            data["downloaded_bytes"] = pub.downloaded_bytes(core.now())
    return envelope(req.log_id, data)


def cancel(core, req, tok):
    """Best-effort cancel of a PULL_FROM_URL download (§2.8). Success has no `data` key."""
    with core.lock:
        pub = _owned_publish(core, req, tok)
        if not core.engine.cancel(pub):
            raise ApiError(400, "publish_not_cancellable", "The publish can no longer be cancelled.")
    return envelope(req.log_id, with_data=False)
