"""Display API (§6): user info with `fields` filtering, video list and video query.

Fields are gated by scope; asking for a field whose scope was not granted gives 400
scope_permission_missed (or 401 scope_not_authorized, per config `userinfo_scope_error`).
Videos are the creator's publicly available posts made through this fake.
"""

from . import oauth
from .util import is_int
from .wire import ApiError, envelope, invalid_params

USER_FIELDS = {
    "open_id": "user.info.basic",
    "union_id": "user.info.basic",
    "avatar_url": "user.info.basic",
    "avatar_url_100": "user.info.basic",
    "avatar_large_url": "user.info.basic",
    "display_name": "user.info.basic",
    "bio_description": "user.info.profile",
    "profile_deep_link": "user.info.profile",
    "is_verified": "user.info.profile",
    "username": "user.info.profile",
    "follower_count": "user.info.stats",
    "following_count": "user.info.stats",
    "likes_count": "user.info.stats",
    "video_count": "user.info.stats",
}
VIDEO_FIELDS = ("id", "create_time", "cover_image_url", "share_url", "video_description", "duration",
                "height", "width", "title", "embed_html", "embed_link", "like_count", "comment_count",
                "share_count", "view_count")
MAX_COUNT = 20


def _fields(req, known):
    raw = req.param("fields")
    if not raw:
        raise invalid_params("The fields query parameter is required.")
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for name in fields:
        if name not in known:
            raise invalid_params("Unknown field %r." % name)
    return list(dict.fromkeys(fields))


def user_info(core, req, tok):
    fields = _fields(req, USER_FIELDS)
    missing = sorted({USER_FIELDS[f] for f in fields} - set(tok.scopes))
    if missing:
        if core.cfg["userinfo_scope_error"] == "scope_not_authorized":
            oauth.require_scope(tok, *missing)
        raise ApiError(400, "scope_permission_missed",
                       "The fields need scopes the user did not grant: %s." % ", ".join(missing))
    with core.lock:
        creator = core.creators[tok.open_id]
        public_posts = len(_videos(core, tok.open_id))
    avatar = creator["avatar_url"]
    values = {
        "open_id": creator["open_id"],
        "union_id": creator["union_id"],
        "avatar_url": avatar,
        "avatar_url_100": avatar.replace(".jpeg", "_100.jpeg"),
        "avatar_large_url": avatar.replace(".jpeg", "_large.jpeg"),
        "display_name": creator["nickname"],
        "bio_description": creator["bio_description"],
        "profile_deep_link": creator["profile_deep_link"],
        "is_verified": bool(creator["is_verified"]),
        "username": creator["username"],
        "follower_count": creator["follower_count"],
        "following_count": creator["following_count"],
        "likes_count": creator["likes_count"],
        "video_count": creator["video_count"] + public_posts,
    }
    return envelope(req.log_id, {"user": {f: values[f] for f in fields}})


def _videos(core, open_id):
    """Every public post of this creator as a full video object, newest first."""
    creator = core.creators[open_id]
    out = []
    for pub in core.publishes.values():
        if pub.open_id != open_id:
            continue
        text = pub.post_info.get("description") or pub.post_info.get("title") or ""
        for post_id in pub.post_ids:
            vid = str(post_id)
            out.append({
                "id": vid,
                "create_time": int(pub.post_times[post_id]),
                "cover_image_url": "https://example.invalid/cover/%s.jpeg" % vid,
                "share_url": "https://www.tiktok.com/@%s/video/%s" % (creator["username"], vid),
                "video_description": text[:150],
                "duration": 15,
                "height": 1920,
                "width": 1080,
                "title": (pub.post_info.get("title") or "")[:150],
                "embed_html": '<blockquote class="tiktok-embed" data-video-id="%s"></blockquote>' % vid,
                "embed_link": "https://www.tiktok.com/embed/v2/%s" % vid,
                "like_count": 0,
                "comment_count": 0,
                "share_count": 0,
                "view_count": 0,
            })
    out.sort(key=lambda v: (v["create_time"], v["id"]), reverse=True)
    return out


def video_list(core, req, tok):
    fields = _fields(req, VIDEO_FIELDS)
    body = req.json_body(core.cfg["max_json_body"], allow_empty=True)
    cursor = body.get("cursor")
    max_count = body.get("max_count", 10)
    if cursor is not None and (not is_int(cursor) or cursor < 0):
        raise invalid_params("cursor must be a Unix timestamp in milliseconds.")
    if not is_int(max_count) or not 1 <= max_count <= MAX_COUNT:
        raise invalid_params("max_count must be an integer from 1 to %d." % MAX_COUNT)
    with core.lock:
        videos = _videos(core, tok.open_id)
    if cursor is not None:
        videos = [v for v in videos if v["create_time"] * 1000 < cursor]
    page = videos[:max_count]
    next_cursor = page[-1]["create_time"] * 1000 if page else (cursor or 0)
    data = {"videos": [{f: v[f] for f in fields} for v in page], "cursor": next_cursor,
            "has_more": len(videos) > len(page)}
    return envelope(req.log_id, data)


def video_query(core, req, tok):
    fields = _fields(req, VIDEO_FIELDS)
    body = req.json_body(core.cfg["max_json_body"])
    filters = body.get("filters")
    ids = filters.get("video_ids") if isinstance(filters, dict) else None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_COUNT or not all(isinstance(i, str) for i in ids):
        raise invalid_params("filters.video_ids must list 1 to %d video ids (strings)." % MAX_COUNT)
    with core.lock:
        owned = {v["id"]: v for v in _videos(core, tok.open_id)}
    videos = [{f: owned[i][f] for f in fields} for i in dict.fromkeys(ids) if i in owned]
    return envelope(req.log_id, {"videos": videos, "cursor": 0, "has_more": False})
