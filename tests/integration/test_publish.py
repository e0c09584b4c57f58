"""Publishing against the fake: a video posted directly and one sent to the
inbox, each exactly once; checks before any upload; multi-chunk uploads;
faults on the way; and kill -9 at any moment resumes without a lost or
duplicate post."""
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import REPO, TIKD, cpu_seconds
import fakectl

MKMP4 = os.path.join(REPO, "tests", "fixtures", "mkmp4.py")


def video(path, mdat=200_000, **kw):
    args = ["/usr/bin/python3", MKMP4, str(path), "--mdat-bytes", str(mdat)]
    for k, v in kw.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    subprocess.run(args, check=True)
    return path


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def connect(s, name="alice", user=None):
    r = s.tikd("account", "complete", name, s.approve(s.authorize_url(name), user=user))
    assert r.returncode == 0, r.stderr


@pytest.fixture
def quick(s):
    """A fake whose processing takes a moment, not minutes."""
    s.fake.ctl.set_config(time_scale=0.01)
    return s


def test_post_and_draft_exactly_once(quick, tmp_path):
    s = quick
    connect(s)
    (s.root / "rules" / "outcome.lua").write_text(
        "function on_published(job) tikd.log.info('outcome', { id = job.id, state = job.state,"
        " kind = job.kind, chosen_by = job.chosen_by, final = job.final }) end\n")
    d = s.start()
    v1 = video(tmp_path / "one.mp4", duration=7)
    v2 = video(tmp_path / "two.mp4", duration=4)
    r = s.tikd("post", str(v1), "--account", "alice", "--privacy", "SELF_ONLY",
               "--caption", "first light 🌅 #sunrise", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr + "\n".join(d.lines)[-4000:]
    assert "published" in r.stdout
    r = s.tikd("post", str(v2), "--account", "alice", "--draft", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "in_inbox" in r.stdout
    posts = s.fake.ctl.posts()
    assert sorted(p["sha256"] for p in posts) == sorted([sha(v1), sha(v2)])
    direct = [p for p in posts if p["sha256"] == sha(v1)][0]
    assert direct["privacy_level"] == "SELF_ONLY" and direct["title"] == "first light 🌅 #sunrise"
    q = s.tikd("queue", "--all").stdout
    assert q.count("published") == 1 and q.count("in_inbox") == 1
    show = s.tikd("job", "show", "1").stdout
    assert "chosen by:    operator" in show and "publish_id:   v_pub_file" in show
    audit = s.audit()
    assert "job.planned" in audit and "job.published" in audit and "privacy=SELF_ONLY" in audit
    line = d.wait_for(r"msg=outcome .*id=1|id=1 .*msg=outcome|msg=outcome")
    for part in ("state=published", "kind=video", "chosen_by=operator", "final=true"):
        assert part in line, (part, line)
    d.wait_for(r"msg=outcome.*state=in_inbox|state=in_inbox.*msg=outcome")
    assert d.proc.poll() is None
    s.assert_no_token_leaked()


def test_a_draft_takes_its_caption_and_refuses_what_it_cannot_carry(quick, tmp_path):
    """TikTok's inbox init takes the video and, as clients observe, its title
    (spec §2.3, §7 #12): a draft's caption is sent; settings a draft (or a
    post of the other kind) cannot carry are refused when planned, from the
    CLI and from rules, never accepted and dropped."""
    s = quick
    connect(s)
    v = video(tmp_path / "v.mp4")
    r = s.tikd("post", str(v), "--account", "alice", "--draft", "--caption", "x", "--aigc",
               "--disable-comment", "--cover-ms", "500")
    assert r.returncode == 1, r.stdout
    for opt in ("is_aigc (--aigc)", "disable_comment (--disable-comment)",
                "cover_ms (--cover-ms)"):
        assert "a video draft cannot carry " + opt in r.stderr, r.stderr
    assert "inbox init takes only the video and its caption" in r.stderr
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--auto-music")
    assert r.returncode == 1 and "a video post cannot carry auto_music" in r.stderr, r.stderr
    r = s.tikd("post", "--photo", "https://media.example.com/a.jpg", "--account", "alice",
               "--draft", "--disable-comment", "--aigc")
    assert r.returncode == 1, r.stdout
    assert "a photo draft cannot carry disable_comment" in r.stderr, r.stderr
    assert "a photo draft cannot carry is_aigc (--aigc): TikTok takes it for videos only" \
        in r.stderr, r.stderr
    assert len(s.tikd("queue", "--all").stdout.splitlines()) == 1  # nothing was planned
    media = tmp_path / "media"
    media.mkdir()
    clip = video(media / "clip.mp4", mdat=70_000)
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    (s.root / "rules" / "drafts.lua").write_text("""
function on_load()
    local id, why = tikd.upload.post{ account = "alice", media = "%s", draft = true,
                                      is_aigc = true }
    tikd.log.info("refused", { id = id or -1, why = why or "" })
end
""" % clip)
    d = s.start()
    line = d.wait_for(r"msg=refused ")
    assert "id=-1" in line and "a video draft cannot carry is_aigc (--aigc)" in line, line
    r = s.tikd("post", str(v), "--account", "alice", "--draft", "--caption", "to the inbox",
               "--wait")
    assert r.returncode == 0 and "in_inbox" in r.stdout, r.stdout + r.stderr
    posts = s.fake.ctl.posts()
    assert [p["title"] for p in posts if p["sha256"] == sha(v)] == ["to the inbox"], posts


def test_bad_posts_are_refused_when_planned(s, tmp_path):
    connect(s)
    v = video(tmp_path / "ok.mp4")
    r = s.tikd("post", str(v), "--account", "alice")
    assert r.returncode == 1 and "choose a privacy level" in r.stderr
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "EVERYONE",
               "--caption", "x" * 2201)
    assert r.returncode == 1
    assert "unknown privacy level 'EVERYONE'" in r.stderr and "2201 UTF-16 units" in r.stderr
    r = s.tikd("post", str(tmp_path / "missing.mp4"), "--account", "alice",
               "--privacy", "SELF_ONLY")
    assert r.returncode == 1 and "%s does not exist" % (tmp_path / "missing.mp4") in r.stderr
    # a relative name that is not there: the file it looked for, not "must be absolute"
    r = s.tikd("post", "nofile.mp4", "--account", "alice", "--privacy", "SELF_ONLY",
               cwd=str(tmp_path))
    assert r.returncode == 1 and "absolute" not in r.stderr, r.stderr
    assert "%s does not exist" % (tmp_path / "nofile.mp4") in r.stderr, r.stderr
    r = s.tikd("post", str(v), "--account", "nobody", "--privacy", "SELF_ONLY")
    assert r.returncode == 1 and "no such account" in r.stderr
    # media TikTok would refuse never enters the queue, approval or not
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(os.urandom(65536))
    r = s.tikd("post", str(noise), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 1 and "not a video tikd knows" in r.stderr, r.stderr
    slow = video(tmp_path / "slow.mp4", fps=12, duration=601)
    r = s.tikd("post", str(slow), "--account", "alice", "--privacy", "SELF_ONLY", "--approval")
    assert r.returncode == 1 and "23 to 60 fps (video.fps)" in r.stderr, r.stderr
    assert "(video.duration.max)" in r.stderr
    assert "ID" in s.tikd("queue", "--all").stdout and len(s.tikd("queue", "--all")
                                                         .stdout.splitlines()) == 1


def test_preflight_failures_say_what_is_wrong(quick, tmp_path):
    s = quick
    connect(s)
    d = s.start()
    # TikTok's ceiling (600 s) passes when planned; this creator's own (300 s,
    # from creator_info) is checked at the pre-flight, the file read again
    long = video(tmp_path / "long.mp4", duration=400)
    r = s.tikd("post", str(long), "--account", "alice", "--privacy", "SELF_ONLY", "--wait")
    assert r.returncode == 1 and "this creator may post up to 300 s" in r.stdout, r.stdout
    # the creator's limit is kept: media check --account applies it beforehand
    r = s.tikd("media", "check", "--account", "alice", str(long))
    assert r.returncode == 1 and "this creator may post up to 300 s" in r.stdout, r.stdout
    assert "note: alice may post videos up to 300 s (creator_info, " in r.stderr, r.stderr
    r = s.tikd("media", "check", "--account", "nobody", str(long))
    assert r.returncode == 1 and "no such account 'nobody'" in r.stderr, r.stderr
    ok = video(tmp_path / "ok.mp4")
    # an app TikTok has not audited: the creator is offered SELF_ONLY only
    connect(s, "bob", user="acct_two")
    creators = s.fake.ctl.creators()
    creators = creators["creators"] if isinstance(creators, dict) else creators
    two = [c for c in creators if c["username"] == "acct_two"][0]
    s.fake.ctl.put_creator({**two, "privacy_level_options": ["SELF_ONLY"]})
    r = s.tikd("media", "check", "--account", "bob", str(ok))
    assert r.returncode == 0 and "creator_info has not been asked for bob yet" in r.stderr, r
    r = s.tikd("post", str(ok), "--account", "bob", "--privacy", "PUBLIC_TO_EVERYONE", "--wait")
    assert r.returncode == 1 and "not offered" in r.stdout and "audited" in r.stdout
    assert s.fake.ctl.posts() == []
    assert not [q for q in s.fake.ctl.ledger()["requests"] if "init" in q["path"]]
    assert d.proc.poll() is None


def test_the_preflight_reads_a_video_again_only_if_it_changed(quick, tmp_path):
    """What the probe read when a post was planned goes with the job: the
    pre-flight judges it again with the creator's limits without reading the
    file, unless the file changed since, and then it is read (and judged)
    anew."""
    s = quick
    connect(s)
    count = tmp_path / "probes"
    wrapper = tmp_path / "probe.sh"
    real = os.path.join(os.path.dirname(TIKD), "tikd-probe")
    wrapper.write_text("#!/bin/sh\necho x >> '%s'\nexec '%s'\n" % (count, real))
    wrapper.chmod(0o755)
    s.cfg.write_text(s.cfg.read_text() + 'media = { probe = "%s" }\n' % wrapper)
    same = video(tmp_path / "same.mp4")
    changed = video(tmp_path / "changed.mp4")
    for f in (same, changed):
        r = s.tikd("post", str(f), "--account", "alice", "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    assert count.read_text().count("x") == 2  # once each, when planned
    video(changed, fps=12)  # rewritten: now a frame rate TikTok refuses
    d = s.start()
    d.wait_for(r"event=job\.final job=1 ", timeout=30)
    d.wait_for(r"event=job\.final job=2 ", timeout=30)
    assert count.read_text().count("x") == 3, "only the changed file is read again"
    show = s.tikd("job", "show", "2").stdout
    assert "failed" in show and "23 to 60 fps (video.fps)" in show, show
    assert "published" in s.tikd("job", "show", "1").stdout
    assert len(s.fake.ctl.posts()) == 1 and d.proc.poll() is None


def test_a_probe_that_cannot_run_defers_the_post_and_fails_nothing(quick, tmp_path):
    """A probe that is missing (or cannot finish) is the machine's trouble,
    not the video's: the job waits with the reason and goes out once the
    probe runs again."""
    s = quick
    connect(s)
    clip = video(tmp_path / "clip.mp4")
    r = s.tikd("post", str(clip), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    video(clip, mdat=200_001)  # changed since it was planned: the pre-flight reads it again
    good = s.cfg.read_text()
    s.cfg.write_text(good + 'media = { probe = "%s", probe_retry = 2 }\n'
                     % (tmp_path / "no-such-probe"))
    d = s.start()
    d.wait_for(r"event=job\.deferred job=1 .*the media probe could not read the video", timeout=30)
    q = s.tikd("queue").stdout
    assert "deferred" in q and "no-such-probe" in q, q
    d.stop()
    s.cfg.write_text(good + 'media = { probe_retry = 2 }\n')
    d = s.start()
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    assert len(s.fake.ctl.posts()) == 1


def test_a_large_video_is_hashed_with_progress_on_a_terminal(s, tmp_path):
    """`tikd post` of a large file says how far it has read it (a 4 GiB file
    takes seconds): on a terminal only, the line cleared when done."""
    connect(s)
    big = video(tmp_path / "big.mp4", mdat=80_000_000)
    master, slave = os.openpty()
    try:
        p = subprocess.run([TIKD, "--config", str(s.cfg), "post", str(big), "--account", "alice",
                            "--privacy", "SELF_ONLY"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=slave, env=s.env, timeout=60)
        os.close(slave)
        slave = None
        said = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            said += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0, said
    text = said.decode(errors="replace")
    assert "reading big.mp4 for its SHA-256: 100% of 0.1 GB" in text, text
    assert text.rstrip().endswith("\x1b[K") or "\x1b[K" in text, text
    # not on a pipe: nothing but the answer
    again = video(tmp_path / "big2.mp4", mdat=80_000_001)
    r = s.tikd("post", str(again), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 0 and "SHA-256" not in r.stderr, r.stderr


def test_multi_chunk_upload_with_faults(quick, tmp_path):
    s = quick
    connect(s)
    d = s.start()
    big = video(tmp_path / "big.mp4", mdat=75_000_000)
    s.fake.ctl.add_faults([
        {"kind": "reset", "path_prefix": "/upload/", "after_bytes": 3_000_000, "skip": 2},
        {"kind": "status", "path_prefix": "/upload/", "status": 503, "skip": 4},
        {"kind": "status", "path_prefix": "/v2/post/publish/status/", "status": 500},
        {"kind": "malformed_json", "path_prefix": "/v2/post/publish/status/", "skip": 1},
    ])
    r = s.tikd("post", str(big), "--account", "alice", "--privacy", "PUBLIC_TO_EVERYONE",
               "--wait", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (post,) = s.fake.ctl.posts()
    assert post["sha256"] == sha(big) and post["size"] == os.path.getsize(big)
    show = s.tikd("job", "show", "1").stdout
    assert "upload:       7 of 7 chunks" in show
    # --wait --json: one event per change, progress in chunks and bytes
    events = [json.loads(line) for line in r.stdout.splitlines()]
    ups = [e for e in events if e["state"] == "uploading"]
    assert [e["chunks_done"] for e in ups] == sorted(e["chunks_done"] for e in ups)
    assert ups and all(e["bytes"] == os.path.getsize(big) and e["chunks"] == 7 for e in ups)
    last = events[-1]
    assert last["final"] and last["state"] == "published" and last["publish_id"]
    # the 19-digit post ids arrive exact, as text (a double would round them)
    assert last["post_ids"] == ",".join(s.fake.ctl.publishes()[0]["post_ids"]), last
    assert d.proc.poll() is None


def held_behind(row):
    """A queue row of a photo post that waits for another of its account."""
    return row.split()[1] == "scheduled" and "a photo post of this account" in row


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(s, tmp_path):
    """100 posts over three accounts (videos of three sizes, multi-chunk
    ones, drafts, photo carousels), tikd killed with SIGKILL at 30 to 40
    random moments and restarted each time: every post reaches TikTok
    exactly once, none is lost, and the queue agrees with TikTok's ledger."""
    # TikTok's budgets, kept by tikd, on a 2-second "minute" and wide caps:
    # this test is about crashes (test_limits.py is about the budgets)
    s.limits(window=2, daily=100, pending=100)
    s.fake.ctl.set_config(time_scale=0.05, rate_limit_retry_after=True)
    # TikTok's webhooks settle a photo init whose answer a kill swallowed; it
    # retries a delivery while tikd is down
    hooks_to(s, retry_delays_sec=[0.2] * 40)
    # slow the wire a little so kills land in every state, uploads included
    s.fake.ctl.add_faults([{"kind": "delay", "path_prefix": "/upload/", "delay_sec": 0.08,
                            "count": None},
                           {"kind": "delay", "path_prefix": "/v2/post/publish/", "delay_sec": 0.02,
                            "count": None}])
    s.fake.ctl.put_creator({"open_id": "-000FakeAcctThree00000000000003", "username": "acct_3"})
    connect(s, "alice")
    connect(s, "bob", user="acct_two")
    connect(s, "carol", user="acct_3")
    accounts = ["alice", "bob", "carol"]
    base = video(tmp_path / "base.mp4", mdat=150_000, duration=4).read_bytes()
    files, photos = [], []
    for i in range(100):
        if i % 10 == 5:  # a photo carousel: TikTok pulls it, tikd must never ask twice
            photos.append(["https://media.example.test/tikd/k%d-%d.jpg" % (i, n) for n in range(3)])
            continue
        if i % 3 == 0:  # small ones, distinct content without a new file each time
            p = tmp_path / ("v%03d.mp4" % i)
            p.write_bytes(base[:-8] + i.to_bytes(8, "big"))
        else:
            size = 70_000_000 if i % 25 == 2 else 3_000_000 if i % 3 == 1 else 12_000_000
            p = video(tmp_path / ("v%03d.mp4" % i), mdat=size, duration=3 + i % 5)
        files.append(p)
    for i, f in enumerate(files):
        mode = ["--draft"] if i % 4 == 3 else ["--privacy", "SELF_ONLY"]
        r = s.tikd("post", str(f), "--account", accounts[i % 3], *mode)
        assert r.returncode == 0, r.stderr
    for i, urls in enumerate(photos):
        args = [a for u in urls for a in ("--photo", u)]
        r = s.tikd("post", "--account", accounts[i % 3], "--privacy", "SELF_ONLY", *args)
        assert r.returncode == 0, r.stderr
    rng = random.Random(20261130)
    kills = 0
    while kills < 40 and len(s.fake.ctl.posts()) < len(files) + len(photos):
        d = s.start()
        time.sleep(rng.uniform(0.01, 0.35))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        kills += 1
    d = s.start()
    end, settled = time.monotonic() + 150, 0
    while time.monotonic() < end:
        rows = s.tikd("queue").stdout.splitlines()[1:]
        # nothing left that is not final but photo inits TikTok never got, and
        # photo posts each held behind one of those (one unsettled pull per account)
        settled = settled + 1 if all(r.split()[1] == "unsure" or held_behind(r)
                                     for r in rows) else 0
        if settled == 10:
            break
        time.sleep(0.3)
    posts = s.fake.ctl.posts()
    assert kills >= 30, kills  # the work outlasted them: kills landed in every state
    videos = sorted(p["sha256"] for p in posts if p["media_type"] != "PHOTO")
    assert len(videos) == len(set(videos)), "a video reached TikTok twice"
    q = s.tikd("queue", "--all").stdout
    assert videos == sorted(sha(f) for f in files), (q, "\n".join(d.lines)[-5000:])
    # a photo init whose answer a kill swallowed is never sent twice: unsure
    # until TikTok's webhook names its publish, then as TikTok says
    pulled = sorted(tuple(p["urls"]) for p in posts if p["media_type"] == "PHOTO")
    assert len(pulled) == len(set(pulled)), "a photo post reached TikTok twice"
    states = {int(row.split()[0]): row.split()[1] for row in q.splitlines()[1:]}
    photo_jobs = [states[i] for i in range(len(files) + 1, len(files) + len(photos) + 1)]
    unsure = photo_jobs.count("unsure")
    # a photo post held behind an unsure one of its account was never sent:
    # it goes once TikTok names that one, or the hold ends (600 s)
    accounts_of = {int(row.split()[0]): row.split()[2] for row in q.splitlines()[1:]}
    photo_ids = range(len(files) + 1, len(files) + len(photos) + 1)
    held = [r for r in q.splitlines()[1:] if held_behind(r)]
    for r in held:
        behind = int(re.search(r"waits for job (\d+)", r).group(1))
        me = int(r.split()[0])
        assert me in photo_ids and behind in photo_ids, (r, q)
        assert states[behind] == "unsure" and accounts_of[behind] == accounts_of[me], (r, q)
    # every photo at TikTok is a published job, every other photo job says
    # it may be there (its init left, TikTok never named it): none is lost
    assert photo_jobs.count("published") == len(pulled), (photo_jobs, q)
    assert photo_jobs.count("published") + unsure + len(held) == len(photos), (photo_jobs, q)
    # the queue agrees with TikTok's ledger
    final = sum(1 for st in states.values() if st in ("published", "in_inbox"))
    assert final == len(posts), q
    print("kills=%d posts=%d photo inits left to the operator=%d" % (kills, len(posts), unsure))
    assert s.tikd("audit", "verify").returncode == 0


@pytest.mark.parametrize("chunks", [1, 6], ids=["only-chunk", "third-of-six"])
def test_kill_9_between_a_chunks_last_byte_and_its_commit(s, tmp_path, chunks):
    """TikTok has stored the chunk (the last one, or one in the middle) and
    tikd is killed before it hears so: after a restart TikTok's own count of
    uploaded bytes decides, and the video arrives once."""
    s.fake.ctl.set_config(time_scale=0.01)
    connect(s)
    v = video(tmp_path / "v.mp4", mdat=150_000 if chunks == 1 else 65_000_000)
    # the first chunk's answer (or the third's) waits after TikTok stored it
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/upload/", answer_delay_sec=30,
                         skip=0 if chunks == 1 else 2)
    d = s.start()
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    want = os.path.getsize(v) if chunks == 1 else 3 * 10_000_000
    for _ in range(300):
        pubs = s.fake.ctl.publishes()
        if pubs and (pubs[0]["uploaded_bytes"] or 0) >= want:
            break
        time.sleep(0.05)
    assert pubs and pubs[0]["uploaded_bytes"] >= want, pubs
    show = s.tikd("job", "show", "1").stdout
    assert "state:        uploading" in show, show  # tikd does not know yet
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    s.fake.ctl.clear_faults()
    d = s.start()
    for _ in range(300):
        show = s.tikd("job", "show", "1").stdout
        if "state:        published" in show:
            break
        time.sleep(0.1)
    assert "state:        published" in show, show + "\n".join(d.lines[-30:])
    posts = s.fake.ctl.posts()
    assert [p["sha256"] for p in posts] == [sha(v)]
    inits = [q for q in s.fake.ctl.requests("/v2/post/publish/video/init/") if q["status"] == 200]
    assert len(inits) == 1  # never initialised again


def test_removing_an_account_cancels_its_pending_jobs(s, tmp_path):
    connect(s)
    v = video(tmp_path / "later.mp4")
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--at", "+1d")
    assert r.returncode == 0, r.stderr
    r = s.tikd("account", "remove", "alice")
    assert r.returncode == 0 and "1 pending job of alice cancelled" in r.stdout, r.stdout
    show = s.tikd("job", "show", "1").stdout
    assert "state:        cancelled" in show and "account alice was removed" in show


def test_webhook_moves_a_processing_job_at_once(s, tmp_path):
    # processing that would take minutes; the webhook arrives when TikTok is done
    s.fake.ctl.set_config(time_scale=1.0, processing={"processing_sec": 600},
                          webhook={"url": "http://127.0.0.1:%d/webhooks/tiktok" % s.port})
    connect(s)
    d = s.start()
    v = video(tmp_path / "hook.mp4")
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    d.wait_for(r"event=upload\.chunk job=1 chunk=1 of=1", timeout=10)
    (pub,) = s.fake.ctl.publishes()
    s.fake.ctl.advance_publish(pub["publish_id"])  # TikTok finishes: it sends the webhook
    d.wait_for(r"event=webhook\.job job=1", timeout=10)
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=10)


def fake_post_ids(s):
    return [str(i) for p in s.fake.ctl.publishes() for i in (p.get("post_ids") or [])]


@pytest.mark.parametrize("via", ["status", "webhook"])
def test_a_public_posts_id_comes_after_moderation(quick, tmp_path, via):
    """Issue 13, item 17: TikTok says PUBLISH_COMPLETE before moderation ends
    and gives a public post's id (19 digits, past 2^53) only after. The job is
    published at once, then keeps asking (bounded) or takes the
    publicly_available webhook, and stores the id digit for digit."""
    s = quick
    s.fake.ctl.set_config(processing={"moderation_sec": 800})  # 8 s at this time scale
    if via == "webhook":
        hooks_to(s)
        s.cfg.write_text(s.cfg.read_text() + "jobs = { post_id_wait = 0 }\n")  # webhook only
    connect(s)
    d = s.start()
    v = video(tmp_path / "public.mp4")
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "PUBLIC_TO_EVERYONE", "--wait")
    assert r.returncode == 0 and "published" in r.stdout, r.stdout + r.stderr
    assert not fake_post_ids(s), "moderation ended before the job was published: no test"
    d.wait_for(r"event=webhook\.received .*publicly_available" if via == "webhook"
               else r"event=job\.post_id job=1 ", timeout=20)
    (want,) = fake_post_ids(s)
    assert int(want) > 2 ** 53
    for _ in range(100):
        show = s.tikd("job", "show", "1").stdout
        if want in show:
            break
        time.sleep(0.1)
    assert "post ids:     %s\n" % want in show, (want, show)
    assert "post id until" not in show  # no more asking
    assert "job.post_id" in s.audit() and "via=" + via in s.audit()
    polls = s.fake.ctl.requests("/v2/post/publish/status/fetch/")
    time.sleep(1)
    assert len(s.fake.ctl.requests("/v2/post/publish/status/fetch/")) == len(polls)


def test_a_post_id_that_never_comes_is_asked_for_a_bounded_time(quick, tmp_path):
    s = quick
    s.fake.ctl.set_config(processing={"moderation_sec": 100000})
    s.cfg.write_text(s.cfg.read_text() + "jobs = { post_id_wait = 2 }\n")
    connect(s)
    d = s.start()
    r = s.tikd("post", str(video(tmp_path / "v.mp4")), "--account", "alice",
               "--privacy", "PUBLIC_TO_EVERYONE", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "post id until" in s.tikd("job", "show", "1").stdout
    d.wait_for(r"event=job\.post_id_missing job=1 ", timeout=20)
    show = s.tikd("job", "show", "1").stdout
    assert "state:        published" in show and "gave no public post id within" in show, show
    polls = len(s.fake.ctl.requests("/v2/post/publish/status/fetch/"))
    time.sleep(1.5)
    assert len(s.fake.ctl.requests("/v2/post/publish/status/fetch/")) == polls


def kill_once_tiktok_has_it(s, d):
    """SIGKILL d as soon as the fake holds the publish its init made (the
    init's answer is held back by a slow_answer fault)."""
    for _ in range(200):
        if s.fake.ctl.publishes():
            break
        time.sleep(0.05)
    assert s.fake.ctl.publishes(), "the init never reached the fake"
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()


def test_a_kill_during_an_upload_init_leaves_a_counted_orphan(quick, tmp_path):
    """Issue 13, item 11: TikTok took an upload's init, tikd was killed before
    its answer: TikTok holds a session tikd never heard of. After the
    restart the job posts once, counts the orphan where an operator sees it,
    and its daily cap count stays TikTok's (the orphan counted there too)."""
    s = quick
    connect(s)
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/v2/post/publish/video/init/",
                         answer_delay_sec=30)
    d = s.start()
    v = video(tmp_path / "o.mp4")
    assert s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY").returncode == 0
    kill_once_tiktok_has_it(s, d)
    s.fake.ctl.clear_faults()
    d = s.start()
    d.wait_for(r"event=job\.orphan_session job=1 ", timeout=20)
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    assert [p["sha256"] for p in s.fake.ctl.posts()] == [sha(v)]
    assert len(s.fake.ctl.publishes()) == 2  # the orphan, and the post
    show = s.tikd("job", "show", "1").stdout
    assert "orphans:      1 upload session" in show, show
    st = s.tikd("status").stdout
    assert "orphans:     1 upload session" in st, st
    assert "job.orphan_session" in s.audit()
    open_id = s.accounts()["alice"]["open_id"]
    assert s.daily_used("alice") == s.fake.ctl.usage(open_id)["direct_posts_in_window"] == 2


def test_a_kill_during_a_pull_init_is_settled_by_tiktoks_webhook(quick):
    """The same for a pull: after the restart the job is unsure (never sent
    again) until TikTok's webhook names the publish; it ends as TikTok says."""
    s = quick
    hooks_to(s, retry_delays_sec=[0.2] * 20)  # TikTok retries while tikd is down
    connect(s)
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/v2/post/publish/content/init/",
                         answer_delay_sec=30)
    d = s.start()
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", PHOTOS[0])
    assert r.returncode == 0, r.stderr
    kill_once_tiktok_has_it(s, d)
    d = s.start()
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    inits = [q for q in s.fake.ctl.ledger()["requests"] if q["path"].endswith("content/init/")]
    assert len(inits) == 1 and len(s.fake.ctl.posts()) == 1
    assert "job.adopted" in s.audit()


def test_approval_gate(quick, tmp_path):
    s = quick
    connect(s)
    d = s.start()
    v1, v2, v3 = (video(tmp_path / ("a%d.mp4" % i)) for i in range(3))
    for v in (v1, v2):
        r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--approval")
        assert r.returncode == 0 and "tikd job approve" in r.stdout, r.stderr
    r = s.tikd("post", str(v3), "--account", "alice", "--privacy", "SELF_ONLY",
               "--approval-deadline", "+1s")
    assert r.returncode == 0, r.stderr
    q = s.tikd("queue").stdout
    assert q.count("awaiting_approval") == 3 and "waits for an operator's approval" in q
    assert s.fake.ctl.ledger()["requests"] == [] or not [
        x for x in s.fake.ctl.ledger()["requests"] if x["path"].startswith("/v2/post/")]
    assert s.tikd("job", "approve", "1").returncode == 0
    r = s.tikd("job", "reject", "2")
    assert r.returncode == 0 and "rejected" in r.stdout
    assert s.tikd("job", "approve", "2").returncode == 1  # no longer awaiting
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=20)
    d.wait_for(r"event=job\.final job=3 .*state=cancelled .*not approved before its deadline",
               timeout=20)
    assert [p["sha256"] for p in s.fake.ctl.posts()] == [sha(v1)]
    audit = s.audit()
    for event in ("job.approved", "job.rejected", "job.expired", "approval=required"):
        assert event in audit, event


def test_rules_post_through_the_ledger_exactly_once(quick, tmp_path):
    s = quick
    connect(s)
    media = tmp_path / "media"
    media.mkdir()
    video(media / "clip.mp4")
    video(media / "slow.mp4", fps=12)
    video(tmp_path / "outside.mp4")
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    (s.root / "rules" / "poster.lua").write_text("""
function on_load()
    local spec = { account = "alice", media = "%s/clip.mp4", privacy = "SELF_ONLY",
                   caption = "from a rule", key = "clip-1" }
    local id = assert(tikd.upload.post(spec))
    local again = assert(tikd.upload.post(spec))   -- the same key: the same job
    local none, why = tikd.upload.post{ account = "alice", media = "%s/outside.mp4",
                                        privacy = "SELF_ONLY" }
    local bad, problems = tikd.upload.post{ account = "alice", media = "%s/clip.mp4" }
    local slow, said = tikd.upload.post{ account = "alice", media = "%s/slow.mp4",
                                         privacy = "SELF_ONLY" }
    local m = assert(tikd.media.probe("%s/slow.mp4"))
    -- where a call cannot wait (a sort's comparator), a video is refused, never
    -- probed on the loop
    local sorted, nowait = pcall(table.sort, { 2, 1 }, function(x, y)
        tikd.upload.post{ account = "alice", media = "%s/clip.mp4", privacy = "SELF_ONLY" }
        return x < y
    end)
    local job = assert(tikd.upload.await(id, 30))
    tikd.log.info("rule posted", { id = id, again = again, state = job.state,
                                   chosen_by = job.chosen_by })
    tikd.log.info("refused", { outside = why, no_privacy = problems, slow = said,
                               nowait = nowait })
    tikd.log.info("probed", { fps = m.fps, verdict = m.verdict, rule = m.findings[1].rule,
                              w = m.width, h = m.height, codec = m.codec })
end
""" % (media, tmp_path, media, media, media, media))
    d = s.start()
    line = d.wait_for(r'msg="rule posted"', timeout=30)
    assert "id=1" in line and "again=1" in line and "state=published" in line
    assert "chosen_by=rule:rules/poster.lua@gen1" in line
    line = d.wait_for(r'msg=refused')
    assert "is not a readable file under media_roots" in line and "choose a privacy level" in line
    assert "23 to 60 fps (video.fps)" in line, line
    assert "waits for the media probe" in line, line
    line = d.wait_for(r'msg=probed')
    assert "fps=12" in line and "verdict=refused" in line and "rule=video.fps" in line, line
    assert " w=1080" in line and " h=1920" in line and " codec=h264" in line, line
    # a reload runs on_load again: the key keeps it from posting twice
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.loaded gen=2", after=mark)
    line = d.wait_for(r'msg="rule posted"', timeout=30, after=mark)
    assert "id=1" in line and "again=1" in line
    assert len(s.fake.ctl.posts()) == 1
    assert "rule:rules/poster.lua@gen1" in s.tikd("job", "show", "1").stdout


PHOTOS = ["https://media.example.test/tikd/%d.jpg" % i for i in range(3)]


def test_photo_carousels(quick):
    s = quick
    connect(s)
    d = s.start()
    args = []
    for u in PHOTOS:
        args += ["--photo", u]
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", *args,
               "--caption", "market day", "--description", "three stalls #food",
               "--cover-index", "1", "--auto-music", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "published" in r.stdout
    r = s.tikd("post", "--account", "alice", "--draft", *args, "--wait")
    assert r.returncode == 0 and "in_inbox" in r.stdout, r.stdout + r.stderr
    posts = s.fake.ctl.posts()
    assert len(posts) == 2
    direct = [p for p in posts if p["publish_type"] != "INBOX_SHARE"][0]
    assert direct["media_type"] == "PHOTO" and direct["urls"] == PHOTOS
    assert direct["title"] == "market day" and direct["description"] == "three stalls #food"
    # a domain not verified for the app: TikTok's refusal, explained
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY",
               "--photo", "https://elsewhere.example.org/a.jpg", "--wait")
    assert r.returncode == 1 and "URL properties" in r.stdout, r.stdout
    # checked when planned
    many = []
    for i in range(36):
        many += ["--photo", "https://media.example.test/%d.jpg" % i]
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", *many)
    assert r.returncode == 1 and "1 to 35 images, not 36" in r.stderr
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo",
               "http://media.example.test/a.jpg", "--caption", "x" * 91, "--cover-index", "3")
    assert r.returncode == 1
    for says in ("neither an https:// URL", "title is 91 UTF-16 units", "cover index 3"):
        assert says in r.stderr, says
    assert d.proc.poll() is None


