"""Status fetch and the publish state machine (§2.7, §2.11), cancel (§2.8)."""

import re

import pytest

from fakectl import wait_until
from fake_bodies import (CANCEL, CONTENT_INIT, INBOX_INIT, STATUS, TWO, VIDEO_INIT, data, direct, error, file,
                         inbox, photo, pull)

TWO_POW_53 = 2 ** 53
SLOW = {"processing": {"download_sec": 10, "processing_sec": 10, "moderation_sec": 10}}


@pytest.fixture
def slow(fake_factory):
    return fake_factory(SLOW)


@pytest.fixture
def sapi(slow):
    return slow.api(slow.ctl.grant()["access_token"])


def status(api, publish_id):
    return data(api.post_json(STATUS, {"publish_id": publish_id}))


def test_file_upload_direct_public_sequence(slow, sapi):
    d = data(sapi.post_json(VIDEO_INIT, direct(file(1000), privacy="PUBLIC_TO_EVERYONE")))
    pid = d["publish_id"]
    assert status(sapi, pid) == {"status": "PROCESSING_UPLOAD", "publicaly_available_post_id": [],
                                 "uploaded_bytes": 0}
    slow.ctl.advance(3000)  # nothing moves before the bytes arrive
    assert status(sapi, pid)["status"] == "PROCESSING_UPLOAD"
    assert sapi.put_chunk(d["upload_url"], b"x" * 1000, 0, 1000).status == 201
    assert status(sapi, pid) == {"status": "PROCESSING_UPLOAD", "publicaly_available_post_id": [],
                                 "uploaded_bytes": 1000}
    slow.ctl.advance(10)
    assert status(sapi, pid) == {"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [],
                                 "uploaded_bytes": 1000}
    slow.ctl.advance(10)  # moderation
    s = status(sapi, pid)
    assert s["status"] == "PUBLISH_COMPLETE" and len(s["publicaly_available_post_id"]) == 1
    assert s["publicaly_available_post_id"][0] > TWO_POW_53


def test_post_ids_are_bare_json_integers_above_2_pow_53(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull(), privacy="PUBLIC_TO_EVERYONE")))["publish_id"]
    slow.ctl.advance(30)
    raw = sapi.post_json(STATUS, {"publish_id": pid}).text
    match = re.search(r'"publicaly_available_post_id":\[([0-9]+)\]', raw)
    assert match, raw  # a bare number: no quotes
    digits = match.group(1)
    assert len(digits) == 19 and int(digits) > TWO_POW_53 and int(digits) < 2 ** 63
    assert float(digits) != int(digits)  # a double would round it


def test_pull_direct_sequence_with_download_progress(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull(), privacy="SELF_ONLY")))["publish_id"]
    first = status(sapi, pid)
    assert first["status"] == "PROCESSING_DOWNLOAD" and "uploaded_bytes" not in first
    slow.ctl.advance(5)
    half = status(sapi, pid)
    assert half["status"] == "PROCESSING_DOWNLOAD" and 0 < half["downloaded_bytes"] < 10_000_000
    slow.ctl.advance(5)
    s = status(sapi, pid)
    assert s["status"] == "PROCESSING_DOWNLOAD" and s["downloaded_bytes"] == 10_000_000  # processing
    slow.ctl.advance(10)
    assert status(sapi, pid)["status"] == "PUBLISH_COMPLETE"
    slow.ctl.advance(1000)
    assert status(sapi, pid)["publicaly_available_post_id"] == []  # SELF_ONLY never gets an id


def test_a_big_clock_jump_walks_every_step(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull(), privacy="PUBLIC_TO_EVERYONE")))["publish_id"]
    slow.ctl.advance(31)
    s = status(sapi, pid)
    assert s["status"] == "PUBLISH_COMPLETE" and len(s["publicaly_available_post_id"]) == 1
    events = [e["event"] for e in slow.ctl.webhooks()["events"]]
    assert events == ["post.publish.complete", "post.publish.publicly_available"]


def test_control_advance_moves_one_step_at_a_time(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull(), privacy="PUBLIC_TO_EVERYONE")))["publish_id"]
    assert slow.ctl.advance_publish(pid)["phase"] == "processing"
    assert slow.ctl.advance_publish(pid)["status"] == "PUBLISH_COMPLETE"
    assert len(slow.ctl.advance_publish(pid)["post_ids"]) == 1
    with pytest.raises(Exception):
        slow.ctl.advance_publish(pid)  # nothing left


def test_time_scale_zero_is_instant(fake_factory):
    fake = fake_factory({"time_scale": 0})
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(VIDEO_INIT, direct(pull(), privacy="PUBLIC_TO_EVERYONE")))["publish_id"]
    s = status(api, pid)
    assert s["status"] == "PUBLISH_COMPLETE" and len(s["publicaly_available_post_id"]) == 1


def test_time_scale_scales_the_delays(fake_factory):
    fake = fake_factory(dict(SLOW, time_scale=0.5))
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    fake.ctl.advance(10.5)  # 5 s download + 5 s processing
    assert status(api, pid)["status"] == "PUBLISH_COMPLETE"


def test_processing_runs_on_real_time_too(fake_factory):
    fake = fake_factory({"time_scale": 0.01})  # 30 ms download + 30 ms processing
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    wait_until(lambda: fake.ctl.webhooks()["events"], message="the background engine")  # no request needed
    assert status(api, pid)["status"] == "PUBLISH_COMPLETE"


