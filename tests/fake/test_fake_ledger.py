"""The ledger (GET /_fake/ledger): requests in arrival order, completed posts with content hashes."""

import hashlib
import time

from fake_bodies import (CONTENT_INIT, CREATOR_INFO, INBOX_INIT, ONE, PHOTO_URLS, PULL_URL, STATUS, TWO, VIDEO_INIT,
                         data, direct, file, inbox, photo, pull)

REQUEST_KEYS = {"seq", "method", "path", "open_id", "t_mono", "t_fake", "status", "error_code", "fault",
                "publish_id", "range", "done", "t_done_mono"}


def test_requests_are_recorded_in_arrival_order(fake, api):
    before = time.monotonic()
    api.post_json(CREATOR_INFO)
    pid = data(api.post_json(VIDEO_INIT, direct()))["publish_id"]
    api.post_json(STATUS, {"publish_id": "nope"})
    fake.api().post_json(CREATOR_INFO)  # no token
    fake.ctl.health()  # control requests are not recorded
    reqs = fake.ctl.ledger()["requests"]
    assert [(r["method"], r["path"], r["open_id"], r["status"], r["error_code"]) for r in reqs] == [
        ("POST", CREATOR_INFO, ONE, 200, "ok"),
        ("POST", VIDEO_INIT, ONE, 200, "ok"),
        ("POST", STATUS, ONE, 400, "invalid_publish_id"),
        ("POST", CREATOR_INFO, None, 401, "access_token_invalid"),
    ]
    assert set(reqs[0]) == REQUEST_KEYS
    assert reqs[1]["publish_id"] == pid
    assert [r["seq"] for r in reqs] == [1, 2, 3, 4]
    monos = [r["t_mono"] for r in reqs]
    assert before <= monos[0] and monos == sorted(monos) and monos[-1] <= time.monotonic()  # same clock as ours


def test_since_returns_only_newer_requests(fake, api):
    api.post_json(CREATOR_INFO)
    mark = fake.ctl.ledger()["next_seq"]
    api.post_json(CREATOR_INFO)
    newer = fake.ctl.ledger(since=mark)["requests"]
    assert [r["seq"] for r in newer] == [mark + 1]


def test_open_id_is_recorded_even_for_a_dead_token(fake, api):
    fake.ctl.advance(90000)
    api.post_json(CREATOR_INFO)
    entry = fake.ctl.requests(CREATOR_INFO)[-1]
    assert (entry["open_id"], entry["status"]) == (ONE, 401)


def test_completed_posts(fake_factory):
    fake = fake_factory({"time_scale": 0})
    api = fake.api(fake.ctl.grant()["access_token"])
    video = b"\x00\x01" * 600
    d = data(api.post_json(VIDEO_INIT, direct(file(len(video)), privacy="PUBLIC_TO_EVERYONE", title="t1")))
    assert fake.ctl.posts() == []  # not complete until the bytes are processed
    api.put_chunk(d["upload_url"], video, 0, len(video))
    pull_pid = data(api.post_json(VIDEO_INIT, direct(pull(), title="t2")))["publish_id"]
    inbox_pid = data(api.post_json(INBOX_INIT, inbox(pull(), post_info={"title": "draft"})))["publish_id"]
    photo_pid = data(api.post_json(CONTENT_INIT, photo()))["publish_id"]
    two = fake.api(fake.ctl.grant(TWO)["access_token"])
    two.post_json(STATUS, {"publish_id": pull_pid})
    posts = fake.ctl.posts()
    assert [(p["publish_id"], p["open_id"], p["media_type"], p["publish_type"], p["source"], p["status"],
             p["privacy_level"], p["title"]) for p in posts] == [
        (d["publish_id"], ONE, "VIDEO", "DIRECT_PUBLISH", "FILE_UPLOAD", "PUBLISH_COMPLETE", "PUBLIC_TO_EVERYONE",
         "t1"),
        (pull_pid, ONE, "VIDEO", "DIRECT_PUBLISH", "PULL_FROM_URL", "PUBLISH_COMPLETE", "SELF_ONLY", "t2"),
        (inbox_pid, ONE, "VIDEO", "INBOX_SHARE", "PULL_FROM_URL", "SEND_TO_USER_INBOX", None, "draft"),
        (photo_pid, ONE, "PHOTO", "DIRECT_PUBLISH", "PULL_FROM_URL", "PUBLISH_COMPLETE", "SELF_ONLY", "market day"),
    ]
    assert posts[0]["sha256"] == hashlib.sha256(video).hexdigest() and posts[0]["size"] == len(video)
    assert posts[1]["sha256"] == hashlib.sha256(PULL_URL.encode()).hexdigest() and posts[1]["size"] is None
    assert posts[3]["sha256"] == hashlib.sha256("\n".join(PHOTO_URLS).encode()).hexdigest()
    assert posts[3]["urls"] == PHOTO_URLS and posts[3]["description"] == "three stalls #food"
    assert posts[0]["post_info"]["brand_content_toggle"] is False
    assert all(p["created_mono"] <= p["completed_mono"] for p in posts)
    assert [p["seq"] for p in posts] == [1, 2, 3, 4]


def test_each_publish_is_recorded_once(fake_factory):
    fake = fake_factory({"time_scale": 0})
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(INBOX_INIT, inbox()))["publish_id"]
    fake.ctl.user_post(pid)
    fake.ctl.user_post(pid)
    assert [p["publish_id"] for p in fake.ctl.posts()] == [pid]


def test_reset_clears_state_and_ledger(fake, api):
    api.post_json(VIDEO_INIT, direct())
    fake.ctl.add_fault(kind="status", status=500)
    fake.ctl.set_config(daily_post_cap=1)
    fake.ctl.advance(100)
    fake.ctl.reset()
    assert fake.ctl.ledger()["requests"] == [] and fake.ctl.publishes() == []
    assert fake.ctl.faults() == [] and fake.ctl.tokens()["all"] == []
    assert fake.ctl.config()["daily_post_cap"] == 15 and fake.ctl.clock()["offset_sec"] == 0
    assert fake.api(api.token).post_json(CREATOR_INFO).status == 401  # tokens are gone too
