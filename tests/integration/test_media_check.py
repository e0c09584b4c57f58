"""`tikd media check`: what tikd reads from a file and whether TikTok's
rules let it be posted, before any post is planned; no config, database or
network. (Real videos judged against ffprobe: test_media_corpus.py.)"""
import json
import os
import subprocess

from conftest import REPO, run_tikd

MKMP4 = os.path.join(REPO, "tests", "fixtures", "mkmp4.py")
MKIMG = os.path.join(REPO, "tests", "fixtures", "mkimg.py")


def make(tool, path, *args):
    subprocess.run(["/usr/bin/python3", tool, str(path), *args], check=True)
    return path


def test_media_check_says_what_it_read_and_why_it_refuses(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    good = make(MKMP4, d / "good.mp4", "--mdat-bytes", "100000", "--duration", "12")
    make(MKMP4, d / "long.mp4", "--mdat-bytes", "100000", "--duration", "601")
    (d / "random.mp4").write_bytes(os.urandom(65536))
    make(MKIMG, d / "photo.jpg", "--format", "jpeg", "--size", "1080x1350")
    make(MKIMG, d / "logo.png", "--format", "png", "--size", "200x200")
    os.mkfifo(d / "pipe.mp4")  # never read, never waited on
    (d / ".hidden.mp4").write_bytes(b"x")
    r = run_tikd("media", "check", str(d), timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = {os.path.basename(l.split(":")[0]): l for l in r.stdout.splitlines() if ":" in l}
    # a made-up clip: real container, random picture bytes, so a bit rate
    # far under TikTok's recommendation (a warning, not a refusal)
    assert ("good.mp4: ok with warnings: video mp4 H.264 1080x1920 30.00 fps 12.0 s"
            in lines["good.mp4"]), lines["good.mp4"]
    assert "warning: the bit rate is" in lines["good.mp4"]
    assert "refused" in lines["long.mp4"] and "601.00 s" in lines["long.mp4"]
    assert "(video.duration.max)" in lines["long.mp4"]
    assert "refused" in lines["random.mp4"] and "not a video tikd knows" in lines["random.mp4"]
    assert "ok: image jpeg 1080x1350" in lines["photo.jpg"]
    assert "refused" in lines["logo.png"] and "PNG is not accepted" in lines["logo.png"]
    assert "refused" in lines["pipe.mp4"] and "not a regular file" in lines["pipe.mp4"]
    assert ".hidden.mp4" not in r.stdout
    assert r.stdout.rstrip().endswith("6 checked, 4 refused")
    # one file that passes: exit 0; --json carries every field read
    r = run_tikd("media", "check", "--json", str(good))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["verdict"] == "warn" and got["kind"] == "video" and got["codec_name"] == "H.264"
    assert (got["width"], got["height"], got["duration_s"]) == (1080, 1920, 12.0)
    assert got["bytes"] == os.path.getsize(good) and got["audio_codec"] == "aac"
    assert [f["rule"] for f in got["findings"]] == ["video.bitrate"]
    # a creator's own maximum
    r = run_tikd("media", "check", "--max-duration", "10", str(good))
    assert r.returncode == 1 and "this creator may post up to 10 s" in r.stdout, r.stdout
    r = run_tikd("media", "rules")
    assert r.returncode == 0 and "video.duration.min   warn" in r.stdout, r.stdout


def test_media_check_refuses_bad_arguments(tmp_path):
    for args in (["media"], ["media", "check"], ["media", "check", "--nope", "x"],
                 ["media", "probe", "x"], ["media", "check", "--max-duration", "0", "x"],
                 ["media", "check", "--max-duration"]):
        r = run_tikd(*args)
        assert r.returncode == 2 and "usage: tikd media check" in r.stderr, (args, r.stderr)
    r = run_tikd("media", "check", str(tmp_path / "missing.mp4"))
    assert r.returncode == 1 and "missing.mp4" in r.stdout, r.stdout + r.stderr
