"""tikd's media checks against an independent judge (issue 14).

A corpus of real videos is made here with the ffmpeg CLI: good H.264, HEVC,
VP8 and VP9 files in MP4, MOV and WebM, every boundary of every rule, and
the files that fooled the old box reader (fragments, edit lists, rotation,
Matroska named .mp4, 3GP, audio only, an image named .mp4, truncated,
corrupt and lying files). What each file is comes from ffprobe, run here;
TikTok's rules are applied to ffprobe's fields by RULES below, a second
implementation of the table in core/mediarules.c. `tikd media check --json`
must report the same fields and exactly the same findings."""
import json
import os
import shutil
import struct
import subprocess
from fractions import Fraction

import pytest

from conftest import REPO, run_tikd

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
pytestmark = pytest.mark.skipif(not FFMPEG or not FFPROBE,
                                reason="ffmpeg/ffprobe missing (tools/deps.sh test installs them)")
MKMP4 = os.path.join(REPO, "tests", "fixtures", "mkmp4.py")

# ---- the judge: TikTok's rules on ffprobe's fields (spec 4.1) --------------


def ebml_doctype(path):
    """The DocType of an EBML header, read here (ffprobe names both
    Matroska and WebM "matroska,webm")."""
    b = open(path, "rb").read(256)

    def vint(i):
        n = 1
        while not b[i] & (0x80 >> (n - 1)):
            n += 1
        v = b[i] & (0xFF >> n)
        for k in range(1, n):
            v = v << 8 | b[i + k]
        return n, v

    n, size = vint(4)
    i = 4 + n
    while i < 4 + n + size:
        il, _ = vint(i)
        raw = int.from_bytes(b[i:i + il], "big")
        ll, length = vint(i + il)
        if raw == 0x4282:
            return b[i + il + ll:i + il + ll + length].decode()
        i += il + ll + length
    return None


def rate(s):
    try:
        f = Fraction(s)
    except (ValueError, ZeroDivisionError, TypeError):
        return 0.0
    return float(f) if f.denominator else 0.0


