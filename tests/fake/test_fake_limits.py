"""Rate limits per token and endpoint (§3.1, §6.5) and the posting caps (§3.2)."""

import threading

import pytest

import fakectl
from fake_bodies import (CANCEL, CONTENT_INIT, CREATOR_INFO, INBOX_INIT, ONE, STATUS, TWO, USER_INFO, VIDEO_INIT,
                         data, direct, error, inbox, photo, pull)

NO_CAPS = {"daily_post_cap": 10000, "pending_share_cap": 10000}
LONG_TOKENS = {"access_token_ttl_sec": 10 * 86400}  # for tests that jump a day ahead


def hammer(api, path, body, times, method="POST"):
    codes = []
    for _ in range(times):
        resp = api.get(path) if method == "GET" else api.post_json(path, body)
        codes.append(resp.status)
    return codes


def publish_id(fake):
    api = fake.api(fake.ctl.grant()["access_token"])
    return data(api.post_json(INBOX_INIT, inbox()))["publish_id"]


ENDPOINT_LIMITS = [
    (VIDEO_INIT, lambda f: direct(), 6, "POST"),
    (INBOX_INIT, lambda f: inbox(), 6, "POST"),
    (CONTENT_INIT, lambda f: photo(), 6, "POST"),
    (CREATOR_INFO, lambda f: None, 20, "POST"),
    (STATUS, lambda f: {"publish_id": publish_id(f)}, 30, "POST"),
    (USER_INFO + "?fields=open_id", lambda f: None, 600, "GET"),
    ("/v2/video/list/?fields=id", lambda f: {}, 600, "POST"),
    ("/v2/video/query/?fields=id", lambda f: {"filters": {"video_ids": ["1"]}}, 600, "POST"),
]


@pytest.mark.parametrize("path,make_body,limit,method", ENDPOINT_LIMITS)
def test_default_per_minute_limits(fake_factory, path, make_body, limit, method):
    fake = fake_factory(NO_CAPS)
    body = make_body(fake)
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, path, body, limit, method) == [200] * limit
    resp = api.get(path) if method == "GET" else api.post_json(path, body)
    assert error(resp) == (429, "rate_limit_exceeded")
    assert "retry-after" not in resp.headers  # undocumented, so not sent by default
    # another token of the same creator has its own bucket
    other = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(other, path, body, 1, method) == [200]
    # the window slides on the fake clock
    fake.ctl.advance(59)
    assert hammer(api, path, body, 1, method) == [429]
    fake.ctl.advance(1.5)
    assert hammer(api, path, body, limit, method) == [200] * limit


def test_endpoints_have_separate_buckets_by_default(fake_factory):
    fake = fake_factory(NO_CAPS)
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, VIDEO_INIT, direct(), 7) == [200] * 6 + [429]
    assert hammer(api, INBOX_INIT, inbox(), 1) == [200]
    assert hammer(api, CONTENT_INIT, photo(), 1) == [200]


def test_init_endpoints_can_share_one_bucket(fake_factory):
    fake = fake_factory(dict(NO_CAPS, shared_init_bucket=True))
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, VIDEO_INIT, direct(), 2) == [200, 200]
    assert hammer(api, INBOX_INIT, inbox(), 2) == [200, 200]
    assert hammer(api, CONTENT_INIT, photo(), 2) == [200, 200]
    for path, body in ((VIDEO_INIT, direct()), (INBOX_INIT, inbox()), (CONTENT_INIT, photo())):
        assert error(api.post_json(path, body)) == (429, "rate_limit_exceeded")
    assert hammer(api, CREATOR_INFO, None, 1) == [200]


