"""creator_info/query (§2.1): per-creator data, and cap errors answered with HTTP 200."""

from fake_bodies import CREATOR_INFO, ONE, TWO, VIDEO_INIT, data, direct, error

FIELDS = {"creator_avatar_url", "creator_username", "creator_nickname", "privacy_level_options",
          "comment_disabled", "duet_disabled", "stitch_disabled", "max_video_post_duration_sec"}


def test_public_account_defaults(api):
    info = data(api.post_json(CREATOR_INFO))
    assert set(info) == FIELDS
    assert info["creator_username"] == "acct_one" and info["creator_nickname"] == "Account One"
    assert info["privacy_level_options"] == ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert (info["comment_disabled"], info["duet_disabled"], info["stitch_disabled"]) == (False, False, False)
    assert info["max_video_post_duration_sec"] == 300


def test_private_account_defaults(fake):
    tok = fake.ctl.grant(TWO)["access_token"]
    info = data(fake.api(tok).post_json(CREATOR_INFO))
    assert info["privacy_level_options"] == ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
    assert info["duet_disabled"] is True and info["stitch_disabled"] is True


def test_per_creator_configuration(fake):
    fake.ctl.put_creator({"open_id": "-000Custom", "username": "custom", "nickname": "Custom Name",
                          "comment_disabled": True, "stitch_disabled": True, "max_video_post_duration_sec": 600,
                          "privacy_level_options": ["SELF_ONLY"]})
    tok = fake.ctl.grant("-000Custom")["access_token"]
    info = data(fake.api(tok).post_json(CREATOR_INFO))
    assert info["creator_nickname"] == "Custom Name"
    assert info["privacy_level_options"] == ["SELF_ONLY"]
    assert (info["comment_disabled"], info["duet_disabled"], info["stitch_disabled"]) == (True, False, True)
    assert info["max_video_post_duration_sec"] == 600


def test_accepts_no_body_and_empty_object(api):
    assert api.post_json(CREATOR_INFO).status == 200
    assert api.post_json(CREATOR_INFO, {}).status == 200


def test_daily_cap_reported_with_http_200(fake, api):
    fake.ctl.outside_posts(ONE, 15)
    assert error(api.post_json(CREATOR_INFO)) == (200, "spam_risk_too_many_posts")


def test_banned_reported_with_http_200(fake, api):
    fake.ctl.put_creator({"open_id": ONE, "username": "acct_one", "banned": True})
    assert error(api.post_json(CREATOR_INFO)) == (200, "spam_risk_user_banned_from_posting")


def test_active_user_cap_reported_with_http_200(fake):
    fake.ctl.set_config(active_user_cap=1)
    one = fake.api(fake.ctl.grant(ONE)["access_token"])
    assert one.post_json(VIDEO_INIT, direct()).status == 200
    two = fake.api(fake.ctl.grant(TWO)["access_token"])
    assert error(two.post_json(CREATOR_INFO)) == (200, "reached_active_user_cap")
    assert one.post_json(CREATOR_INFO).status == 200  # already active: not blocked
