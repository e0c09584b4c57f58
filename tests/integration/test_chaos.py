"""The chaos suite (`make chaos` at full size, a small size in `make test`):
a mix of posts (local videos of one and several chunks, inbox drafts, photo
carousels, videos pulled from URLs, files dropped into an intake folder)
over several accounts with short-lived tokens, while tikd is killed with
SIGKILL at random moments: during start-up, uploads, requests in flight,
token refreshes, rule reloads and intake; while a second daemon is started
on the same data directory; while the database is full; and while the fake
TikTok injects a fault mix (5xx before and after the work, resets, stalls,
429 with Retry-After, garbled JSON). Both readings of TikTok's refresh-token
rotation are run.

Then TikTok's ledger is the judge: 0 lost, 0 duplicate, 0 stuck, every
final state equal to TikTok's, no request inside a Retry-After, and the
daily-cap counts TikTok's (never below; above only by inits a kill caught
in flight, which tikd counts and shows). The figures are printed.

TIKD_CHAOS=full (make chaos) runs the full size: 240 kills and 320 posts per token
regime, about five minutes."""
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import TIKD, Daemon
from test_full_disk import DBFILL
from test_publish import connect, hooks_to, sha, video


SIZES = {
    # accounts, local videos (of which multi-chunk), drafts, photo posts,
    # URL pulls, intake drops, kill rounds, settle bound (s)
    "small": dict(accounts=3, videos=14, big=1, drafts=4, photos=4, pulls=3, intake=3,
                  kills=16, settle=150),
    "full": dict(accounts=8, videos=180, big=6, drafts=40, photos=40, pulls=30, intake=30,
                 kills=240, settle=400),
}
SIZE = SIZES[os.environ.get("TIKD_CHAOS", "small")]

FAULTS = [  # the first rule that fires on a request wins: the delays come last
    {"kind": "status", "status": 500, "path_prefix": "/v2/post/publish/video/init/",
     "probability": 0.05},
    {"kind": "status", "status": 503, "phase": "after", "probability": 0.1,
     "path_prefix": "/v2/post/publish/content/init/"},
    {"kind": "reset", "phase": "response", "probability": 0.05,
     "path_prefix": "/v2/post/publish/content/init/"},
    {"kind": "reset", "phase": "response", "path_prefix": "/upload/", "probability": 0.05},
    {"kind": "rate_limit", "retry_after": 1, "probability": 0.06,
     "path_prefix": "/v2/post/publish/status/fetch/"},
    {"kind": "malformed_json", "path_prefix": "/v2/post/publish/status/fetch/",
     "probability": 0.03},
    {"kind": "stall", "stall_sec": 0.5, "probability": 0.03,
     "path_prefix": "/v2/post/publish/creator_info/query/"},
    {"kind": "status", "status": 500, "path_prefix": "/v2/oauth/token/", "probability": 0.1},
    # slow enough that kills land in uploads, inits and refreshes
    {"kind": "delay", "path_prefix": "/upload/", "delay_sec": 0.05},
    {"kind": "delay", "path_prefix": "/v2/post/publish/", "delay_sec": 0.02},
    {"kind": "delay", "path_prefix": "/v2/oauth/token/", "delay_sec": 0.08},
]

INTAKE_RULE = """-- the chaos suite's intake: every new file goes to acct0 once
tikd.account("acct0", { privacy = "SELF_ONLY" })
function on_media(item)
    if not item.folder:match("/chaos%%-in$") then
        return
    end
    local id, err = tikd.upload.post{ account = "acct0", media = item.path,
                                      caption = "chaos intake", key = item.hash }
    if not id then
        tikd.log.warn("chaos: not planned", { why = err })
    end
    return id and 1 or 0
end
-- generation %d
"""


def queue_rows(s, *args):
    rows = []
    for line in s.tikd("queue", *args).stdout.splitlines()[1:]:
        f = line.split()  # fixed columns: MEDIA is empty for photo posts
        rows.append({"id": int(f[0]), "state": f[1], "account": f[2],
                     "media": line[65:89].strip(), "why": line[90:]})
    return rows