def test_limits_window_and_retry_after_are_configurable(fake_factory):
    fake = fake_factory({"rate_limits": {"creator_info": 2}, "rate_limit_window_sec": 10,
                         "rate_limit_retry_after": True})
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, CREATOR_INFO, None, 2) == [200, 200]
    fake.ctl.advance(4)
    resp = api.post_json(CREATOR_INFO)
    assert resp.status == 429 and resp.headers["retry-after"] in ("6", "7")
    fake.ctl.advance(6.1)
    assert hammer(api, CREATOR_INFO, None, 2) == [200, 200]


def test_cancel_has_no_limit_by_default(fake_factory):
    fake = fake_factory(NO_CAPS)
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    codes = hammer(api, CANCEL, {"publish_id": pid}, 40)
    assert codes[0] == 200 and set(codes[1:]) == {400}


def test_rejected_requests_count_but_429s_do_not(fake_factory):
    fake = fake_factory(NO_CAPS)
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, VIDEO_INIT, {"bad": 1}, 6) == [400] * 6
    assert hammer(api, VIDEO_INIT, direct(), 3) == [429] * 3
    fake.ctl.advance(60)
    assert hammer(api, VIDEO_INIT, direct(), 1) == [200]


# --- daily direct-post cap ---

def test_daily_post_cap(fake_factory):
    fake = fake_factory(dict(LONG_TOKENS, rate_limits={"video_init": None, "content_init": None}))
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, VIDEO_INIT, direct(), 10) == [200] * 10
    assert hammer(api, CONTENT_INIT, photo(), 5) == [200] * 5  # photo direct posts count too
    assert error(api.post_json(VIDEO_INIT, direct())) == (403, "spam_risk_too_many_posts")
    assert error(api.post_json(CONTENT_INIT, photo())) == (403, "spam_risk_too_many_posts")
    assert error(api.post_json(CREATOR_INFO)) == (200, "spam_risk_too_many_posts")
    assert api.post_json(INBOX_INIT, inbox()).status == 200  # drafts are not direct posts
    other = fake.api(fake.ctl.grant(TWO)["access_token"])
    assert other.post_json(VIDEO_INIT, direct()).status == 200  # per creator
    fake.ctl.advance(86400 - 1)
    assert error(api.post_json(VIDEO_INIT, direct())) == (403, "spam_risk_too_many_posts")
    fake.ctl.advance(2)  # rolling 24 h window
    assert api.post_json(VIDEO_INIT, direct()).status == 200


def test_daily_cap_count_and_window_are_configurable(fake_factory):
    fake = fake_factory({"daily_post_cap": 2, "daily_post_window_sec": 100})
    api = fake.api(fake.ctl.grant()["access_token"])
    assert hammer(api, VIDEO_INIT, direct(), 3) == [200, 200, 403]
    fake.ctl.advance(101)
    assert hammer(api, VIDEO_INIT, direct(), 1) == [200]
    fake.ctl.put_creator({"open_id": TWO, "username": "acct_two", "private_account": True, "daily_post_cap": 1})
    two = fake.api(fake.ctl.grant(TWO)["access_token"])
    assert hammer(two, VIDEO_INIT, direct(), 2) == [200, 403]


def test_outside_poster_eats_the_shared_cap(fake):
    api = fake.api(fake.ctl.grant()["access_token"])
    usage = fake.ctl.outside_posts(ONE, 14)
    assert usage["direct_posts_in_window"] == 14
    assert api.post_json(VIDEO_INIT, direct()).status == 200
    assert error(api.post_json(VIDEO_INIT, direct())) == (403, "spam_risk_too_many_posts")


def test_outside_posts_in_creator_config(fake_factory):
    fake = fake_factory({"creators": [{"open_id": ONE, "username": "acct_one", "outside_posts": 15}]})
    api = fake.api(fake.ctl.grant()["access_token"])
    assert error(api.post_json(VIDEO_INIT, direct())) == (403, "spam_risk_too_many_posts")


# --- pending inbox shares ---