def hooks_to(s, **webhook):
    """The fake's webhooks go to tikd's listener."""
    s.fake.ctl.set_config(webhook=dict(url="http://127.0.0.1:%d/webhooks/tiktok" % s.port,
                                       **webhook))


def test_a_lost_pull_answer_is_never_sent_twice(quick):
    """TikTok takes the photo init, its answer is lost on the way back: the
    job is unsure, never sent again, and TikTok's webhook naming the publish
    gives it its final state: published, as at TikTok."""
    s = quick
    hooks_to(s)
    connect(s)
    d = s.start()
    s.fake.ctl.add_fault(kind="reset", path_prefix="/v2/post/publish/content/init/",
                         phase="response")
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY",
               "--photo", PHOTOS[0], "--wait", timeout=60)
    inits = [q for q in s.fake.ctl.ledger()["requests"] if q["path"].endswith("content/init/")]
    assert len(inits) == 1  # one init, whatever happened to its answer
    assert r.returncode == 0, (r.stdout, inits, "\n".join(d.lines[-30:]))
    d.wait_for(r"event=job\.unsure job=1 .*not sent again|event=job\.unsure job=1 ")
    (pub,) = s.fake.ctl.publishes()
    show = s.tikd("job", "show", "1").stdout
    assert "state:        published" in show and pub["publish_id"] in show, show
    audit = s.audit()
    assert "job.unsure" in audit and "job.adopted" in audit and "via=webhook" in audit, audit
    d.wait_for(r"event=job\.adopted job=1 ")
    assert d.proc.poll() is None