def facts(path):
    """What ffprobe says the file is, or None when it cannot read it."""
    r = subprocess.run([FFPROBE, "-v", "error", "-print_format", "json", "-show_format",
                        "-show_streams", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    p = json.loads(r.stdout)
    fmt = p.get("format", {})
    names = fmt.get("format_name", "").split(",")
    brand = fmt.get("tags", {}).get("major_brand", "")
    if "mov" in names:
        container = "mov" if brand.startswith("qt") else "3gp" if brand.startswith("3g") else "mp4"
    elif "matroska" in names:
        container = ebml_doctype(path)
    else:
        container = names[0]
    f = {"container": container, "bytes": os.path.getsize(path), "video": False,
         "audio_codec": None, "duration": float(fmt.get("duration", 0) or 0),
         "bit_rate": int(fmt.get("bit_rate", 0) or 0)}
    for s in p.get("streams", []):
        if (s["codec_type"] == "video" and not f["video"]
                and not s.get("disposition", {}).get("attached_pic")):
            rot = 0
            for sd in s.get("side_data_list", []):
                if "rotation" in sd:
                    rot = int(round(float(sd["rotation"])))
            w, h = s.get("width", 0), s.get("height", 0)
            fps = rate(s.get("avg_frame_rate")) or rate(s.get("r_frame_rate"))
            f.update(video=True, codec=s["codec_name"], width=h if rot in (90, -90) else w,
                     height=w if rot in (90, -90) else h, rotation=rot, fps=fps,
                     video_bit_rate=int(s.get("bit_rate", 0) or 0))
            if not f["duration"]:
                f["duration"] = float(s.get("duration", 0) or 0)
        elif s["codec_type"] == "audio" and f["audio_codec"] is None:
            f["audio_codec"] = s["codec_name"]
    return f


def judge(f, max_duration=600):
    """The findings TikTok's rules give f: {rule: level}. Rules of one field
    report only their first broken one, as core/mediarules.c does."""
    out = {}
    c = f["container"]
    if c not in ("mp4", "mov", "webm", "3gp"):
        return {"video.container": "refuse"}  # no probe: nothing else is read
    if c == "3gp":
        out["video.container.3gp"] = "warn"
    if f["bytes"] > 4_000_000_000:
        return {**out, "video.size": "refuse"}
    if not f["video"]:
        out["video.track"] = "refuse"
        if f["audio_codec"] and f["audio_codec"] not in ("aac", "opus", "vorbis"):
            out["video.audio"] = "warn"
        return out
    if f["codec"] not in ("h264", "hevc", "vp8", "vp9"):
        out["video.codec"] = "refuse"
    d = f["duration"]
    if d <= 0:
        out["video.duration.unknown"] = "refuse"
    elif d > max_duration + 0.5:
        out["video.duration.max"] = "refuse"
    elif d < 3:
        out["video.duration.min"] = "warn"
    if not 22.99 <= f["fps"] <= 60.01:
        out["video.fps"] = "refuse"
    w, h = f["width"], f["height"]
    if not 360 <= w <= 4096:
        out["video.width"] = "refuse"
    elif not 360 <= h <= 4096:
        out["video.height"] = "refuse"
    elif min(w, h) < 720:
        out["video.side.720"] = "warn"
    kbps = (f["video_bit_rate"] or f["bit_rate"]) / 1000
    if kbps > 0 and not 1000 <= kbps <= 6000:
        out["video.bitrate"] = "warn"
    if f["audio_codec"] and f["audio_codec"] not in ("aac", "opus", "vorbis"):
        out["video.audio"] = "warn"
    return out


# ---- the corpus ------------------------------------------------------------


def ff(*args):
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, timeout=120)


def src(size="720x1280", fps=30, d=3.5, kind="testsrc2"):
    sep = ":" if "=" in kind else "="
    return ["-f", "lavfi", "-i", "%s%ss=%s:r=%s:d=%s" % (kind, sep, size, fps, d)]


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def aac(d):
    return ["-f", "lavfi", "-i", "sine=f=440:d=%s" % d, "-c:a", "aac", "-b:a", "64k"]


def make_corpus(d):
    """name -> (path, max_duration or None). Each is made by ffmpeg (or by
    damaging an ffmpeg file); which rule each tests is in its name."""
    c = {}

    def out(name):
        return str(d / name)

    def v(name, *args, max_duration=None):
        ff(*args, out(name))
        c[name] = max_duration

    v("h264_aac.mp4", *src(), *aac(3.5), *X264, "-b:v", "2500k", "-shortest")
    v("h264_faststart.mp4", *src(), *X264, "-b:v", "2500k", "-movflags", "+faststart")
    v("hevc.mov", *src("360x640", 30, 3.2), "-c:v", "libx265", "-preset", "ultrafast",
      "-x265-params", "log-level=none", "-tag:v", "hvc1", "-f", "mov")
    v("vp9_opus.webm", *src("640x360", 25, 3.2), "-f", "lavfi", "-i", "sine=d=3.2",
      "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1500k",
      "-c:a", "libopus", "-shortest")
    v("vp8.webm", *src("640x360", 24, 3), "-c:v", "libvpx", "-deadline", "realtime",
      "-cpu-used", "16", "-b:v", "1200k")
    v("mpeg4_codec.mp4", *src("640x360", 30, 3), "-c:v", "mpeg4", "-q:v", "5")
    # durations: 2.9 / 3.0 s (the warned minimum), 600 / 601 s (the API's ceiling)
    v("dur_2.9.mp4", *src("720x1280", 30, 2.9), *X264)
    v("dur_3.0.mp4", *src("720x1280", 30, 3.0), *X264)
    ff(*src("360x640", 24, 1, "color=c=blue"), *X264, "-g", "24", out("one_second.mp4"))
    for secs in (600, 601):
        with open(d / "list.txt", "w") as f:
            f.write("file 'one_second.mp4'\n" * secs)
        v("dur_%d.mp4" % secs, "-f", "concat", "-safe", "0", "-i", str(d / "list.txt"),
          "-c", "copy")
        c["dur_%d_creator300.mp4" % secs] = 300
        shutil.copy(out("dur_%d.mp4" % secs), out("dur_%d_creator300.mp4" % secs))
    # fragmented: empty moov (every sample in fragments), and a first fragment in moov
    v("frag_empty_moov_601.mp4", "-i", out("dur_601.mp4"), "-c", "copy", "-movflags",
      "frag_keyframe+empty_moov", max_duration=300)
    v("frag_in_moov.mp4", "-i", out("h264_aac.mp4"), "-c", "copy", "-movflags",
      "frag_keyframe")
    # an edit list: 4 s of packets of which 2 s are shown
    ff(*src("720x1280", 30, 4), *X264, "-g", "1000", out("four_s.mp4"))
    v("editlist_2s.mp4", "-ss", "2", "-i", out("four_s.mp4"), "-c", "copy")
    # rotation: coded landscape, shown portrait
    ff(*src("1280x720", 30, 3), *X264, out("landscape.mp4"))
    v("rotated.mp4", "-i", out("landscape.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90")
    # frame rates and picture sizes at each bound
    for fps in (22, 23, 60, 61):
        v("fps_%d.mp4" % fps, *src("720x1280", fps, 3), *X264)
    for size in ("358x640", "360x640", "720x4096", "720x4098"):
        v("size_%s.mp4" % size, *src(size, 24, 3, "color=c=red"), *X264)
    v("bitrate_high.mp4", *src("720x1280", 30, 3, "testsrc2"), *X264, "-crf", "0")
    # containers TikTok does not take, and those it may
    v("matroska_named.mp4", *src("720x1280", 30, 3), *X264, "-f", "matroska")
    v("h264.avi", *src("720x1280", 30, 3), *X264)
    v("phone.3gp", *src("720x1280", 30, 3), *X264, "-f", "3gp")
    v("audio_only.mp4", *aac(3))
    v("mp3_audio.mp4", *src("720x1280", 30, 3), "-f", "lavfi", "-i", "sine=d=3", *X264,
      "-c:a", "libmp3lame", "-shortest")
    # broken files
    good = open(out("h264_aac.mp4"), "rb").read()
    (d / "truncated.mp4").write_bytes(good[:len(good) // 2])
    c["truncated.mp4"] = None
    corrupt = bytearray(good)
    for i in range(2000, len(corrupt) - 2000, 997):
        corrupt[i] ^= 0x5A
    (d / "corrupt_mdat.mp4").write_bytes(bytes(corrupt))
    c["corrupt_mdat.mp4"] = None
    fast = open(out("h264_faststart.mp4"), "rb").read()
    i = fast.index(b"stsz")
    count = struct.unpack(">I", fast[i + 12:i + 16])[0]
    (d / "lying_sample_count.mp4").write_bytes(
        fast[:i + 12] + struct.pack(">I", 0x7FFFFFF0) + fast[i + 16:])
    assert count > 0
    c["lying_sample_count.mp4"] = None
    i = fast.index(b"stts")
    (d / "huge_stts.mp4").write_bytes(fast[:i + 8] + struct.pack(">I", 0x3FFFFFFF) +
                                      fast[i + 12:])
    c["huge_stts.mp4"] = None
    subprocess.run(["/usr/bin/python3", MKMP4, out("largesize.mp4"), "--largesize",
                    "--size", "720x1280", "--duration", "5"], check=True)
    c["largesize.mp4"] = None
    return c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return d, make_corpus(d)


def check(path, max_duration=None):
    args = ["media", "check", "--json"]
    if max_duration:
        args += ["--max-duration", str(max_duration)]
    r = run_tikd(*args, str(path), timeout=60)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def test_every_file_gets_ffprobes_fields_and_verdict(corpus):
    d, files = corpus
    mismatches = []
    for name, max_duration in sorted(files.items()):
        path = d / name
        got = check(path, max_duration)
        f = facts(path)
        if f is None:  # ffprobe cannot read it: neither may tikd pass it
            if got["verdict"] != "refused":
                mismatches.append((name, "ffprobe cannot read it", got))
            continue
        want = judge(f, max_duration or 600)
        have = {x["rule"]: x["level"] for x in got.get("findings", [])}
        if got["kind"] != "video" or have != want:
            mismatches.append((name, want, have, got.get("why")))
            continue
        if "codec" in got:  # probed (a container TikTok does not take is refused unread)
            for k, tol in (("width", 0), ("height", 0), ("fps", 0.01), ("duration_s", 0.01)):
                fk = {"duration_s": "duration"}.get(k, k)
                if fk in f and abs(got[k] - f[fk]) > tol:
                    mismatches.append((name, k, got[k], f[fk]))
            if got.get("codec") != f["codec"]:
                mismatches.append((name, "codec", got.get("codec"), f["codec"]))
        assert got["container"] == f["container"], (name, got)
        expected = "refused" if "refuse" in want.values() else "warn" if want else "ok"
        assert got["verdict"] == expected, (name, got)
    assert not mismatches, "\n".join(map(repr, mismatches))


def test_the_files_that_fooled_the_box_reader(corpus):
    """Named outright, so that a judge and tikd wrong the same way still fail."""
    d, _ = corpus
    frag = check(d / "frag_empty_moov_601.mp4", 300)
    assert frag["verdict"] == "refused" and abs(frag["duration_s"] - 601) < 0.1, frag
    assert "up to 300 s" in frag["why"]
    trimmed = check(d / "editlist_2s.mp4")
    assert abs(trimmed["duration_s"] - 2.0) < 0.1, trimmed
    turned = check(d / "rotated.mp4")
    assert (turned["width"], turned["height"]) == (720, 1280), turned
    assert (turned["coded_width"], turned["coded_height"]) == (1280, 720)
    assert turned["rotation"] in (90, -90)
    mkv = check(d / "matroska_named.mp4")
    assert mkv["verdict"] == "refused" and mkv["container"] == "matroska", mkv
    assert "MP4 (recommended), MOV or WebM" in mkv["why"]
    for name in ("dur_2.9.mp4", "dur_3.0.mp4", "dur_600.mp4", "dur_601.mp4"):
        got = check(d / name)
        rules = {x["rule"] for x in got["findings"]}
        assert ("video.duration.min" in rules) == (name == "dur_2.9.mp4"), got
        assert ("video.duration.max" in rules) == (name == "dur_601.mp4"), got
    assert check(d / "phone.3gp")["verdict"] == "warn"
    audio = check(d / "audio_only.mp4")
    assert audio["verdict"] == "refused" and "no video track" in audio["why"], audio
    for name in ("truncated.mp4", "lying_sample_count.mp4"):
        assert check(d / name)["verdict"] == "refused", name


def test_an_image_named_mp4_is_checked_as_the_image_it_is(tmp_path):
    p = tmp_path / "photo.mp4"
    ff(*src("1080x1350", 1, 1, "color=c=green"), "-frames:v", "1", "-c:v", "mjpeg",
       "-f", "mjpeg", str(p))
    got = check(p)
    assert got["kind"] == "image" and got["format"] == "jpeg", got
    assert (got["width"], got["height"]) == (1080, 1350)


def test_a_hostile_file_cannot_stall_or_break_the_probe(corpus, tmp_path):
    """A file that makes libavformat allocate without bound or run long is
    stopped by the probe's limits; the command answers, refused, in time."""
    d, _ = corpus
    for name in ("huge_stts.mp4", "lying_sample_count.mp4", "corrupt_mdat.mp4"):
        got = check(d / name)
        assert got["verdict"] in ("refused", "warn", "ok"), got  # answered, no crash
    r = run_tikd("media", "check", str(d), timeout=300)
    assert r.returncode == 1 and "refused" in r.stdout, r.stderr
