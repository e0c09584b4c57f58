"""The control API (/_fake/): config, creators, grants, clock, errors."""

import time

import pytest

import fakectl
from fake_bodies import CREATOR_INFO, INBOX_INIT, ONE, TWO, VIDEO_INIT, data, direct, inbox


def test_health(fake):
    health = fake.ctl.health()
    assert health["ok"] is True and health["base_url"] == fake.base_url
    assert abs(health["now"] - time.time()) < 5


def test_config_merges_and_nested_keys_merge_one_level(fake):
    cfg = fake.ctl.set_config(daily_post_cap=3, rate_limits={"creator_info": 2})
    assert cfg["daily_post_cap"] == 3
    assert cfg["rate_limits"]["creator_info"] == 2 and cfg["rate_limits"]["video_init"] == 6
    assert fake.ctl.config()["rate_limits"]["status_fetch"] == 30


@pytest.mark.parametrize("update", [
    {"daily_post_capp": 3},
    {"rate_limits": {"creator_infos": 2}},
    {"webhook": {"urll": "x"}},
    {"chunk_units": "furlongs"},
    {"oauth_error_status": 418},
    {"creators": [{"open_id": "-000X"}]},  # no username
    {"creators": [{"open_id": "-000X", "username": "x", "colour": "red"}]},
    {"app_scopes": ["video.everything"]},
    {"default_creator": "-000Nobody"},
    {"webhook": {"url": "http://192.0.2.1/hook"}},
])
def test_bad_config_is_refused(fake, update):
    with pytest.raises(fakectl.ControlError):
        fake.ctl.set_config(update)


def test_creators_add_and_replace(fake):
    assert {c["username"] for c in fake.ctl.creators()} == {"acct_one", "acct_two"}
    added = fake.ctl.put_creator({"open_id": "-000New", "username": "newbie"})
    assert added["nickname"] == "newbie" and added["privacy_level_options"][0] == "PUBLIC_TO_EVERYONE"
    fake.ctl.put_creator({"open_id": "-000New", "username": "newbie", "nickname": "Renamed"})
    assert [c["nickname"] for c in fake.ctl.creators() if c["open_id"] == "-000New"] == ["Renamed"]
    with pytest.raises(fakectl.ControlError):
        fake.ctl.put_creator({"open_id": "-000Bad", "username": "bad", "privacy_level_options": ["EVERYONE"]})


def test_replacing_creators_through_config_keeps_usage(fake):
    fake.ctl.outside_posts(ONE, 3)
    fake.ctl.set_config(creators=[{"open_id": ONE, "username": "acct_one"}])
    assert [c["open_id"] for c in fake.ctl.creators()] == [ONE]
    assert fake.ctl.usage(ONE)["direct_posts_in_window"] == 3


def test_outside_posts_of_a_creator_count_once(fake_factory):
    creator = {"open_id": ONE, "username": "acct_one", "outside_posts": 4}
    fake = fake_factory({"creators": [creator]})
    fake.ctl.set_config(creators=[creator])  # replacing the creator does not post again
    fake.ctl.put_creator(creator)
    assert fake.ctl.usage(ONE)["direct_posts_in_window"] == 4


def test_removing_a_creator_kills_its_tokens(fake, api):
    fake.ctl.set_config(creators=[{"open_id": ONE, "username": "acct_one"}])
    two = fake.api(fake.ctl.grant(ONE)["access_token"])
    assert two.post_json(CREATOR_INFO).status == 200
    fake.ctl.set_config(creators=[{"open_id": TWO, "username": "acct_two"}], default_creator=TWO)
    assert two.post_json(CREATOR_INFO).status == 401


def test_grant_shortcut(fake):
    body = fake.ctl.grant(TWO, ["video.publish"])
    assert body["open_id"] == TWO and body["scope"] == "video.publish"
    assert fake.api(body["access_token"]).post_json(CREATOR_INFO).status == 200
    with pytest.raises(fakectl.ControlError):
        fake.ctl.grant(scopes=["video.everything"])
    with pytest.raises(fakectl.ControlError):
        fake.ctl.grant("-000Nobody")


def test_clock_advance_and_skew(fake):
    assert fake.ctl.clock()["offset_sec"] == 0
    assert fake.ctl.advance(10)["offset_sec"] == 10
    assert fake.ctl.advance(5)["offset_sec"] == 15
    c = fake.ctl.skew(-30)
    assert c["offset_sec"] == -30 and c["now"] < c["real_now"]


def test_emit_any_webhook_event(fake):
    event = fake.ctl.emit_webhook("post.publish.no_longer_publicaly_available", TWO,
                                  {"publish_id": "p", "post_id": "7", "publish_type": "DIRECT_PUBLISH"})
    assert event["event"] == "post.publish.no_longer_publicaly_available" and event["user_openid"] == TWO


def test_usage_view(fake, api):
    api.post_json(VIDEO_INIT, direct())
    api.post_json(INBOX_INIT, inbox())
    assert fake.ctl.usage("acct_one") == {"open_id": ONE, "direct_posts_in_window": 1, "pending_shares": 1,
                                          "active": True}


def test_publish_views(fake, api):
    pid = data(api.post_json(VIDEO_INIT, direct()))["publish_id"]
    view = fake.ctl.publish(pid)
    assert view["publish_id"] == pid and view["status"] == "PROCESSING_DOWNLOAD" and view["open_id"] == ONE
    assert [p["publish_id"] for p in fake.ctl.publishes()] == [pid]
    with pytest.raises(fakectl.ControlError):
        fake.ctl.publish("v_pub_url~v2-1.0")
    with pytest.raises(fakectl.ControlError):
        fake.ctl.user_post(pid)  # not a draft


def test_unknown_control_paths_and_methods(fake):
    assert fakectl.http_request("GET", fake.base_url + "/_fake/nothing").status == 404
    assert fakectl.http_request("DELETE", fake.base_url + "/_fake/ledger").status == 405
    resp = fakectl.http_request("POST", fake.base_url + "/_fake/config", b"not json",
                                {"Content-Type": "application/json"})
    assert resp.status == 400 and "error" in resp.json()


def test_reset_with_a_config(fake):
    fake.ctl.reset({"daily_post_cap": 2})
    assert fake.ctl.config()["daily_post_cap"] == 2
    fake.ctl.reset()
    assert fake.ctl.config()["daily_post_cap"] == 15