def test_two_lost_pull_answers_of_one_account_are_each_named_right(quick):
    """Two photo posts of one account, both inits answered by a reset: one
    pull of a kind per account is unsettled at a time, so each webhook names
    exactly one job, and each job ends with its own publish."""
    s = quick
    hooks_to(s)
    # TikTok takes 2 s to pull: both answers are lost before either webhook
    s.fake.ctl.set_config(processing={"download_sec": 200})
    connect(s)
    s.fake.ctl.add_fault(kind="reset", path_prefix="/v2/post/publish/content/init/",
                         phase="response", count=2)
    d = s.start()
    for i in range(2):
        r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY",
                   "--photo", "https://media.example.test/tikd/pair-%d.jpg" % i)
        assert r.returncode == 0, r.stderr
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    d.wait_for(r"event=job\.final job=2 .*state=published", timeout=30)
    pubs = {p["publish_id"]: p["urls"] for p in s.fake.ctl.publishes()}
    assert len(pubs) == 2
    for i in (1, 2):
        show = s.tikd("job", "show", str(i)).stdout
        pid = re.search(r"publish_id:\s+(\S+)", show).group(1)
        assert pubs[pid] == ["https://media.example.test/tikd/pair-%d.jpg" % (i - 1)], (show, pubs)
    assert s.audit().count("job.adopted") == 2