def test_inbox_sequence_and_simulated_user_posts(slow, sapi):
    pid = data(sapi.post_json(INBOX_INIT, inbox(pull())))["publish_id"]
    slow.ctl.advance(20)
    assert status(sapi, pid) == {"status": "SEND_TO_USER_INBOX", "publicaly_available_post_id": [],
                                 "downloaded_bytes": 10_000_000}
    slow.ctl.advance(80000)
    assert status(sapi, pid)["status"] == "SEND_TO_USER_INBOX"  # waits for the user
    slow.ctl.user_post(pid, public=True)
    assert status(sapi, pid)["status"] == "PUBLISH_COMPLETE"
    slow.ctl.advance(10)
    slow.ctl.user_post(pid, public=True)  # a draft can make several posts
    slow.ctl.advance(10)
    assert len(status(sapi, pid)["publicaly_available_post_id"]) == 2


def test_inbox_auto_post_option(fake_factory):
    fake = fake_factory({"processing": dict(SLOW["processing"], inbox_auto_post_sec=5)})
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(INBOX_INIT, inbox(pull())))["publish_id"]
    fake.ctl.advance(20)
    assert status(api, pid)["status"] == "SEND_TO_USER_INBOX"
    fake.ctl.advance(5)
    assert status(api, pid)["status"] == "PUBLISH_COMPLETE"


@pytest.mark.parametrize("mode,end", [("DIRECT_POST", "PUBLISH_COMPLETE"), ("MEDIA_UPLOAD", "SEND_TO_USER_INBOX")])
def test_photo_sequence(slow, sapi, mode, end):
    pid = data(sapi.post_json(CONTENT_INIT, photo(mode)))["publish_id"]
    s = status(sapi, pid)
    assert s["status"] == "PROCESSING_DOWNLOAD"
    slow.ctl.advance(20)
    s = status(sapi, pid)
    assert s["status"] == end and s["downloaded_bytes"] == 2 * 500_000


def test_failed_status_carries_fail_reason(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    slow.ctl.fail_publish(pid, "video_pull_failed")
    s = status(sapi, pid)
    assert s["status"] == "FAILED" and s["fail_reason"] == "video_pull_failed"
    slow.ctl.advance(100)
    assert status(sapi, pid)["status"] == "FAILED"


def test_unknown_and_foreign_publish_ids(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    assert error(sapi.post_json(STATUS, {"publish_id": "v_pub_url~v2-1.1"})) == (400, "invalid_publish_id")
    assert error(sapi.post_json(STATUS, {})) == (400, "invalid_params")
    other = slow.api(slow.ctl.grant(TWO)["access_token"])
    assert error(other.post_json(STATUS, {"publish_id": pid})) == (400, "token_not_authorized_for_specified_publish_id")
    assert error(other.post_json(CANCEL, {"publish_id": pid})) == (400, "token_not_authorized_for_specified_publish_id")
    # another token of the same creator may read it
    again = slow.api(slow.ctl.grant()["access_token"])
    assert again.post_json(STATUS, {"publish_id": pid}).status == 200


def test_expired_upload_stays_processing_by_default(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(file(1000))))["publish_id"]
    slow.ctl.advance(7200)
    assert status(sapi, pid)["status"] == "PROCESSING_UPLOAD"


def test_expired_upload_can_fail(slow, sapi):
    slow.ctl.set_config(upload_expired_fails=True)
    pid = data(sapi.post_json(VIDEO_INIT, direct(file(1000))))["publish_id"]
    slow.ctl.advance(3600)
    assert status(sapi, pid) == {"status": "FAILED", "fail_reason": "internal",
                                 "publicaly_available_post_id": [], "uploaded_bytes": 0}


def test_revoke_fails_in_flight_publishes_with_auth_removed(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    slow.ctl.revoke(slow.ctl.publish(pid)["open_id"])
    assert slow.ctl.publish(pid)["fail_reason"] == "auth_removed"


# --- cancel ---

def test_cancel_a_download(slow, sapi):
    pid = data(sapi.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    resp = sapi.post_json(CANCEL, {"publish_id": pid})
    body = resp.json()
    assert resp.status == 200 and set(body) == {"error"} and body["error"]["code"] == "ok"
    s = status(sapi, pid)
    assert s["status"] == "FAILED" and s["fail_reason"] == "publish_cancelled"
    assert s["downloaded_bytes"] < 10_000_000  # progress stops where the download stopped
    events = slow.ctl.webhooks()["events"]
    assert events[-1]["event"] == "post.publish.failed"
    assert events[-1]["content"] == {"publish_id": pid, "publish_type": "DIRECT_PUBLISH", "reason": "publish_cancelled"}


def test_cancel_works_for_inbox_and_photo_downloads(slow, sapi):
    for path, body in ((INBOX_INIT, inbox(pull())), (CONTENT_INIT, photo())):
        pid = data(sapi.post_json(path, body))["publish_id"]
        assert sapi.post_json(CANCEL, {"publish_id": pid}).status == 200


def test_what_cannot_be_cancelled(slow, sapi):
    file_pid = data(sapi.post_json(VIDEO_INIT, direct(file(1000))))["publish_id"]
    assert error(sapi.post_json(CANCEL, {"publish_id": file_pid})) == (400, "publish_not_cancellable")
    near = data(sapi.post_json(VIDEO_INIT, direct(pull())))["publish_id"]
    slow.ctl.advance(8)  # 80 % downloaded: near completion
    assert error(sapi.post_json(CANCEL, {"publish_id": near})) == (400, "publish_not_cancellable")
    slow.ctl.advance(100)
    assert error(sapi.post_json(CANCEL, {"publish_id": near})) == (400, "publish_not_cancellable")
    assert error(sapi.post_json(CANCEL, {"publish_id": "v_pub_url~v2-1.9"})) == (400, "invalid_publish_id")