def reconnect_lost_accounts(s, names):
    """The operator: an account whose rotated refresh a kill lost (strict
    TikTok) is connected again."""
    n = 0
    for name, row in s.accounts().items():
        if row["state"] != "needs_reauth":
            continue
        for _ in range(8):  # the token endpoint's injected 5xx hit the exchange too
            url = s.approve(s.authorize_url(name, reauth=True), user=names[name])
            r = s.tikd("account", "complete", name, url)
            if r.returncode == 0:
                break
            assert "server_error" in r.stderr, r.stderr
        assert r.returncode == 0, r.stderr
        n += 1
    return n


@pytest.mark.parametrize("grace", [0, 60], ids=["strict", "lenient"])
def test_chaos(s, tmp_path, grace):
    t_start = time.monotonic()
    rng = random.Random(20261203 + grace)
    s.limits(window=2, daily=1000, pending=1000)
    s.fake.ctl.set_config(time_scale=0.05, rate_limit_retry_after=True, access_token_ttl_sec=8,
                          refresh_reuse_grace_sec=grace)
    hooks_to(s, retry_delays_sec=[0.2] * 40)  # TikTok retries while tikd is down
    inbox = tmp_path / "chaos-in"
    inbox.mkdir()
    base_cfg = s.cfg.read_text() + (
        'media_roots = { "%s" }\nintake = { folders = { "%s" }, settle = 0.2 }\n'
        % (inbox, inbox))
    # an init a kill caught before it left is unsure, and TikTok never names it:
    # it goes to the operator after 15 s instead of two hours
    base_cfg += "jobs = { unsure_wait = 15 }\n"
    big_map = 'store = { map_initial = "64MiB", map_max = "1GiB" }\n'
    s.cfg.write_text(base_cfg + big_map)
    rule = s.root / "rules" / "chaos.lua"
    gen = 0
    rule.write_text(INTAKE_RULE % gen)
    names = {}
    for i in range(SIZE["accounts"]):
        user = "chaos_%d" % i
        s.fake.ctl.put_creator({"open_id": "-000FakeChaos%02d%s" % (i, "0" * 15),
                                "username": user})
        connect(s, "acct%d" % i, user=user)
        names["acct%d" % i] = user
    accounts = sorted(names)

    # ---- the work: what must reach TikTok exactly once ----
    want_files, want_urls = {}, {}  # sha256 -> path; urls tuple -> job kind
    base = video(tmp_path / "base.mp4", mdat=120_000, duration=4).read_bytes()

    def small_video(name, i):
        p = tmp_path / name
        p.write_bytes(base[:-8] + i.to_bytes(8, "big"))
        return p

    # planned in waves while tikd is killed, so there is work to the end
    plans = []  # (args, what it posts)
    for i in range(SIZE["videos"] + SIZE["drafts"]):
        if i < SIZE["big"]:
            p = video(tmp_path / ("big%d.mp4" % i), mdat=22_000_000 + i, duration=5)
        else:
            p = small_video("v%03d.mp4" % i, i)
        mode = ["--draft"] if i >= SIZE["videos"] else ["--privacy", "SELF_ONLY"]
        plans.append(([str(p), "--account", accounts[i % len(accounts)]] + mode, p))
        want_files[sha(p)] = p
    for i in range(SIZE["photos"]):
        urls = ["https://media.example.test/tikd/chaos-%d-%d.jpg" % (i, n) for n in range(2)]
        plans.append((["--account", accounts[i % len(accounts)], "--privacy", "SELF_ONLY"]
                      + [a for u in urls for a in ("--photo", u)], None))
        want_urls[tuple(urls)] = "photo"
    for i in range(SIZE["pulls"]):
        url = "https://media.example.test/tikd/chaos-clip-%d.mp4" % i
        plans.append(([url, "--account", accounts[i % len(accounts)], "--privacy", "SELF_ONLY"],
                      None))
        want_urls[(url,)] = "pull"
    rng.shuffle(plans)
    planned = len(plans)
    drops = [small_video("drop%02d.mp4" % i, 1000 + i) for i in range(SIZE["intake"])]
    for p in drops:
        want_files[sha(p)] = p
    per_round = -(-planned // (SIZE["kills"] // 2))  # all planned by half-way

    def plan_some():
        for _ in range(min(per_round, len(plans))):
            args, _ = plans.pop()
            r = s.tikd("post", *args)
            assert r.returncode == 0, r.stderr

    s.fake.ctl.add_faults([dict(f, count=None) for f in FAULTS])

    # ---- the kills ----
    kills, kill_times = {"start-up": 0, "running": 0, "reload": 0, "intake": 0,
                         "full disk": 0}, []
    refused_second = full_disk_holds = 0
    drop_i = 0
    for k in range(SIZE["kills"]):
        plan_some()
        what = rng.choice(["start-up"] + ["running"] * 4 + ["reload", "intake"])
        if k in (SIZE["kills"] // 3, 2 * SIZE["kills"] // 3):
            what = "full disk"
        if what == "intake" and drop_i >= len(drops):
            what = "running"
        if what == "full disk":  # a database that cannot grow, as a full disk leaves it
            size = os.path.getsize(s.root / "data" / "data.mdb")
            mib = (size >> 20) + 2
            s.cfg.write_text(base_cfg + 'store = { map_initial = "%dMiB", map_max = "%dMiB" }\n'
                             % (mib, mib))
            fill = subprocess.run([DBFILL, str(s.root / "data"), str(mib << 20)],
                                  capture_output=True, text=True)
            assert fill.returncode == 0, fill
        if what == "start-up":
            d = Daemon(s.cfg, env=s.env)
            s.daemons.append(d)
            time.sleep(rng.uniform(0, 0.08))
        else:
            d = s.start()
            if rng.random() < 0.2:  # a second daemon on the same data dir never runs
                r = subprocess.run([TIKD, "--config", str(s.cfg), "run"], capture_output=True,
                                   text=True, timeout=20, env=dict(os.environ, **s.env))
                assert r.returncode == 1 and "already running" in r.stderr, r
                refused_second += 1
            if what == "reload":
                gen += 1
                rule.write_text(INTAKE_RULE % gen)
                d.signal(signal.SIGHUP)
                time.sleep(rng.uniform(0, 0.05))
            elif what == "intake":
                shutil.copy(drops[drop_i], inbox / drops[drop_i].name)
                drop_i += 1
                time.sleep(rng.uniform(0.15, 0.35))  # about when it settles
            elif what == "full disk":  # held back, if there was work to commit
                try:
                    d.wait_for(r"event=store\.write_failed", timeout=3)
                    full_disk_holds += 1
                except AssertionError:
                    pass
            time.sleep(rng.uniform(0.01, 0.4))
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        kill_times.append(time.monotonic())
        kills[what] += 1
        if what == "full disk":
            s.cfg.write_text(base_cfg + big_map)  # room again
    while plans:
        plan_some()
    for p in drops[drop_i:]:  # the rest arrive while it runs
        shutil.copy(p, inbox / p.name)

    # ---- settle: every job final (an unsure one TikTok never named fails) ----
    d = s.start()
    reauths = 0
    end, calm = time.monotonic() + SIZE["settle"], 0
    while time.monotonic() < end:
        reauths += reconnect_lost_accounts(s, names)
        every = queue_rows(s, "--all")
        done = len(every) == planned + len(drops) and all(
            r["state"] in ("published", "in_inbox", "failed", "cancelled") for r in every)
        calm = calm + 1 if done else 0
        if calm == 3:
            break
        time.sleep(0.3)
    time.sleep(1)  # late webhooks
    posts = s.fake.ctl.posts()
    rows = queue_rows(s, "--all")
    log = "\n".join(d.lines[-60:])

    # ---- the ledger ----
    files_at = [p["sha256"] for p in posts if p["source"] == "FILE_UPLOAD"]
    urls_at = [tuple(p["urls"]) for p in posts if p["source"] != "FILE_UPLOAD"]
    dup = [x for x in set(files_at) if files_at.count(x) > 1]
    dup += [x for x in set(urls_at) if urls_at.count(x) > 1]
    assert not dup, ("posted twice", dup)
    stray = [x for x in files_at if x not in want_files] + [x for x in urls_at
                                                             if x not in want_urls]
    assert not stray, ("posted but never planned", stray)
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    unsure = [r for r in rows if r["state"] == "unsure"]
    # an unsure init TikTok never named, failed for the operator to check
    told = [r for r in rows if r["state"] == "failed" and "said nothing of it within" in r["why"]]
    # a pull held behind an unsure one of its account (one unsettled pull per
    # account) was never sent: it goes once TikTok names that one or the hold ends
    by_id = {r["id"]: r for r in rows}
    def held_behind(r):  # a photo post waiting for an unsure photo post of its account
        m = re.search(r"waits for job (\d+), a photo post of this account", r["why"])
        other = by_id.get(int(m.group(1)), {}) if m else {}
        return (r["state"] == "scheduled" and other.get("state") == "unsure"
                and other.get("account") == r["account"])

    held = [r for r in rows if held_behind(r)]
    stuck = [r for r in rows if r["state"] not in ("published", "in_inbox", "unsure")
             and r not in told and r not in held]
    assert not stuck, ("failed, or not final", [(r["id"], r["state"], r["why"]) for r in stuck],
                       [s.tikd("job", "show", str(r["id"])).stdout for r in stuck[:3]], log)
    final = states.get("published", 0) + states.get("in_inbox", 0)
    # final states are TikTok's: each published job is one post there, and
    # each unsure one (or failed as such) an init TikTok never took: it
    # would have named it
    assert final == len(posts), (states, len(posts), log)
    assert len(rows) == planned + len(drops), ("a planned post has no job", len(rows), planned,
                                               len(drops))
    lost = len(want_files) + len(want_urls) - len(posts) - len(unsure) - len(told) - len(held)
    assert lost == 0, ("lost", lost, states)
    # 0 requests inside a Retry-After (unless a kill came first: a dead
    # process's hold may not have committed)
    reqs = s.fake.ctl.ledger()["requests"]
    held = [q for q in reqs if q["status"] == 429 and q["fault"] == "rate_limit"]
    inside = []
    for q in held:
        t0 = q.get("t_done_mono") or q["t_mono"]
        if any(t0 - 0.5 <= kt <= t0 + 1 for kt in kill_times):
            continue
        inside += [x for x in reqs if x["open_id"] == q["open_id"] and x["path"] == q["path"]
                   and t0 < x["t_mono"] < t0 + 1 - 0.05]
    assert not inside, ("inside a Retry-After", inside)
    # the daily caps: never below TikTok's, above only by inits caught in flight
    status = s.tikd("status").stdout
    m = re.search(r"orphans:\s+(\d+)", status)
    orphans = int(m.group(1)) if m else 0
    over = 0
    for name in accounts:
        ours = s.daily_used(name)
        open_id = s.accounts()[name]["open_id"]
        theirs = s.fake.ctl.usage(open_id)["direct_posts_in_window"]
        assert ours >= theirs, (name, ours, theirs)
        over += ours - theirs
    assert over <= orphans + len(unsure) + len(told), (over, orphans, len(unsure), len(told))
    if grace:
        assert reauths == 0, "a lenient TikTok honours the old refresh token"
    assert s.tikd("audit", "verify").returncode == 0
    assert d.proc.poll() is None
    fired = {}
    for f in s.fake.ctl.faults():
        fired[f["kind"]] = fired.get(f["kind"], 0) + f["fired"]
    audit = s.tikd("audit", "list", "--last", "1000000").stdout
    print("\nchaos %s (%s): %d kills %s; second daemons refused %d; full-disk holds %d; "
          "%d posts (%d planned + %d dropped), 0 lost, 0 duplicate, 0 stuck; states %s; "
          "unsure left %d (and %d failed for the operator), adopted by webhook %d; orphan upload sessions %d; accounts "
          "reconnected %d; refreshes %d; 429s with Retry-After %d, 0 inside; faults fired %s; "
          "daily-cap excess %d; %.0f s"
          % (os.environ.get("TIKD_CHAOS", "small"), "strict" if not grace else "lenient",
             sum(kills.values()), kills, refused_second, full_disk_holds, len(posts), planned,
             len(drops), states, len(unsure), len(told), audit.count("job.adopted"), orphans,
             reauths,
             len([q for q in reqs if q["path"] == "/v2/oauth/token/"]), len(held), fired, over,
             time.monotonic() - t_start))
