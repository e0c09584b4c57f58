"""The cluster under chaos (docs/cluster.md): three `tikd run` nodes on one
real redis-server and one fake TikTok, a batch of posts over many accounts,
while nodes are SIGKILLed and restarted at random and Redis itself is
restarted once. TikTok's ledger is the judge: every post exactly once, no
request under a stale fence, no rate limit TikTok had to enforce.

`make chaos-cluster` runs the full size (TIKD_CHAOS=full: 50 accounts, 300
posts, 24 kills); `make test` a small one. It prints how late the posts' inits
came after their planned moments (a post due while its holder is dead waits for the
lease to end), and none may be later than a lease, a retry and the restart delay."""
import json
import os
import random
import time

from test_cluster import wait_for
from test_cluster_daemon import LEASE, nodes, pump, redis  # noqa: F401 (fixtures)
from test_publish import connect, video

SIZES = {"small": dict(accounts=6, posts=24, kills=8, spread=20, settle=150),
         "full": dict(accounts=50, posts=300, kills=24, spread=60, settle=400)}
SIZE = SIZES[os.environ.get("TIKD_CHAOS", "small")]


def holders(site):
    """account -> holder node name, as Redis has it now."""
    r = site.tikd("status", "--json")
    cl = json.loads(r.stdout).get("cluster", {})
    return {x["account"]: x["node"].split("/")[0] for x in cl.get("leases", []) if x["node"]}


def test_posts_land_once_while_nodes_and_redis_die(nodes, fake, redis, tmp_path):  # noqa: F811
    rnd = random.Random(int(os.environ.get("TIKD_CHAOS_SEED", "18")))
    n_acc = SIZE["accounts"]
    for i in range(n_acc):
        fake.ctl.put_creator({"open_id": "-000Chaos%016d" % i, "username": "chaos_%d" % i})
    names = ["c%d" % i for i in range(n_acc)]
    sites = {n: nodes(n) for n in ("a", "b", "c")}
    for name, i in zip(names, range(n_acc)):  # connected on a; each moves to its home
        connect(sites["a"], name, user="chaos_%d" % i)
    daemons = {n: s.start() for n, s in sites.items()}
    wait_for(lambda: len(holders(sites["a"])) == n_acc
             and set(holders(sites["a"]).values()) == set(sites), 8 * LEASE,
             "every account held, by all three nodes")
    home = holders(sites["a"])

    # the batch: planned on each account's home, due over the next `spread` seconds
    clip = video(tmp_path / "clip.mp4", duration=3)
    big = video(tmp_path / "big.mp4", mdat=24_000_000)  # a few chunks: kills land in uploads
    start = time.time()
    wall_to_mono = time.monotonic() - time.time()
    captions, due = [], {}
    for k in range(SIZE["posts"]):
        name = names[k % n_acc]
        cap = "chaos-%d" % k
        when = int(start + 3 + SIZE["spread"] * k / SIZE["posts"])
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
        due[cap] = when + wall_to_mono
        r = sites[home[name]].tikd("post", str(big if k % 6 == 0 else clip), "--account", name,
                                   "--privacy", "SELF_ONLY", "--caption", cap, "--again",
                                   "--at", at)
        assert r.returncode == 0, r.stderr
        captions.append(cap)

    # the chaos: kills at random moments, each node back soon after; Redis once
    kills, redis_done = 0, False
    while kills < SIZE["kills"]:
        time.sleep(rnd.uniform(0.5, 2.5) * SIZE["spread"] / 20)
        victim = rnd.choice(sorted(sites))
        d = daemons[victim]
        d.proc.kill()
        d.proc.wait()
        kills += 1
        time.sleep(rnd.uniform(0.2, 1.5))
        daemons[victim] = sites[victim].start()
        if not redis_done and kills == SIZE["kills"] // 2:
            redis.stop()
            time.sleep(1.0)
            redis.start()
            redis_done = True

    def landed():
        return [p["title"] for p in fake.ctl.ledger()["posts"]]
    wait_for(lambda: len(landed()) >= len(captions), SIZE["settle"], "every post landed")
    time.sleep(2 * LEASE)  # anything more would come now
    pump(*daemons.values())
    posts = landed()
    missing = sorted(set(captions) - set(posts))
    twice = sorted(c for c in set(posts) if posts.count(c) > 1)
    reqs = fake.ctl.ledger()["requests"]
    stale = [q for q in reqs if q.get("stale_fence")]
    limited = [q for q in reqs if q["status"] == 429 or q.get("error_code") in (
        "rate_limit_exceeded", "spam_risk_too_many_posts", "reached_active_user_cap")]
    # how late each post's init came after its planned moment (kills, lease ends, TikTok's
    # 6 inits a minute per token spacing an account's posts)
    late = sorted(p["created_mono"] - due[p["title"]] for p in fake.ctl.ledger()["posts"]
                  if p["title"] in due)
    print("\ncluster chaos (%s): %d posts over %d accounts, %d kills and a Redis restart, "
          "%d requests; lost %d, twice %d, stale fences %d, limits hit %d; late by median "
          "%.1f s, max %.1f s"
          % (os.environ.get("TIKD_CHAOS", "small"), len(captions), n_acc, kills, len(reqs),
             len(missing), len(twice), len(stale), len(limited),
             late[len(late) // 2] if late else 0, late[-1] if late else 0))
    assert not missing, missing
    assert not twice, twice
    assert not stale, stale[:3]
    assert not limited, limited[:3]
    # none later than a lease, a retry after it (5 s) and the test's own restart delay and
    # the rounds around them
    assert late and late[-1] < LEASE + 5 + 1.5 + 2.5, late[-5:]
