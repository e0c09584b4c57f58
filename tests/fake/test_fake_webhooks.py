"""Webhooks (§5): signed bodies, every event, stale/wrong signatures, duplicates, retries."""

import hashlib
import hmac
import json
import threading
import time

import pytest

import fakectl
from fake_bodies import CONTENT_INIT, INBOX_INIT, ONE, REVOKE, VIDEO_INIT, data, direct, inbox, photo, pull

SECRET = "fake_client_secret"


def hooked(fake_factory, sink, **webhook):
    return fake_factory({"time_scale": 0, "webhook": dict({"url": sink.url}, **webhook)})


def check_signature(delivery, secret=SECRET):
    header = delivery["headers"]["TikTok-Signature"]
    t = int(header.split(",")[0][2:])
    s = header.split(",")[1][2:]
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + delivery["body"], hashlib.sha256).hexdigest()
    return t, hmac.compare_digest(s, expected)


def test_signed_delivery_of_a_direct_post(fake_factory, webhook_sink):
    fake = hooked(fake_factory, webhook_sink)
    api = fake.api(fake.ctl.grant()["access_token"])
    pid = data(api.post_json(VIDEO_INIT, direct(pull(), privacy="PUBLIC_TO_EVERYONE")))["publish_id"]
    got = webhook_sink.wait_for(2)
    for delivery in got:
        t, ok = check_signature(delivery)
        assert ok and abs(time.time() - t) < 60
        assert fakectl.verify_signature(SECRET, delivery["headers"]["TikTok-Signature"], delivery["body"])
        assert delivery["headers"]["Content-Type"] == "application/json"
    complete, public = (json.loads(d["body"]) for d in got)
    assert set(complete) == {"client_key", "event", "create_time", "user_openid", "content"}
    assert complete["client_key"] == "fake_client_key" and complete["user_openid"] == ONE
    assert complete["event"] == "post.publish.complete"
    assert isinstance(complete["content"], str)  # content is a JSON string (§5.2)
    assert json.loads(complete["content"]) == {"publish_id": pid, "publish_type": "DIRECT_PUBLISH"}
    assert public["event"] == "post.publish.publicly_available"
    content = json.loads(public["content"])
    assert isinstance(content["post_id"], str)  # a string in webhooks, unlike the status fetch
    assert int(content["post_id"]) in data(api.post_json("/v2/post/publish/status/fetch/",
                                                          {"publish_id": pid}))["publicaly_available_post_id"]


def test_inbox_photo_failure_and_revoke_events(fake_factory, webhook_sink):
    fake = hooked(fake_factory, webhook_sink)
    tokens = fake.ctl.grant()
    api = fake.api(tokens["access_token"])
    inbox_pid = data(api.post_json(INBOX_INIT, inbox()))["publish_id"]
    photo_pid = data(api.post_json(CONTENT_INIT, photo("MEDIA_UPLOAD")))["publish_id"]
    fake.ctl.set_config(time_scale=1)
    failing = data(api.post_json(VIDEO_INIT, direct()))["publish_id"]
    fake.ctl.fail_publish(failing, "spam_risk_text")
    api.form(REVOKE, {"client_key": "fake_client_key", "client_secret": SECRET, "token": tokens["access_token"]})
    events = [json.loads(d["body"]) for d in webhook_sink.wait_for(4)]
    by_event = [(e["event"], json.loads(e["content"])) for e in events]
    assert by_event == [
        ("post.publish.inbox_delivered", {"publish_id": inbox_pid, "publish_type": "INBOX_SHARE"}),
        ("post.publish.inbox_delivered", {"publish_id": photo_pid, "publish_type": "INBOX_SHARE"}),
        ("post.publish.failed", {"publish_id": failing, "publish_type": "DIRECT_PUBLISH", "reason": "spam_risk_text"}),
        ("authorization.removed", {"reason": 5}),
    ]


def test_wrong_signature_option(fake_factory, webhook_sink):
    fake = hooked(fake_factory, webhook_sink, wrong_signature=True)
    fake.ctl.emit_webhook("post.publish.complete", ONE, {"publish_id": "x", "publish_type": "DIRECT_PUBLISH"})
    delivery = webhook_sink.wait_for(1)[0]
    assert check_signature(delivery)[1] is False
    assert not fakectl.verify_signature(SECRET, delivery["headers"]["TikTok-Signature"], delivery["body"])