def test_a_webhook_ahead_of_its_inits_answer_is_taken_later(quick):
    """TikTok's webhook for a pull can come before the init's answer: it is
    refused for now (TikTok delivers it again) rather than guessed at, and
    the job learns its publish from the answer."""
    s = quick
    hooks_to(s, retry_delays_sec=[0.3] * 20)
    connect(s)
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/v2/post/publish/content/init/",
                         answer_delay_sec=1.5)
    d = s.start()
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", PHOTOS[1])
    assert r.returncode == 0, r.stderr
    d.wait_for(r"event=webhook\.not_yet ", timeout=20)
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    d.wait_for(r"event=webhook\.received .*duplicate=false", timeout=20)
    (pub,) = s.fake.ctl.publishes()
    assert pub["publish_id"] in s.tikd("job", "show", "1").stdout
    assert "job.adopted" not in s.audit() and "job.unsure" not in s.audit()


def test_cancelling_an_unsure_job_ends_its_wait(quick):
    """An unsure job the operator cancels leaves the due index: nothing comes
    due for it again (no busy loop once its wait would have ended)."""
    s = quick
    s.cfg.write_text(s.cfg.read_text() + "jobs = { unsure_wait = 1 }\n")
    connect(s)
    d = s.start()
    s.fake.ctl.add_fault(kind="reset", path_prefix="/v2/post/publish/content/init/",
                         phase="response")
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", PHOTOS[2])
    assert r.returncode == 0, r.stderr
    d.wait_for(r"event=job\.unsure job=1 ", timeout=20)
    assert s.tikd("job", "cancel", "1").returncode == 0
    time.sleep(1.5)  # past the wait it had
    c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
    time.sleep(2)
    assert cpu_seconds(d.proc.pid) - c0 < 0.3 * (time.monotonic() - t0)
    assert "state:        cancelled" in s.tikd("job", "show", "1").stdout
    assert d.proc.poll() is None


