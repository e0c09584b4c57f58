"""Chunk plan arithmetic (§2.5), checked at init, with the spec's worked examples."""

import hashlib

import pytest

from fake_bodies import VIDEO_INIT, data, direct, error, file
from tiktokfake.posting import check_chunk_plan
from tiktokfake.wire import ApiError

MiB = 1024 * 1024


def valid(size, chunk, count=None, units="strict"):
    try:
        check_chunk_plan(size, chunk, size // chunk if count is None else count, units)
        return True
    except ApiError as err:
        assert (err.status, err.code) == (400, "invalid_params")
        return False


def test_worked_examples():
    assert valid(50_000_123, 10_000_000)  # 5 chunks, the last 10,000,123 bytes
    assert 50_000_123 // 10_000_000 == 5
    assert valid(4_194_304, 4_194_304)  # 4 MB goes up whole
    assert not valid(100_000_000, 64_000_000)  # count 1, but > 64 MB needs several chunks


@pytest.mark.parametrize("size,chunk,count,ok", [
    (50_000_123, 10_000_000, 6, False),  # count must round down
    (50_000_123, 10_000_000, 4, False),
    (4_194_304, 2_097_152, None, False),  # under 5 MB: whole only
    (1, 1, None, True),
    (5 * MiB, 5 * MiB, None, True),
    (60_000_000, 60_000_000, None, True),  # whole, under 64 MB
    (64_000_000, 64_000_000, None, True),
    (64_000_001, 64_000_001, None, False),  # whole, over 64,000,000 (strict reading)
    (60_000_000, 40_000_000, None, True),  # one chunk holding the trailing remainder
    (70_000_000, 40_000_000, None, False),  # one chunk, but over 64 MB
    (70_000_000, 35_000_000, None, True),
    (100_000_000, 5 * MiB, None, True),
    (100_000_000, 5_000_000, None, False),  # under 5 MiB (strict reading)
    (200_000_000, 64_000_000, None, True),  # last chunk 72,000,000 < 128 MB
    (200_000_000, 64_000_001, None, False),  # over 64,000,000 (strict reading)
    (6_000_000_000, 10_000_000, None, False),  # over 4 GB
    (10_000_000_000, 6 * MiB, None, False),
    (5_300_000_000, 5_300_000, None, False),  # > 1000 chunks and > 4 GB
    (3_000_000_000, 5 * MiB, None, True),  # 572 chunks
    (60 * MiB, 10 * MiB, 0, False),
    (0, 1, 0, False),
])
def test_plan_rules(size, chunk, count, ok):
    assert valid(size, chunk, count) is ok


def test_readings_of_mb():
    assert not valid(100_000_000, 5_000_000, units="strict")
    assert valid(100_000_000, 5_000_000, units="decimal")
    assert valid(100_000_000, 5_000_000, units="loose")
    assert not valid(100_000_000, 5_000_000, units="binary")
    assert not valid(67_000_000, 67_000_000, units="strict")
    assert valid(67_000_000, 67_000_000, units="binary")
    assert valid(67_000_000, 67_000_000, units="loose")


def test_the_strict_switch_relaxes_units(fake, api):
    assert error(api.post_json(VIDEO_INIT, direct(file(100_000_000, 5_000_000)))) == (400, "invalid_params")
    fake.ctl.set_config(strict=False)
    assert api.post_json(VIDEO_INIT, direct(file(100_000_000, 5_000_000))).status == 200


@pytest.mark.parametrize("source", [
    {"source": "FILE_UPLOAD", "video_size": 1000, "chunk_size": 1000},
    {"source": "FILE_UPLOAD", "video_size": 1000, "total_chunk_count": 1},
    {"source": "FILE_UPLOAD", "chunk_size": 1000, "total_chunk_count": 1},
    {"source": "FILE_UPLOAD", "video_size": 1000.0, "chunk_size": 1000, "total_chunk_count": 1},
    {"source": "FILE_UPLOAD", "video_size": "1000", "chunk_size": 1000, "total_chunk_count": 1},
    {"source": "FILE_UPLOAD", "video_size": True, "chunk_size": True, "total_chunk_count": True},
    {"source": "FILE_UPLOAD", "video_size": -5, "chunk_size": -5, "total_chunk_count": 1},
])
def test_missing_or_mistyped_fields(api, source):
    assert error(api.post_json(VIDEO_INIT, direct(source))) == (400, "invalid_params")


def test_bad_plan_message(api):
    resp = api.post_json(VIDEO_INIT, direct(file(100_000_000, 64_000_000)))
    assert error(resp) == (400, "invalid_params")
    assert resp.json()["error"]["message"] == "The chunk size is invalid."


def test_upload_of_the_five_chunk_example(fake, api):
    size, chunk = 50_000_123, 10_000_000
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    d = data(api.post_json(VIDEO_INIT, direct(file(size, chunk), privacy="PUBLIC_TO_EVERYONE")))
    assert api.upload(d["upload_url"], body, chunk) == [206, 206, 206, 206, 201]
    puts = fake.ctl.requests("/upload/video/")
    assert [r["range"] for r in puts] == [
        "bytes 0-9999999/50000123", "bytes 10000000-19999999/50000123", "bytes 20000000-29999999/50000123",
        "bytes 30000000-39999999/50000123", "bytes 40000000-50000122/50000123"]
    fake.ctl.advance_publish(d["publish_id"])
    post = fake.ctl.posts()[0]
    assert post["sha256"] == hashlib.sha256(body).hexdigest() and post["size"] == size


def test_upload_of_the_whole_4mb_example(fake, api):
    body = b"\x42" * 4_194_304
    d = data(api.post_json(VIDEO_INIT, direct(file(4_194_304))))
    resp = api.put_chunk(d["upload_url"], body, 0, len(body))
    assert resp.status == 201
    assert fake.ctl.requests("/upload/video/")[0]["range"] == "bytes 0-4194303/4194304"
