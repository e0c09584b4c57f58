"""The three init endpoints (§2.2, §2.3, §2.6): shapes, validation and policy errors."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from fake_bodies import (CONTENT_INIT, INBOX_INIT, ONE, TWO, VIDEO_INIT, data, direct, error, file, inbox,
                         photo, post_info, pull)

MB = 1024 * 1024


# --- shapes ---

def test_direct_pull_init(api):
    d = data(api.post_json(VIDEO_INIT, direct(pull())))
    assert set(d) == {"publish_id"}
    assert re.fullmatch(r"v_pub_url~v2-1\.7[0-9]{18}", d["publish_id"])


def test_direct_file_init_gives_an_upload_url_on_this_server(fake, api):
    d = data(api.post_json(VIDEO_INIT, direct(file(4 * MB))))
    assert set(d) == {"publish_id", "upload_url"}
    assert re.fullmatch(r"v_pub_file~v2-1\.7[0-9]{18}", d["publish_id"]) and len(d["publish_id"]) <= 64
    url = d["upload_url"]
    assert len(url) <= 256 and url.startswith(fake.base_url + "/upload/video/?")
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"upload_id", "upload_token"}


def test_public_base_url_changes_the_upload_url(fake, api):
    fake.ctl.set_config(public_base_url="http://localhost:%d" % urlsplit(fake.base_url).port)
    url = data(api.post_json(VIDEO_INIT, direct(file(1000))))["upload_url"]
    assert url.startswith("http://localhost:")


@pytest.mark.parametrize("source,prefix", [(pull(), r"v_inbox_url~v2\."), (file(1000), r"v_inbox_file~v2\.")])
def test_inbox_init(api, source, prefix):
    d = data(api.post_json(INBOX_INIT, inbox(source)))
    assert re.fullmatch(prefix + r"7[0-9]{18}", d["publish_id"])
    assert ("upload_url" in d) == (source["source"] == "FILE_UPLOAD")


def test_inbox_init_accepts_and_ignores_post_info(fake, api):
    body = inbox(post_info={"title": "draft caption", "privacy_level": "NOT_A_LEVEL", "disable_duet": "x"})
    publish_id = data(api.post_json(INBOX_INIT, body))["publish_id"]
    assert fake.ctl.publish(publish_id)["privacy_level"] is None


def test_inbox_init_needs_source_info(api):
    assert error(api.post_json(INBOX_INIT, {"post_info": {"title": "x"}})) == (400, "invalid_params")


@pytest.mark.parametrize("mode", ["DIRECT_POST", "MEDIA_UPLOAD"])
def test_photo_init(api, mode):
    d = data(api.post_json(CONTENT_INIT, photo(mode)))
    assert set(d) == {"publish_id"}
    assert re.fullmatch(r"p_pub_url~v2\.7[0-9]{18}", d["publish_id"])


# --- shape errors: 400 invalid_params ---

@pytest.mark.parametrize("body", [
    {"source_info": pull()},  # no post_info
    {"post_info": post_info()},  # no source_info
    direct(privacy=None),
    direct(privacy="PRIVATE"),
    direct(source={"source": "UPLOAD"}),
    direct(source={"source": "PULL_FROM_URL"}),
    direct(disable_duet="false"),
    direct(is_aigc=1),
    direct(video_cover_timestamp_ms="1500"),
    direct(title=42),
])
def test_direct_init_shape_errors(api, body):
    assert error(api.post_json(VIDEO_INIT, body)) == (400, "invalid_params")


def test_body_must_be_json_with_json_content_type(api):
    assert error(api.post_json(VIDEO_INIT, direct(), content_type="text/plain")) == (400, "invalid_params")
    assert error(api.post_json(VIDEO_INIT, raw=b"{not json")) == (400, "invalid_params")
    assert error(api.post_json(VIDEO_INIT, raw=b"[1, 2]")) == (400, "invalid_params")
    assert api.post_json(VIDEO_INIT, direct(), content_type="application/json").status == 200


@pytest.mark.parametrize("key,limit", [("title", 2200)])
def test_video_title_limit_counts_utf16_code_units(api, key, limit):
    assert api.post_json(VIDEO_INIT, direct(title="a" * limit)).status == 200
    assert error(api.post_json(VIDEO_INIT, direct(title="a" * (limit + 1)))) == (400, "invalid_params")
    emoji = "\U0001F600"  # 2 UTF-16 code units, 1 code point
    assert api.post_json(VIDEO_INIT, direct(title=emoji * (limit // 2))).status == 200
    assert error(api.post_json(VIDEO_INIT, direct(title=emoji * (limit // 2) + "a"))) == (400, "invalid_params")


@pytest.mark.parametrize("key,limit", [("title", 90), ("description", 4000)])
def test_photo_text_limits_count_utf16_code_units(fake, key, limit):
    fake.ctl.set_config(rate_limits={"content_init": None})
    api = fake.api(fake.ctl.grant()["access_token"])
    for mode in ("DIRECT_POST", "MEDIA_UPLOAD"):
        assert api.post_json(CONTENT_INIT, photo(mode, **{key: "\U0001F600" * (limit // 2)})).status == 200
        bad = photo(mode, **{key: "\U0001F600" * (limit // 2) + "x"})
        assert error(api.post_json(CONTENT_INIT, bad)) == (400, "invalid_params")


def test_brand_content_toggle_is_required_in_strict_mode(fake, api):
    body = direct(brand_content_toggle=None)
    assert error(api.post_json(VIDEO_INIT, body)) == (400, "invalid_params")
    fake.ctl.set_config(strict=False)
    assert api.post_json(VIDEO_INIT, body).status == 200
    fake.ctl.set_config(strict=True, require_brand_toggles=False)
    assert api.post_json(VIDEO_INIT, body).status == 200


def test_photo_direct_post_needs_both_brand_toggles_in_strict_mode(fake, api):
    for missing in ("brand_content_toggle", "brand_organic_toggle"):
        assert error(api.post_json(CONTENT_INIT, photo(**{missing: None}))) == (400, "invalid_params")
    assert api.post_json(CONTENT_INIT, photo("MEDIA_UPLOAD")).status == 200  # not needed for drafts


def test_branded_content_cannot_be_self_only_in_strict_mode(fake, api):
    body = direct(privacy="SELF_ONLY", brand_content_toggle=True)
    assert error(api.post_json(VIDEO_INIT, body)) == (400, "invalid_params")
    assert api.post_json(VIDEO_INIT, direct(privacy="PUBLIC_TO_EVERYONE", brand_content_toggle=True)).status == 200
    fake.ctl.set_config(reject_branded_self_only=False)
    assert api.post_json(VIDEO_INIT, body).status == 200


@pytest.mark.parametrize("change", [
    {"media_type": "VIDEO"},
    {"post_mode": "DIRECT POST"},
    {"post_mode": None},
    {"source_info": {"source": "FILE_UPLOAD", "photo_images": ["https://media.example.test/a.jpg"],
                     "photo_cover_index": 0}},
    {"source_info": {"source": "PULL_FROM_URL", "photo_images": [], "photo_cover_index": 0}},
    {"source_info": {"source": "PULL_FROM_URL", "photo_images": ["https://media.example.test/a.jpg"] * 36,
                     "photo_cover_index": 0}},
    {"source_info": {"source": "PULL_FROM_URL", "photo_images": ["https://media.example.test/a.jpg"]}},
    {"source_info": {"source": "PULL_FROM_URL", "photo_images": ["https://media.example.test/a.jpg"],
                     "photo_cover_index": 1}},
    {"post_info": {"title": "no privacy", "brand_content_toggle": False, "brand_organic_toggle": False}},
])
def test_photo_init_shape_errors(api, change):
    body = dict(photo(), **change)
    assert error(api.post_json(CONTENT_INIT, body)) == (400, "invalid_params")


def test_photo_accepts_35_images_and_a_last_cover(api):
    images = ["https://media.example.test/p/%d.jpg" % i for i in range(35)]
    assert api.post_json(CONTENT_INIT, photo(images=images, cover=34)).status == 200


def test_photo_media_upload_needs_a_recent_app(fake, api):
    fake.ctl.put_creator({"open_id": ONE, "username": "acct_one", "app_version_ok": False})
    assert error(api.post_json(CONTENT_INIT, photo("MEDIA_UPLOAD"))) == (400, "app_version_check_failed")
    assert api.post_json(CONTENT_INIT, photo("DIRECT_POST")).status == 200


# --- privacy and audit policy (403) ---

def test_privacy_level_must_be_among_the_creators_options(fake, api):
    mismatch = (403, "privacy_level_option_mismatch")
    assert error(api.post_json(VIDEO_INIT, direct(privacy="FOLLOWER_OF_CREATOR"))) == mismatch
    assert error(api.post_json(CONTENT_INIT, photo(privacy="FOLLOWER_OF_CREATOR"))) == mismatch
    private = fake.api(fake.ctl.grant(TWO)["access_token"])
    assert private.post_json(VIDEO_INIT, direct(privacy="FOLLOWER_OF_CREATOR")).status == 200
    assert error(private.post_json(VIDEO_INIT, direct(privacy="PUBLIC_TO_EVERYONE"))) == mismatch


UNAUDITED = "unaudited_client_can_only_post_to_private_accounts"


def test_unaudited_client_only_posts_self_only_to_private_accounts(fake, api):
    fake.ctl.set_config(audited=False)
    private = fake.api(fake.ctl.grant(TWO)["access_token"])
    # public account: refused whatever the privacy
    assert error(api.post_json(VIDEO_INIT, direct(privacy="SELF_ONLY"))) == (403, UNAUDITED)
    assert error(api.post_json(CONTENT_INIT, photo(privacy="SELF_ONLY"))) == (403, UNAUDITED)
    # private account: only SELF_ONLY (strict "either" trigger)
    assert error(private.post_json(VIDEO_INIT, direct(privacy="MUTUAL_FOLLOW_FRIENDS"))) == (403, UNAUDITED)
    assert private.post_json(VIDEO_INIT, direct(privacy="SELF_ONLY")).status == 200
    # drafts are not direct posts
    assert api.post_json(INBOX_INIT, inbox()).status == 200
    # lenient trigger: only the account matters
    fake.ctl.set_config(unaudited_trigger="account")
    assert private.post_json(VIDEO_INIT, direct(privacy="MUTUAL_FOLLOW_FRIENDS")).status == 200


# --- URL ownership (§2.9) ---

@pytest.mark.parametrize("url,ok", [
    ("https://media.example.test/v/a.mp4", True),  # verified domain
    ("https://MEDIA.example.test/v/a.mp4", True),  # hosts are case-insensitive
    ("https://video.media.example.test/a.mp4", True),  # subdomain of a verified domain
    ("https://media.example.test:8443/a.mp4", True),
    ("https://example.test/a.mp4", False),  # parent of a verified domain
    ("https://evilmedia.example.test/a.mp4", False),  # suffix without a dot boundary
    ("https://media.example.test.evil.test/a.mp4", False),
    ("http://media.example.test/a.mp4", False),  # not https
    ("https://cdn.example.test/tikd/v/a.mp4", True),  # verified URL prefix
    ("https://cdn.example.test/tikd/", True),
    ("https://cdn.example.test/tikdx/a.mp4", False),  # does not start with the exact prefix
    ("https://cdn.example.test/TIKD/a.mp4", False),
    ("https://cdn.example.test/other/a.mp4", False),
    ("https://127.0.0.1/a.mp4", False),  # IP hosts
    ("https://[::1]/a.mp4", False),
    ("https://2130706433/a.mp4", False),
    ("https://user@media.example.test/a.mp4", False),
    ("ftp://media.example.test/a.mp4", False),
])
def test_url_ownership(fake, url, ok):
    fake.ctl.set_config(rate_limits={"video_init": None, "inbox_init": None})
    api = fake.api(fake.ctl.grant()["access_token"])
    for path, body in ((VIDEO_INIT, direct(pull(url))), (INBOX_INIT, inbox(pull(url)))):
        resp = api.post_json(path, body)
        if ok:
            assert resp.status == 200, resp
        else:
            assert error(resp) == (403, "url_ownership_unverified")


def test_every_photo_url_must_be_verified(api):
    images = ["https://media.example.test/a.jpg", "https://elsewhere.example.test/b.jpg"]
    assert error(api.post_json(CONTENT_INIT, photo(images=images))) == (403, "url_ownership_unverified")


def test_verified_domains_and_prefixes_are_configurable(fake, api):
    fake.ctl.set_config(verified_domains=["static.example.org"], verified_url_prefixes=[])
    assert api.post_json(VIDEO_INIT, direct(pull("https://v.static.example.org/a.mp4"))).status == 200
    assert error(api.post_json(VIDEO_INIT, direct(pull("https://media.example.test/a.mp4")))) == (
        403, "url_ownership_unverified")
    with pytest.raises(Exception):
        fake.ctl.set_config(verified_url_prefixes=["https://10.0.0.1/x/"])  # prefixes need a named host