def test_an_unsure_pull_tiktok_says_nothing_of_is_left_to_the_operator(quick):
    """Without a webhook (none configured, or a pull TikTok never got), an
    unsure job waits jobs.unsure_wait, then fails saying what to check; the
    operator may retry it, and only then is it sent again."""
    s = quick
    s.cfg.write_text(s.cfg.read_text() + "jobs = { unsure_wait = 2 }\n")
    connect(s)
    d = s.start()
    s.fake.ctl.add_fault(kind="reset", path_prefix="/v2/post/publish/content/init/",
                         phase="request", after_bytes=1)
    # it never reached TikTok, whole: tikd cannot know that. (One byte of the
    # body is read first: a request cut before any of its body left may be
    # resent by libcurl on a new connection, rightly, as one no server acted on.)
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", PHOTOS[0])
    assert r.returncode == 0, r.stderr
    d.wait_for(r"event=job\.unsure job=1 ", timeout=20)
    q = s.tikd("queue", "--state", "unsure").stdout
    assert "unsure" in q and "not sent again" in q, q
    st = s.tikd("status").stdout
    assert "attention:   1 job TikTok may have taken unanswered" in st, st
    d.wait_for(r"event=job\.final job=1 .*state=failed", timeout=20)
    show = s.tikd("job", "show", "1").stdout
    assert "said nothing of it within" in show and "tikd job retry 1" in show, show
    assert not s.fake.ctl.publishes()
    assert s.tikd("job", "retry", "1").returncode == 0
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    assert len(s.fake.ctl.posts()) == 1