def test_stale_timestamp_option(fake_factory, webhook_sink):
    fake = hooked(fake_factory, webhook_sink, stale_t_sec=600)
    fake.ctl.emit_webhook("authorization.removed", ONE, {"reason": 1})
    delivery = webhook_sink.wait_for(1)[0]
    t, ok = check_signature(delivery)
    assert ok  # correctly signed, but too old for a 300 s tolerance
    assert t <= time.time() - 590
    assert not fakectl.verify_signature(SECRET, delivery["headers"]["TikTok-Signature"], delivery["body"])


def test_signature_timestamp_follows_the_fake_clock(fake_factory, webhook_sink):
    fake = hooked(fake_factory, webhook_sink)
    fake.ctl.skew(3600)
    fake.ctl.emit_webhook("authorization.removed", ONE, {"reason": 1})
    delivery = webhook_sink.wait_for(1)[0]
    t, ok = check_signature(delivery)
    assert ok and t >= time.time() + 3590
    assert json.loads(delivery["body"])["create_time"] >= time.time() + 3590


def test_duplicate_deliveries(fake_factory, webhook_sink):
    fake = hooked(fake_factory, webhook_sink, duplicates=2)
    fake.ctl.emit_webhook("post.publish.complete", ONE, {"publish_id": "x", "publish_type": "DIRECT_PUBLISH"})
    got = webhook_sink.wait_for(3)
    assert len({d["body"] for d in got}) == 1
    deliveries = fakectl.wait_until(lambda: len(fake.ctl.webhooks()["deliveries"]) == 3 and
                                    fake.ctl.webhooks()["deliveries"])
    assert sorted(d["duplicate"] for d in deliveries) == [False, True, True]


def test_retries_failed_deliveries_with_backoff(fake_factory, sink_factory):
    sink = sink_factory(statuses=[500, 204, 503])  # 204 is not 200: a failed delivery too
    fake = hooked(fake_factory, sink, retry_delays_sec=[0.01, 0.02, 0.04])
    fake.ctl.emit_webhook("authorization.removed", ONE, {"reason": 1})
    got = sink.wait_for(4)
    assert [d["status"] for d in got] == [500, 204, 503, 200]
    assert len({d["body"] for d in got}) == 1
    gaps = [b["t_mono"] - a["t_mono"] for a, b in zip(got, got[1:])]
    assert all(gap >= delay for gap, delay in zip(gaps, [0.01, 0.02, 0.04]))
    record = fakectl.wait_until(lambda: [e for e in fake.ctl.webhooks()["events"] if e["delivered"]])
    assert len(record) == 1
    assert [d["attempt"] for d in fake.ctl.webhooks()["deliveries"]] == [1, 2, 3, 4]


def test_gives_up_after_the_last_retry(fake_factory, sink_factory):
    sink = sink_factory(statuses=[500, 500, 500, 500])
    fake = hooked(fake_factory, sink, retry_delays_sec=[0.01, 0.01])
    fake.ctl.emit_webhook("authorization.removed", ONE, {"reason": 1})
    sink.wait_for(3)
    deliveries = fakectl.wait_until(lambda: len(fake.ctl.webhooks()["deliveries"]) == 3 and fake.ctl.webhooks())
    assert not deliveries["events"][0]["delivered"]


def test_any_2xx_option(fake_factory, sink_factory):
    sink = sink_factory(statuses=[204])
    fake = hooked(fake_factory, sink, accept_any_2xx=True)
    fake.ctl.emit_webhook("authorization.removed", ONE, {"reason": 1})
    sink.wait_for(1)
    assert fakectl.wait_until(lambda: fake.ctl.webhooks()["events"][0]["delivered"])


def test_delivery_never_blocks_request_handling(fake_factory, sink_factory):
    gate = threading.Event()
    sink = sink_factory(gate=gate)
    fake = hooked(fake_factory, sink)
    api = fake.api(fake.ctl.grant()["access_token"])
    try:
        for _ in range(3):  # each queues a webhook; the receiver holds every answer
            assert api.post_json(VIDEO_INIT, direct()).status == 200
        assert len(sink.received) == 0
    finally:
        gate.set()
    assert len(sink.wait_for(3)) == 3


def test_events_are_recorded_without_a_url(fake_factory):
    fake = fake_factory({"time_scale": 0})
    api = fake.api(fake.ctl.grant()["access_token"])
    api.post_json(VIDEO_INIT, direct())
    hooks = fake.ctl.webhooks()
    assert [e["event"] for e in hooks["events"]] == ["post.publish.complete"]
    assert hooks["deliveries"] == []


def test_webhook_url_must_be_loopback(fake):
    with pytest.raises(fakectl.ControlError):
        fake.ctl.set_config(webhook={"url": "https://tikd.example.test/webhooks"})
