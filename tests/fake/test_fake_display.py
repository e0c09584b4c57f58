"""Display API (§6): user info field filtering and scopes, video list and query."""

import pytest

from fake_bodies import ONE, TWO, USER_INFO, VIDEO_INIT, data, direct, error

ALL_USER_FIELDS = ("open_id,union_id,avatar_url,avatar_url_100,avatar_large_url,display_name,bio_description,"
                   "profile_deep_link,is_verified,username,follower_count,following_count,likes_count,video_count")


def test_user_info_returns_only_the_requested_fields(api):
    user = data(api.get(USER_INFO + "?fields=open_id,display_name,username,follower_count"))["user"]
    assert user == {"open_id": ONE, "display_name": "Account One", "username": "acct_one", "follower_count": 0}


def test_user_info_all_fields(fake, api):
    fake.ctl.put_creator({"open_id": ONE, "username": "acct_one", "nickname": "Account One", "follower_count": 1200,
                          "is_verified": True, "bio_description": "hello"})
    user = data(api.get(USER_INFO + "?fields=" + ALL_USER_FIELDS))["user"]
    assert set(user) == set(ALL_USER_FIELDS.split(","))
    assert user["follower_count"] == 1200 and user["is_verified"] is True and user["bio_description"] == "hello"


@pytest.mark.parametrize("query", ["", "?fields=", "?fields=open_id,password"])
def test_user_info_needs_known_fields(api, query):
    assert error(api.get(USER_INFO + query)) == (400, "invalid_params")


def test_user_info_fields_are_gated_by_scope(fake):
    basic = fake.api(fake.ctl.grant(scopes=["user.info.basic"])["access_token"])
    assert basic.get(USER_INFO + "?fields=open_id,display_name").status == 200
    assert error(basic.get(USER_INFO + "?fields=open_id,username")) == (400, "scope_permission_missed")
    assert error(basic.get(USER_INFO + "?fields=follower_count")) == (400, "scope_permission_missed")
    fake.ctl.set_config(userinfo_scope_error="scope_not_authorized")
    assert error(basic.get(USER_INFO + "?fields=username")) == (401, "scope_not_authorized")


def public_post(fake, api, title):
    pid = data(api.post_json(VIDEO_INIT, direct(privacy="PUBLIC_TO_EVERYONE", title=title)))["publish_id"]
    for _ in range(3):
        fake.ctl.advance_publish(pid)
    return fake.ctl.publish(pid)["post_ids"][0]


def test_video_list_and_query(fake, api):
    ids = []
    for i in range(3):
        ids.append(public_post(fake, api, "clip %d" % i))
        fake.ctl.advance(10)
    page = data(api.post_json("/v2/video/list/?fields=id,title,create_time", {"max_count": 2}))
    assert [v["id"] for v in page["videos"]] == ids[::-1][:2]  # newest first, ids as strings
    assert set(page["videos"][0]) == {"id", "title", "create_time"} and page["has_more"] is True
    rest = data(api.post_json("/v2/video/list/?fields=id", {"cursor": page["cursor"], "max_count": 2}))
    assert [v["id"] for v in rest["videos"]] == [ids[0]] and rest["has_more"] is False
    found = data(api.post_json("/v2/video/query/?fields=id,title", {"filters": {"video_ids": [ids[1], "123"]}}))
    assert found["videos"] == [{"id": ids[1], "title": "clip 1"}]
    other = fake.api(fake.ctl.grant(TWO)["access_token"])
    assert data(other.post_json("/v2/video/query/?fields=id", {"filters": {"video_ids": ids}}))["videos"] == []
    assert data(api.get(USER_INFO + "?fields=video_count"))["user"]["video_count"] == 3


@pytest.mark.parametrize("path,body", [
    ("/v2/video/list/?fields=id", {"max_count": 21}),
    ("/v2/video/list/?fields=id", {"max_count": 0}),
    ("/v2/video/list/?fields=nope", {}),
    ("/v2/video/list/", {}),
    ("/v2/video/query/?fields=id", {"filters": {"video_ids": [str(i) for i in range(21)]}}),
    ("/v2/video/query/?fields=id", {"filters": {"video_ids": []}}),
])
def test_video_endpoint_limits(api, path, body):
    assert error(api.post_json(path, body)) == (400, "invalid_params")


def test_video_endpoints_need_video_list_scope(fake):
    api = fake.api(fake.ctl.grant(scopes=["user.info.basic"])["access_token"])
    assert error(api.post_json("/v2/video/list/?fields=id", {})) == (401, "scope_not_authorized")