MKIMG = os.path.join(REPO, "tests", "fixtures", "mkimg.py")


def image(path, fmt="jpeg", size="1080x1350", *extra):
    subprocess.run(["/usr/bin/python3", MKIMG, str(path), "--format", fmt, "--size", size,
                    *extra], check=True)
    return path


def test_local_images_are_served_to_tiktok_at_short_lived_urls(s, tmp_path):
    """TikTok pulls photos only from a verified domain: tikd serves local
    images there, each at an unguessable URL that stops working once TikTok
    has pulled it or the job ends. Images are checked before the init, and
    the message names the image."""
    s.cfg.write_text(s.cfg.read_text() + 'media = { public_url = "https://cdn.example.test/tikd/",'
                     ' check_urls = false }\n')
    s.fake.ctl.set_config(time_scale=1.0, processing={"processing_sec": 600})
    connect(s)
    d = s.start()
    a = image(tmp_path / "a.jpg")
    b = image(tmp_path / "b.webp", "webp-vp8", "1080x1080")
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", str(a),
               "--photo", str(b), "--photo", PHOTOS[0])
    assert r.returncode == 0, r.stderr
    for _ in range(100):
        pubs = s.fake.ctl.publishes()
        if pubs:
            break
        time.sleep(0.1)
    urls = pubs[0]["urls"]
    assert urls[2] == PHOTOS[0]
    base = "https://cdn.example.test/tikd/"
    assert all(u.startswith(base) for u in urls[:2]), urls
    assert urls[0].endswith(".jpg") and urls[1].endswith(".webp")
    assert len(set(urls)) == 3 and len(urls[0]) > len(base) + 60  # unguessable
    local = "http://127.0.0.1:%d/media/" % s.port
    # the operator's proxy maps the public prefix to tikd's /media/
    head = fakectl.http_request("HEAD", local + urls[0][len(base):])
    assert head.status == 200
    got = fakectl.http_request("GET", local + urls[0][len(base):])
    assert got.status == 200 and got.body == a.read_bytes()
    assert got.headers["content-type"] == "image/jpeg"
    # pulled once: the URL is dead
    assert fakectl.http_request("GET", local + urls[0][len(base):]).status == 404
    assert fakectl.http_request("GET", local + "0" * 64 + ".jpg").status == 404
    assert fakectl.http_request("GET", local + "../../etc/passwd").status == 404
    # the job ends: the rest stop working too
    second = local + urls[1][len(base):]
    assert fakectl.http_request("HEAD", second).status == 200
    r = s.tikd("job", "cancel", "1")
    assert r.returncode == 0, r.stderr
    assert fakectl.http_request("HEAD", second).status == 404
    # checked before anything is sent, naming the image
    big = image(tmp_path / "big.jpg", "jpeg", "3024x4032")
    png = image(tmp_path / "shot.png", "png", "1080x1080")
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", str(a),
               "--photo", str(big), "--photo", str(png))
    assert r.returncode == 1
    assert "photo 2 (%s): 3024x4032 is larger than TikTok's 1080p" % big in r.stderr, r.stderr
    assert "photo 3 (%s): PNG is not accepted: TikTok takes JPEG or WebP" % png in r.stderr, \
        r.stderr
    assert d.proc.poll() is None


def test_local_images_need_a_public_url(quick, tmp_path):
    s = quick
    connect(s)
    a = image(tmp_path / "a.jpg")
    r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo", str(a))
    assert r.returncode == 1 and "media.public_url" in r.stderr, r.stderr