def test_pending_share_cap_per_24h_window(fake_factory):
    fake = fake_factory(dict(LONG_TOKENS, time_scale=0, rate_limits={"inbox_init": None, "content_init": None}))
    api = fake.api(fake.ctl.grant()["access_token"])
    pids = [data(api.post_json(INBOX_INIT, inbox()))["publish_id"] for _ in range(4)]
    assert api.post_json(CONTENT_INIT, photo("MEDIA_UPLOAD")).status == 200  # photo drafts count
    assert error(api.post_json(INBOX_INIT, inbox())) == (403, "spam_risk_too_many_pending_share")
    assert error(api.post_json(CONTENT_INIT, photo("MEDIA_UPLOAD"))) == (403, "spam_risk_too_many_pending_share")
    assert api.post_json(VIDEO_INIT, direct()).status == 200  # direct posts are not shares
    fake.ctl.user_post(pids[0])  # strict reading: posting a draft does not free a slot
    assert error(api.post_json(INBOX_INIT, inbox())) == (403, "spam_risk_too_many_pending_share")
    fake.ctl.advance(86401)
    assert api.post_json(INBOX_INIT, inbox()).status == 200


def test_pending_share_cap_concurrent_mode(fake_factory):
    fake = fake_factory({"time_scale": 0, "pending_share_mode": "concurrent", "pending_share_cap": 6,
                         "rate_limits": {"inbox_init": None}})
    api = fake.api(fake.ctl.grant()["access_token"])
    pids = [data(api.post_json(INBOX_INIT, inbox()))["publish_id"] for _ in range(6)]
    assert error(api.post_json(INBOX_INIT, inbox())) == (403, "spam_risk_too_many_pending_share")
    fake.ctl.user_post(pids[0])  # the user posts a draft: the slot comes back
    assert api.post_json(INBOX_INIT, inbox()).status == 200


# --- active users and bans ---

def test_unaudited_client_active_user_cap(fake_factory):
    creators = [{"open_id": "-000U%d" % i, "username": "u%d" % i, "private_account": True} for i in range(6)]
    fake = fake_factory(dict(LONG_TOKENS, audited=False, creators=creators, default_creator="-000U0"))
    apis = [fake.api(fake.ctl.grant(c["open_id"])["access_token"]) for c in creators]
    for api in apis[:5]:
        assert api.post_json(VIDEO_INIT, direct()).status == 200
    assert error(apis[5].post_json(VIDEO_INIT, direct())) == (403, "reached_active_user_cap")
    assert error(apis[5].post_json(INBOX_INIT, inbox())) == (403, "reached_active_user_cap")
    assert apis[0].post_json(VIDEO_INIT, direct()).status == 200  # already active
    fake.ctl.advance(86401)
    assert apis[5].post_json(VIDEO_INIT, direct()).status == 200


def test_audited_active_user_cap_is_configurable(fake):
    fake.ctl.set_config(active_user_cap=1)
    one = fake.api(fake.ctl.grant(ONE)["access_token"])
    two = fake.api(fake.ctl.grant(TWO)["access_token"])
    assert one.post_json(VIDEO_INIT, direct()).status == 200
    assert error(two.post_json(VIDEO_INIT, direct())) == (403, "reached_active_user_cap")


def test_banned_creator(fake):
    fake.ctl.put_creator({"open_id": ONE, "username": "acct_one", "banned": True})
    api = fake.api(fake.ctl.grant()["access_token"])
    for path, body in ((VIDEO_INIT, direct()), (INBOX_INIT, inbox()), (CONTENT_INIT, photo())):
        assert error(api.post_json(path, body)) == (403, "spam_risk_user_banned_from_posting")


def test_caps_hold_under_concurrent_inits(fake_factory):
    fake = fake_factory({"daily_post_cap": 3, "rate_limits": {"video_init": None}})
    token = fake.ctl.grant()["access_token"]
    results = []

    def worker():
        api = fakectl.Api(fake.base_url, token)
        results.append(api.post_json(VIDEO_INIT, direct()).status)
        api.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [200] * 3 + [403] * 7
