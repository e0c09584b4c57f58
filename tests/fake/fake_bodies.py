"""Request bodies for the fake's own tests (synthetic, close to the spec's examples)."""

ONE = "-000FakeAcctOne000000000000001"  # default creator, public account
TWO = "-000FakeAcctTwo000000000000002"  # private account
PULL_URL = "https://media.example.test/videos/clip.mp4"
PHOTO_URLS = ["https://media.example.test/tt/a.jpg", "https://media.example.test/tt/b.jpg"]

VIDEO_INIT = "/v2/post/publish/video/init/"
INBOX_INIT = "/v2/post/publish/inbox/video/init/"
CONTENT_INIT = "/v2/post/publish/content/init/"
CREATOR_INFO = "/v2/post/publish/creator_info/query/"
STATUS = "/v2/post/publish/status/fetch/"
CANCEL = "/v2/post/publish/cancel/"
TOKEN = "/v2/oauth/token/"
REVOKE = "/v2/oauth/revoke/"
USER_INFO = "/v2/user/info/"


def pull(url=PULL_URL):
    return {"source": "PULL_FROM_URL", "video_url": url}


def file(size, chunk=None, count=None):
    chunk = size if chunk is None else chunk
    return {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
            "total_chunk_count": size // chunk if count is None else count}


def post_info(privacy="SELF_ONLY", **extra):
    info = {"privacy_level": privacy, "disable_duet": False, "disable_comment": False,
            "disable_stitch": False, "brand_content_toggle": False, "brand_organic_toggle": False,
            "is_aigc": False}
    info.update(extra)
    return {k: v for k, v in info.items() if v is not None}


def direct(source=None, privacy="SELF_ONLY", **extra):
    return {"post_info": post_info(privacy, **extra), "source_info": source or pull()}


def inbox(source=None, **body):
    return dict({"source_info": source or pull()}, **body)


def photo(mode="DIRECT_POST", images=None, cover=0, privacy="SELF_ONLY", **extra):
    info = {"title": "market day", "description": "three stalls #food"}
    if mode == "DIRECT_POST":
        info.update(privacy_level=privacy, disable_comment=False, auto_add_music=True,
                    brand_content_toggle=False, brand_organic_toggle=False)
    info.update(extra)
    return {"media_type": "PHOTO", "post_mode": mode, "post_info": {k: v for k, v in info.items() if v is not None},
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": cover,
                            "photo_images": list(PHOTO_URLS if images is None else images)}}


def data(resp):
    body = resp.json()
    assert body["error"]["code"] == "ok", body
    return body["data"]


def error(resp):
    """(http status, error.code) of an envelope response; checks the envelope is complete."""
    body = resp.json()
    assert set(body["error"]) == {"code", "message", "log_id"}, body
    assert body["error"]["log_id"] and resp.headers["x-tt-logid"] == body["error"]["log_id"]
    return resp.status, body["error"]["code"]