def test_videos_pulled_from_urls_and_called_back(quick):
    """A video TikTok pulls from an https URL: posted directly or as a draft,
    a domain TikTok has not verified explained, and a pull in progress
    called back at TikTok by `tikd job cancel`."""
    s = quick
    connect(s)
    d = s.start()
    url = "https://media.example.test/tikd/clip.mp4"
    r = s.tikd("post", url, "--account", "alice", "--privacy", "SELF_ONLY", "--caption", "pulled",
               "--wait")
    assert r.returncode == 0 and "published" in r.stdout, r.stdout + r.stderr
    r = s.tikd("post", url, "--account", "alice", "--draft", "--wait")
    assert r.returncode == 0 and "in_inbox" in r.stdout, r.stdout + r.stderr
    pubs = s.fake.ctl.publishes()
    assert [p["source"] for p in pubs] == ["PULL_FROM_URL"] * 2
    assert all(p["urls"] == [url] for p in pubs)
    assert pubs[0]["post_info"]["title"] == "pulled"
    # not a verified domain: TikTok's refusal, with what to verify
    r = s.tikd("post", "https://elsewhere.example.org/v.mp4", "--account", "alice", "--privacy",
               "SELF_ONLY", "--wait")
    assert r.returncode == 1 and "URL properties" in r.stdout, r.stdout
    # plain http is refused when planned
    r = s.tikd("post", "http://media.example.test/v.mp4", "--account", "alice", "--privacy",
               "SELF_ONLY")
    assert r.returncode == 1 and "only from https URLs" in r.stderr, r.stderr
    # a slow download, called back while TikTok pulls it
    s.fake.ctl.set_config(time_scale=1.0, processing={"download_sec": 600})
    r = s.tikd("post", url, "--account", "alice", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    jid = re.search(r"job (\d+)", r.stdout).group(1)
    for _ in range(100):
        if "state:        processing" in s.tikd("job", "show", jid).stdout:
            break
        time.sleep(0.1)
    r = s.tikd("job", "cancel", jid)
    assert r.returncode == 0 and "TikTok stopped pulling publish" in r.stdout, r.stdout + r.stderr
    pub = s.fake.ctl.publishes()[-1]
    assert pub["status"] == "FAILED" and pub["fail_reason"] == "publish_cancelled", pub
    assert "state:        cancelled" in s.tikd("job", "show", jid).stdout
    assert d.proc.poll() is None


class StaticTLS:
    """An https server on localhost for photo URLs: what tikd fetches to
    check an image before TikTok pulls it."""

    def __init__(self, root, cert, key):
        import http.server
        import ssl
        import threading

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.startswith("/moved"):
                    self.send_response(302)
                    self.send_header("Location", "/a.jpg")
                    self.end_headers()
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.base = "https://localhost:%d/" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_photo_urls_are_checked_before_tiktok_pulls_them(quick, tmp_path):
    from test_http_client import make_ca
    s = quick
    ca, cert, key = make_ca(tmp_path)
    www = tmp_path / "www"
    www.mkdir()
    image(www / "a.jpg")
    image(www / "exif.jpg", "jpeg", "1080x1080", "--exif", "90000")  # its size is past 64 KiB
    image(www / "big.jpg", "jpeg", "4000x3000")
    image(www / "shot.png", "png", "1080x1080")
    srv = StaticTLS(www, cert, key)
    try:
        s.cfg.write_text(s.cfg.read_text() + 'media = { check_urls = true }\n'
                         'http = { ca_file = "%s" }\n' % ca)
        s.fake.ctl.set_config(verified_domains=["media.example.test", "localhost"])
        connect(s)
        d = s.start()
        r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo",
                   srv.base + "a.jpg", "--photo", srv.base + "exif.jpg", "--wait")
        assert r.returncode == 0 and "published" in r.stdout, r.stdout + r.stderr
        for bad, says in (("big.jpg", "photo 2 (%sbig.jpg): 4000x3000 is larger than TikTok's"),
                          ("shot.png", "photo 2 (%sshot.png): PNG is not accepted"),
                          ("gone.jpg", "photo 2 (%sgone.jpg): HTTP 404 when tikd fetched it"),
                          ("moved.jpg", "photo 2 (%smoved.jpg): the URL redirects (HTTP 302)")):
            n = len(s.fake.ctl.publishes())
            r = s.tikd("post", "--account", "alice", "--privacy", "SELF_ONLY", "--photo",
                       srv.base + "a.jpg", "--photo", srv.base + bad, "--wait")
            assert r.returncode == 1 and says % srv.base in r.stdout, (bad, r.stdout)
            assert len(s.fake.ctl.publishes()) == n  # nothing was sent to TikTok
        assert d.proc.poll() is None
    finally:
        srv.close()


def test_before_publish_changes_defers_or_cancels_and_is_on_the_record(quick, tmp_path):
    """The rules' before_publish sees the job and the creator's privacy
    options before the init: it may change the caption or privacy (checked
    again, and recorded as the rule's choice), defer, or cancel."""
    s = quick
    connect(s)
    (s.root / "rules" / "gate.lua").write_text("""
function before_publish(job, creator)
    tikd.log.info("asked", { id = job.id, options = table.concat(creator.privacy_options, ",") })
    if job.caption:match("#later") and not tikd.kv.get("deferred" .. job.id) then
        tikd.kv.set("deferred" .. job.id, true)
        return { defer = 1, reason = "not before the embargo" }
    end
    if job.caption:match("#nope") then
        return { cancel = true, reason = "off-brand" }
    end
    if job.caption:match("#bad") then
        return { privacy = "EVERYONE" }
    end
    return { caption = job.caption .. " #checked", privacy = "SELF_ONLY" }
end
""")
    d = s.start()
    v = [video(tmp_path / ("v%d.mp4" % i), mdat=100_000 + i) for i in range(4)]
    r = s.tikd("post", str(v[0]), "--account", "alice", "--privacy", "PUBLIC_TO_EVERYONE",
               "--caption", "hello", "--wait")
    assert r.returncode == 0 and "published" in r.stdout, r.stdout + r.stderr
    show = s.tikd("job", "show", "1").stdout
    assert "caption:      hello #checked" in show and "privacy:      SELF_ONLY" in show, show
    assert "chosen by:    rule:rules/gate.lua@gen1" in show, show
    assert "options=PUBLIC_TO_EVERYONE" in d.wait_for(r"msg=asked .*\bid=1\b")
    pub = s.fake.ctl.publishes()[0]
    assert pub["post_info"]["title"] == "hello #checked"
    assert pub["privacy_level"] == "SELF_ONLY"
    assert "by=rule:rules/gate.lua@gen1" in s.audit()
    # deferred once, then posted
    r = s.tikd("post", str(v[1]), "--account", "alice", "--privacy", "SELF_ONLY",
               "--caption", "soon #later", "--wait")
    assert r.returncode == 0 and "deferred by rule:rules/gate.lua@gen1: not before the embargo" \
        in r.stdout, r.stdout
    # cancelled, with the rule's reason
    r = s.tikd("post", str(v[2]), "--account", "alice", "--privacy", "SELF_ONLY",
               "--caption", "x #nope", "--wait")
    assert r.returncode == 1 and "cancelled by rule:rules/gate.lua@gen1: off-brand" in r.stdout
    # an invalid change fails clearly, and nothing reaches TikTok
    r = s.tikd("post", str(v[3]), "--account", "alice", "--privacy", "SELF_ONLY",
               "--caption", "x #bad", "--wait")
    assert r.returncode == 1 and "made the post invalid" in r.stdout \
        and "unknown privacy level 'EVERYONE'" in r.stdout, r.stdout
    assert len(s.fake.ctl.publishes()) == 2


def test_an_accounts_preferred_privacy_falls_back_to_what_tiktok_offers(quick, tmp_path):
    """tikd.account{ privacy = { "PUBLIC_TO_EVERYONE", "SELF_ONLY" } }: the
    first level creator_info offers is taken at the init, and recorded as
    the declaring rule's choice; an unaudited app's SELF_ONLY is explained."""
    s = quick
    media = tmp_path / "media"
    media.mkdir()
    clip = video(media / "clip.mp4")
    s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % media)
    s.fake.ctl.put_creator({"open_id": "-000FakePrivate0000000000000001", "username": "priv",
                            "private_account": True, "privacy_level_options": ["SELF_ONLY"]})
    connect(s, "priv", user="priv")
    (s.root / "rules" / "pref.lua").write_text("""
tikd.account("priv", { privacy = { "PUBLIC_TO_EVERYONE", "SELF_ONLY" } })
function on_load()
    local id, why = tikd.upload.post{ account = "priv", media = "%s", key = "one" }
    tikd.log.info("planned", { id = id or -1, why = why or "" })
end
""" % clip)
    d = s.start()
    d.wait_for(r"msg=planned .*\bid=1\b")
    line = d.wait_for(r"event=job\.privacy_fallback", timeout=20)
    assert "took=SELF_ONLY" in line and "may only post SELF_ONLY" in line, line
    d.wait_for(r"event=job\.final job=1 .*state=published", timeout=30)
    show = s.tikd("job", "show", "1").stdout
    assert "privacy:      SELF_ONLY" in show and "chosen by:    rule:rules/pref.lua@gen1" in show
    assert s.fake.ctl.publishes()[0]["privacy_level"] == "SELF_ONLY"


def test_a_stopping_daemon_sends_nothing_its_rules_were_not_asked_about(quick, tmp_path):
    """From SIGTERM on, no job starts a step: the rules, which stop being
    asked, would otherwise have no say (a veto in before_publish skipped)."""
    s = quick
    connect(s)
    (s.root / "rules" / "veto.lua").write_text(
        "function on_load() tikd.sleep(60) end\n"  # keeps the grace period running
        "function before_publish(job, creator) return { cancel = true, reason = 'vetoed' } end\n")
    d = s.start()
    d.signal(signal.SIGTERM)
    d.wait_for(r"event=daemon\.stopping")
    r = s.tikd("post", str(video(tmp_path / "v.mp4")), "--account", "alice",
               "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    assert d.stop() == 0
    d.wait_for(r"event=daemon\.grace_expired")
    assert not s.fake.ctl.requests("/v2/post/publish/"), "a request left while stopping"
    assert "scheduled" in s.tikd("job", "show", "1").stdout
    # the next start asks the rules, and they have the last word
    d = s.start()
    d.wait_for(r"event=job\.final .*state=cancelled", timeout=20)
    assert "cancelled by rule:rules/veto.lua" in s.tikd("job", "show", "1").stdout
    assert not s.fake.ctl.requests("/v2/post/publish/video/init/")


def test_a_before_publish_cut_short_by_shutdown_leaves_a_pull_unsent(quick, tmp_path):
    """A rule call cancelled when the grace period ends has no say, and no
    pull's init follows it: the job resumes at the next start instead of
    failing as "may already be on its way"."""
    s = quick
    connect(s)
    (s.root / "rules" / "slow.lua").write_text(
        "function before_publish(job, creator) tikd.log.info('asked') tikd.sleep(60) end\n")
    d = s.start()
    r = s.tikd("post", "https://media.example.test/tikd/clip.mp4", "--account", "alice",
               "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    d.wait_for(r"msg=asked", timeout=20)
    assert d.stop() == 0
    d.wait_for(r"event=daemon\.grace_expired cancelled=1")
    assert not s.fake.ctl.requests("/v2/post/publish/video/init/")
    (s.root / "rules" / "slow.lua").unlink()
    d = s.start()
    d.wait_for(r"event=job\.final .*state=published", timeout=30)
    assert len(s.fake.ctl.requests("/v2/post/publish/video/init/")) == 1


def test_a_pull_cancelled_while_its_init_is_on_its_way_is_called_back(quick, tmp_path):
    """`tikd job cancel` while a pull's init is unanswered: when TikTok's
    answer comes the publish goes on the record (the job stays cancelled) and
    TikTok is asked to stop the pull, instead of the publish going unseen."""
    s = quick
    connect(s)
    s.fake.ctl.add_fault(kind="slow_answer", path_prefix="/v2/post/publish/video/init/",
                         answer_delay_sec=2)
    d = s.start()
    r = s.tikd("post", "https://media.example.test/tikd/late.mp4", "--account", "alice",
               "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    wait = time.monotonic() + 20
    while not s.fake.ctl.publishes() and time.monotonic() < wait:
        time.sleep(0.05)
    assert s.fake.ctl.publishes(), "the init never reached the fake"
    r = s.tikd("job", "cancel", "1")
    assert r.returncode == 0 and "may still appear" in s.tikd("job", "show", "1").stdout, r.stdout
    d.wait_for(r"event=job\.cancelled_in_flight job=1 ", timeout=20)
    d.wait_for(r"event=job\.cancel_at_tiktok job=1 ", timeout=20)
    (pub,) = s.fake.ctl.publishes()
    assert s.fake.ctl.requests("/v2/post/publish/cancel/")
    show = s.tikd("job", "show", "1").stdout
    assert "state:        cancelled" in show and pub["publish_id"] in show, show


def test_upload_urls_never_reach_the_log(quick, tmp_path):
    """TikTok's upload URL carries its upload_token: a credential. A failed
    PUT is logged (at info) and every attempt at debug; none shows the query."""
    s = quick
    s.cfg.write_text(s.cfg.read_text() + 'log = { level = "debug" }\n')
    connect(s)
    d = s.start()
    s.fake.ctl.add_fault(kind="status", path_prefix="/upload/", status=503)
    v = video(tmp_path / "clip.mp4", duration=3)
    r = s.tikd("post", str(v), "--account", "alice", "--privacy", "SELF_ONLY", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    d.wait_for(r"event=http\.outcome method=PUT .*status=503")
    d.wait_for(r"event=http\.outcome method=PUT .*status=20")
    puts = [l for l in d.lines if "event=http." in l and "method=PUT" in l]
    assert any("event=http.attempt" in l for l in puts), puts
    text = "\n".join(d.lines) + r.stdout + r.stderr + s.tikd("job", "show", "1").stdout
    assert "upload_token" not in text and "upload_id=" not in text
    assert all(re.search(r"url=\S+/upload/\S*\?\[redacted\] ", l) for l in puts), puts


def test_settings_the_creator_turned_off_go_out_off(quick, tmp_path):
    """Issue 13, item 16: creator_info says comments (and, for videos, duet
    and stitch) are off for this creator: every post type sends them off,
    whatever the rule or the operator chose, and the job records who
    decided."""
    s = quick
    s.fake.ctl.put_creator({"open_id": "-000FakeNoComments0000000000001", "username": "quiet",
                            "comment_disabled": True, "duet_disabled": True,
                            "stitch_disabled": False})
    connect(s, "quiet", user="quiet")
    d = s.start()
    r = s.tikd("post", "--account", "quiet", "--privacy", "SELF_ONLY",
               "--photo", "https://media.example.test/tikd/quiet.jpg", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    v = video(tmp_path / "clip.mp4", duration=3)
    r = s.tikd("post", str(v), "--account", "quiet", "--privacy", "SELF_ONLY", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    photo, clip = s.fake.ctl.publishes()
    assert photo["post_info"]["disable_comment"] is True, photo["post_info"]
    assert clip["post_info"]["disable_comment"] is True and clip["post_info"]["disable_duet"] is True
    assert clip["post_info"]["disable_stitch"] is False
    audit = s.audit()
    assert "by=creator_info disabled=comment" in audit, audit
    assert "by=creator_info disabled=comment,duet" in audit, audit
    assert "options:      comment off, duet on" in s.tikd("job", "show", "1").stdout
    assert "options:      comment off, duet off, stitch on" in s.tikd("job", "show", "2").stdout
    assert d.proc.poll() is None


@pytest.mark.parametrize("fault", [
    {"kind": "status", "status": 500, "phase": "after"},
    {"kind": "status", "status": 503, "phase": "after", "body": "<html>bad gateway</html>"},
    {"kind": "malformed_json", "mode": "truncate"},
])
@pytest.mark.parametrize("what", ["photo", "video", "draft"])
def test_a_pull_answered_with_an_error_after_the_work_is_never_sent_twice(quick, fault, what):
    """Issue 13, item 13: TikTok accepted the pull, then its answer was a
    5xx or garbled. tikd cannot tell that from a refusal it may retry, so it
    never sends the init again: the job is unsure until TikTok's webhook
    names the publish, then ends as TikTok says. One post at TikTok."""
    s = quick
    hooks_to(s)
    connect(s)
    d = s.start()
    path = {"photo": "/v2/post/publish/content/init/", "video": "/v2/post/publish/video/init/",
            "draft": "/v2/post/publish/inbox/video/init/"}[what]
    s.fake.ctl.add_fault(path_prefix=path, **fault)
    if what == "photo":
        args = ["--privacy", "SELF_ONLY", "--photo", PHOTOS[0]]
    else:
        args = ["https://media.example.test/tikd/clip-%s.mp4" % what] + (
            ["--draft"] if what == "draft" else ["--privacy", "SELF_ONLY"])
    r = s.tikd("post", "--account", "alice", *args, "--wait", timeout=60)
    inits = [q for q in s.fake.ctl.ledger()["requests"] if q["path"] == path]
    assert len(inits) == 1, inits  # one init, whatever its answer said
    (pub,) = s.fake.ctl.publishes()
    # unsure until TikTok's webhook names the publish; then its status decides
    assert r.returncode == 0, r.stdout + r.stderr
    d.wait_for(r"event=job\.unsure job=1 ")
    d.wait_for(r"event=job\.adopted job=1 ")
    show = s.tikd("job", "show", "1").stdout
    want = "in_inbox" if what == "draft" else "published"
    assert "state:        " + want in show and pub["publish_id"] in show, show
    assert d.proc.poll() is None
