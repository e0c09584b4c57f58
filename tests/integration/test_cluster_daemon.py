"""`tikd run` as a cluster node (docs/cluster.md): a real redis-server, two
nodes with data directories of their own against one fake TikTok. A node
works a job, and sends a request for an account, only while it holds the
account's lease; every request carries the lease's fence (X-Tikd-Fence),
which the fake's ledger keeps and checks (a request with a fence lower than
one already seen for the creator is `stale_fence`).

An account's state moves with its lease (core/replica): its holder writes
it through to Redis before each request, and the next holder reads it back
before acting, so a node that dies in the middle of a post is replaced by
one that may never have seen the account, and the post lands once. Every
node has the same vault key file; Redis sees only sealed tokens."""
import json
import os
import re
import shutil
import signal
import time

import pytest

from conftest import REPO, Site, run_tikd
from test_cluster import Proxy, Redis, wait_for
from test_publish import connect, video

LEASE, MARGIN = 3.0, 0.5
USERS = ["acct_one", "acct_two"] + ["node_user_%d" % i for i in range(4)]


def node_site(root, fake, name, redis_addr, lease=LEASE):
    """A data dir, rules and config for node `name`, its own; the vault key
    file the cluster's nodes share (made by the first)."""
    root.mkdir()
    shutil.copytree(os.path.join(REPO, "rules"), root / "rules")
    cfg = root / "tikd.conf.lua"
    cfg.write_text('data_dir = "data"\nrules_dir = "rules"\nscripts_dir = "%s/scripts"\n'
                   'shutdown_grace = 2\nvault = { key_file = "vault.keys" }\n'
                   'rules = { watch = false }\n' % REPO)
    shared = root.parent / "cluster.keys"
    if shared.exists():
        shutil.copy(shared, root / "vault.keys")
        os.chmod(root / "vault.keys", 0o600)
    else:
        r = run_tikd("vault", "init", config=cfg)
        assert r.returncode == 0, r.stderr
        shutil.copy(root / "vault.keys", shared)
    s = Site(root, fake, extra='cluster = { redis = "%s", node = "%s", lease = %s, margin = %s }\n'
             % (redis_addr, name, lease, MARGIN))
    s.limits()
    return s


def held(d):
    """The accounts daemon d holds now, with their fences, by its log."""
    now = {}
    for line in d.lines:
        m = re.search(r"event=cluster\.(held|lost) account=(\S+) fence=(\d+)", line)
        if m and m.group(1) == "held":
            now[m.group(2)] = int(m.group(3))
        elif m:
            now.pop(m.group(2), None)
    return now


def pump(*daemons):
    """Read what the daemons logged so far (Daemon.wait_for reads lazily)."""
    for d in daemons:
        try:
            d.wait_for(r"^\b$", timeout=0.01)
        except AssertionError:
            pass


@pytest.fixture
def redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (tools/deps.sh test installs Debian's)")
    (tmp_path / "redis").mkdir()
    r = Redis(tmp_path / "redis")
    yield r
    r.stop()


@pytest.fixture
def nodes(tmp_path, fake, redis):
    fake.ctl.set_config(time_scale=0.01)
    for i, u in enumerate(USERS[2:]):
        fake.ctl.put_creator({"open_id": "-000NodeUser%016d" % i, "username": u})
    made = []

    def make(name, redis_addr=None, lease=LEASE):
        s = node_site(tmp_path / name, fake, name, redis_addr or redis.addr, lease)
        made.append(s)
        return s

    yield make
    for s in made:
        for d in s.daemons:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()


def open_ids(fake):
    return {c["username"]: c["open_id"] for c in fake.ctl.creators()}


def api_requests(fake, ids):
    return [q for q in fake.ctl.ledger()["requests"]
            if q["open_id"] in ids and not q["path"].startswith("/v2/oauth/")]


def test_a_post_planned_on_any_node_goes_from_its_accounts_holder(nodes, fake, tmp_path):
    a, b = nodes("a"), nodes("b")
    names = ["k%d" % i for i in range(len(USERS))]
    for s in (a, b):  # every node has every account, each its own grant
        for n, u in zip(names, USERS):
            connect(s, n, user=u)
    da, db = a.start(), b.start()
    # rendezvous hashing spreads these 6 accounts over both nodes (the same
    # split every run: it hashes the names)
    wait_for(lambda: (pump(da, db), len(held(da)) + len(held(db)) == len(names)
                      and not set(held(da)) & set(held(db)) and held(da) and held(db))[1],
             4 * LEASE, "every account held by one node, each node holding some")
    at_a, at_b = held(da), held(db)
    # `tikd status` on either node shows the cluster as Redis has it
    r = b.tikd("status", "--json")
    cl = json.loads(r.stdout)["cluster"]
    assert sorted(n["id"].split("/")[0] for n in cl["nodes"]) == ["a", "b"], cl
    by = {x["account"]: x for x in cl["leases"]}
    assert sorted(by) == names
    for n, f in list(at_a.items()) + list(at_b.items()):
        assert by[n]["node"].split("/")[0] == ("a" if n in at_a else "b") and by[n]["fence"] == f
        assert by[n]["age_s"] >= 0
    r = a.tikd("status")
    assert "cluster:     node a, 2 live nodes" in r.stdout, r.stdout
    for n in at_a:
        assert re.search(r"a/\w+ \(registered [\d.]+ s more\) holds:.* %s \(fence %d, "
                         % (n, at_a[n]), r.stdout), r.stdout
    ids = open_ids(fake)
    oid = {n: ids[u] for n, u in zip(names, USERS)}

    clip = video(tmp_path / "clip.mp4", duration=3)
    for n in names:  # every post is planned on node a: b's are offered to b (its inbox)
        r = a.tikd("post", str(clip), "--account", n, "--privacy", "SELF_ONLY")
        assert r.returncode == 0, r.stderr
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == len(names), 60, "every post")
    time.sleep(2 * LEASE / 3)  # a round: nothing more
    posts = fake.ctl.ledger()["posts"]
    assert sorted(p["open_id"] for p in posts) == sorted(oid.values())  # each exactly once
    reqs = api_requests(fake, set(oid.values()))
    assert reqs and all("fence" in q for q in reqs), [q for q in reqs if "fence" not in q][:3]
    assert not [q for q in reqs if q["stale_fence"]]
    for n in names:  # each account's requests came from its holder alone, under its fence
        assert {q["fence"] for q in reqs if q["open_id"] == oid[n]} == {(at_a | at_b)[n]}, n

    db.proc.kill()  # b dies: a is granted its accounts once their leases end at Redis
    db.proc.wait()
    wait_for(lambda: (pump(da), set(held(da)) == set(names))[1], 3 * LEASE,
             "a holds every account")
    before = len(reqs)
    for n in at_b:  # again, now that a holds them all: a posts them itself
        r = a.tikd("post", str(clip), "--account", n, "--privacy", "SELF_ONLY", "--again")
        assert r.returncode == 0, r.stderr
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == len(names) + len(at_b), 60,
             "b's accounts posted again, by a")
    reqs = api_requests(fake, set(oid.values()))[before:]
    assert not [q for q in reqs if q["stale_fence"]]
    for n in at_b:  # a acted for b's accounts under fences granted after b's
        assert {q["fence"] for q in reqs if q["open_id"] == oid[n]} == {held(da)[n]}
        assert held(da)[n] > at_b[n]


def test_a_post_moves_with_its_account_when_its_node_dies_mid_upload(nodes, fake, redis,
                                                                       tmp_path):
    a = nodes("a")
    connect(a, "k0", user="acct_one")  # b never sees this account connected
    da = a.start()
    wait_for(lambda: (pump(da), "k0" in held(da))[1], 2 * LEASE, "a holds k0")
    first = held(da)["k0"]
    oid = open_ids(fake)["acct_one"]
    fake.ctl.add_fault(kind="delay", path_prefix="/upload/", delay_sec=0.5, count=None)
    big = video(tmp_path / "big.mp4", mdat=80_000_000)  # 8 chunks
    r = a.tikd("post", str(big), "--account", "k0", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len([q for q in api_requests(fake, {oid})
                          if q["path"].startswith("/upload/")]) >= 3, 60, "three chunks")
    da.proc.kill()  # in the middle of the upload
    da.proc.wait()

    b = nodes("b")
    db = b.start()
    wait_for(lambda: (pump(db), "k0" in held(db))[1], 4 * LEASE, "b holds k0")
    assert held(db)["k0"] > first
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == 1, 90, "the post")
    time.sleep(1)
    led = fake.ctl.ledger()
    assert len(led["posts"]) == 1
    reqs = api_requests(fake, {oid})
    inits = [q for q in reqs if q["path"].endswith("/init/")]
    assert len(inits) == 1, inits  # the upload went on: never a second init
    assert not [q for q in reqs if q["stale_fence"]]
    assert {q["fence"] for q in reqs if q["fence"] > first} == {held(db)["k0"]}

    # b has the account and the job now, from Redis alone
    r = b.tikd("account", "list")
    assert r.returncode == 0 and "k0" in r.stdout, r.stdout + r.stderr
    def job():  # b's first job: a's, imported
        r = b.tikd("job", "show", "1", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    wait_for(lambda: job()["state"] == "published", 30, "b's job published")
    assert job()["account"] == "k0"
    # Redis holds the tokens sealed only: no token TikTok issued is in its file
    tokens = [t for t in fake.ctl.tokens()["all"] if len(t) >= 8]
    dump = b"".join(open(os.path.join(dp, f), "rb").read()
                    for dp, _, fs in os.walk(redis.dir) for f in fs)
    assert tokens and not [t for t in tokens if t.encode() in dump]


RULE = """
tikd.every(1, "tick")
local planned = false
function tick()
    if planned then return end
    -- again: the same video may go twice; the key alone says this post is planned once
    local id, why = tikd.upload.post{ account = "k0", media = %r, privacy = "SELF_ONLY",
                                      key = "once", again = true }
    if id then
        planned = true
        tikd.log.info("test: planned", { job = id })
    else
        tikd.log.info("test: refused", { why = why })
    end
end
"""


def test_a_rule_run_by_every_node_plans_only_on_the_accounts_holder(nodes, fake, tmp_path):
    clip = video(tmp_path / "clip.mp4", duration=3)
    a, b = nodes("a"), nodes("b")
    for s in (a, b):  # the same rules on every node, the account connected on both
        (s.root / "rules" / "test_post.lua").write_text(RULE % str(clip))
        s.cfg.write_text(s.cfg.read_text() + 'media_roots = { "%s" }\n' % tmp_path)
        connect(s, "k0", user="acct_one")
    da, db = a.start(), b.start()
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == 1, 60, "the post")
    time.sleep(3)  # ticks more on both nodes
    pump(da, db)
    holder, other = (da, db) if "k0" in held(da) else (db, da)
    assert "k0" in held(holder) and "k0" not in held(other)
    assert len(fake.ctl.ledger()["posts"]) == 1
    assert any("test: planned" in line for line in holder.lines)
    assert not any("test: planned" in line for line in other.lines)
    assert any("test: refused" in line and "held by another node" in line
               for line in other.lines)

    # the holder dies: the other node holds k0 now, and its rule's post with the
    # same key is the one planned already (the key moved with the account)
    holder.proc.kill()
    holder.proc.wait()
    wait_for(lambda: (pump(other), "k0" in held(other))[1], 4 * LEASE, "the other holds k0")
    wait_for(lambda: (pump(other), any("test: planned" in line for line in other.lines))[1],
             10, "the other node's rule gets its answer")
    time.sleep(3)
    assert len(fake.ctl.ledger()["posts"]) == 1


def test_three_nodes_together_keep_the_apps_active_creator_cap(nodes, fake, tmp_path):
    fake.ctl.set_config(active_user_cap=2)
    sites = [nodes(n) for n in ("a", "b", "c")]
    names = ["k%d" % i for i in range(len(USERS))]
    for s in sites:  # each node keeps the cap too, on its own: 2 of its own could go
        s.limits(active_users=2)
    for n, u in zip(names, USERS):  # connected on a; each moves to its home
        connect(sites[0], n, user=u)
    ds = [s.start() for s in sites]
    wait_for(lambda: (pump(*ds), sum(len(held(d)) for d in ds) == len(names)
                      and sum(1 for d in ds if held(d)) >= 2)[1],
             6 * LEASE, "the accounts spread over the nodes")
    clip = video(tmp_path / "clip.mp4", duration=3)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6))
    where = {}
    for n in names:  # each post planned on the node that holds its account, all at once
        i = next(i for i, d in enumerate(ds) if n in held(d))
        r = sites[i].tikd("post", str(clip), "--account", n, "--privacy", "SELF_ONLY", "--at", at)
        assert r.returncode == 0, r.stderr
        where[n] = (sites[i], int(re.search(r"job (\d+) planned", r.stdout).group(1)))
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == 2, 60, "two posts")

    def state(n):
        s, job = where[n]
        return json.loads(s.tikd("job", "show", str(job), "--json").stdout)
    waiting = lambda: [n for n in names if state(n)["state"] == "deferred"]  # noqa: E731
    wait_for(lambda: len(waiting()) == len(names) - 2, 30, "the others wait for the app's cap")
    time.sleep(2)
    assert len(fake.ctl.ledger()["posts"]) == 2
    # no init went out that TikTok had to refuse: the cluster counted the app's active
    # creators once (creator_info may still say the cap is reached: TikTok's pre-flight)
    refused = [q for q in fake.ctl.ledger()["requests"] if q["path"].endswith("/init/")
               and q.get("error_code") == "reached_active_user_cap"]
    assert not refused, refused
    for n in waiting():
        # the cluster's count, a node's own, or TikTok's pre-flight said so
        assert re.search("active creators|active_users budget|active_user_cap",
                         state(n)["reason"]), state(n)


def test_an_account_connected_on_a_running_node_joins_the_cluster(nodes, fake):
    a, b = nodes("a"), nodes("b")
    da, db = a.start(), b.start()
    wait_for(lambda: (pump(da, db), any("cluster.connected" in l for l in db.lines))[1],
             2 * LEASE, "b connected to Redis")
    connect(a, "k0", user="acct_one")  # while both run; b never sees it connected
    wait_for(lambda: (pump(da, db), "k0" in held(da) or "k0" in held(db))[1], 4 * LEASE,
             "k0 held by its home")
    r = b.tikd("status", "--json")
    assert [x["account"] for x in json.loads(r.stdout)["cluster"]["leases"]] == ["k0"]


def test_a_node_stopped_cleanly_hands_its_accounts_over_at_once(nodes, fake):
    lease = 12.0  # a renewal round every 4 s: a lease waited out would take 12
    a, b = nodes("a", lease=lease), nodes("b", lease=lease)
    names = ["k%d" % i for i in range(len(USERS))]
    for n, u in zip(names, USERS):
        connect(a, n, user=u)
    da, db = a.start(), b.start()
    wait_for(lambda: (pump(da, db), len(held(da)) + len(held(db)) == len(names)
                      and held(da) and held(db))[1], 4 * lease, "both nodes hold some")
    at_b = held(db)
    db.proc.send_signal(signal.SIGTERM)
    assert db.proc.wait(timeout=30) == 0
    stopped = time.monotonic()
    pump(db)
    assert any("event=cluster.handed_over accounts=%d" % len(at_b) in l for l in db.lines)
    wait_for(lambda: (pump(da), set(held(da)) == set(names))[1], lease, "a holds them all")
    assert time.monotonic() - stopped < lease / 2  # a round and a read-back, not a lease
    assert all(held(da)[n] > at_b[n] for n in at_b)


def test_a_chunk_upload_on_the_wire_is_cut_when_the_lease_is_lost(nodes, fake, redis, tmp_path):
    proxy = Proxy(redis.port)
    a = nodes("a", proxy.addr)
    connect(a, "k0", user="acct_one")
    da = a.start()
    wait_for(lambda: (pump(da), "k0" in held(da))[1], 2 * LEASE, "a holds k0")
    oid = open_ids(fake)["acct_one"]
    # the first chunk's answer takes longer than the lease: it is on the wire when it ends
    fake.ctl.add_fault(kind="delay", path_prefix="/upload/", delay_sec=3 * LEASE)
    big = video(tmp_path / "big.mp4", mdat=24_000_000)
    r = a.tikd("post", str(big), "--account", "k0", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: any(q["path"].startswith("/upload/") for q in api_requests(fake, {oid})),
             30, "the upload started")
    cut = time.monotonic()
    proxy.open.clear()
    wait_for(lambda: (pump(da), any("event=http.cut" in l and "owner=k0" in l
                                    for l in da.lines))[1], 2 * LEASE, "the upload cut")
    assert time.monotonic() - cut < LEASE  # at the lease's end, not the answer's
    proxy.open.set()
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == 1, 60, "the post, once healed")
    time.sleep(1)
    assert len(fake.ctl.ledger()["posts"]) == 1
    assert not [q for q in api_requests(fake, {oid}) if q["stale_fence"]]


def test_a_node_with_another_vault_key_imports_nothing_and_says_so(nodes, fake):
    a = nodes("a")
    connect(a, "k0", user="acct_one")
    da = a.start()
    wait_for(lambda: (pump(da), "k0" in held(da))[1], 2 * LEASE, "a holds k0")
    time.sleep(LEASE / 2)  # a round: k0's state is in Redis
    da.proc.kill()
    da.proc.wait()
    b = nodes("b")
    os.unlink(b.root / "vault.keys")  # not the cluster's key file
    r = run_tikd("vault", "init", config=b.cfg)
    assert r.returncode == 0, r.stderr
    db = b.start()
    wait_for(lambda: (pump(db), any("event=alert kind=cluster.import" in l
                                    and "does not open here" in l for l in db.lines))[1],
             4 * LEASE, "b says it cannot read k0's state")
    assert "k0" not in held(db)  # never acts for it
    r = b.tikd("account", "list")
    assert r.returncode == 0 and "k0" not in r.stdout, r.stdout  # nothing of it written


def test_a_node_cut_from_redis_stops_sending_before_its_lease_ends(nodes, fake, redis, tmp_path):
    proxy = Proxy(redis.port)
    a = nodes("a", proxy.addr)
    connect(a, "k0", user="acct_one")
    da = a.start()
    wait_for(lambda: (pump(da), "k0" in held(da))[1], 2 * LEASE, "a holds k0")
    first = held(da)["k0"]
    oid = open_ids(fake)["acct_one"]
    # a video of several chunks, each slowed: the cut lands in the upload
    fake.ctl.add_fault(kind="delay", path_prefix="/upload/", delay_sec=1.0, count=None)
    big = video(tmp_path / "big.mp4", mdat=80_000_000)
    r = a.tikd("post", str(big), "--account", "k0", "--privacy", "SELF_ONLY")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: any(q["path"].startswith("/upload/") for q in api_requests(fake, {oid})),
             30, "the upload started")
    cut = time.monotonic()
    proxy.open.clear()  # a partition: nothing forwarded, nothing closed
    wait_for(lambda: (pump(da), "k0" not in held(da))[1], 2 * LEASE, "a gives k0 up")
    # a request leaves only once Redis has the state it leaves from: with
    # Redis cut off, not one more starts, though the lease has time left
    late = [q for q in api_requests(fake, {oid}) if q["t_mono"] > cut + 0.2]
    assert not late, late
    time.sleep(LEASE)  # past any end of the lease: nothing may start now
    quiet = [q for q in api_requests(fake, {oid}) if q["t_mono"] > cut + LEASE - MARGIN + 0.25]
    assert not quiet, quiet
    assert not fake.ctl.ledger()["posts"]

    proxy.open.set()
    wait_for(lambda: (pump(da), held(da).get("k0", 0) > first)[1], 4 * LEASE,
             "a holds k0 again, under a new fence")
    wait_for(lambda: len(fake.ctl.ledger()["posts"]) == 1, 90, "the post")
    reqs = api_requests(fake, {oid})
    assert not [q for q in reqs if q["stale_fence"]]
    assert {q["fence"] for q in reqs if q["t_mono"] > cut + 2 * LEASE} == {held(da)["k0"]}
    assert len(fake.ctl.ledger()["posts"]) == 1


@pytest.mark.parametrize("table,msg", [
    ('{ node = "a" }', "cluster.node' is set but cluster.redis is not"),
    ('{ redis = "localhost:6379", node = "a" }', "a name would be resolved"),
    ('{ redis = "127.0.0.1:6379" }', "node name '' is not allowed"),
    ('{ redis = "127.0.0.1:6379", node = "a b" }', "node name 'a b' is not allowed"),
    ('{ redis = "127.0.0.1:6379", node = "a", lease = 3, margin = 1 }', "a margin of 1 s"),
])
def test_bad_cluster_settings_are_refused_before_anything_runs(site, table, msg):
    cfg = site / "tikd.conf.lua"
    cfg.write_text(cfg.read_text() + "cluster = %s\n" % table)
    r = run_tikd("account", "list", config=cfg)
    assert r.returncode != 0 and msg in r.stderr, r.stderr
    r = run_tikd("run", config=cfg, timeout=10)
    assert r.returncode != 0 and msg in r.stderr, r.stderr


def test_the_redis_password_stays_out_of_logs_and_output(nodes, fake, tmp_path):
    secret = "s3cret-node-pass-%d" % os.getpid()
    (tmp_path / "redis2").mkdir()
    r2 = Redis(tmp_path / "redis2", password=secret)
    try:
        a = nodes("a", r2.addr)
        a.env["TIKD_REDIS_PASSWORD"] = secret
        connect(a, "k0", user="acct_one")
        da = a.start()
        wait_for(lambda: (pump(da), "k0" in held(da))[1], 2 * LEASE, "a holds k0 with AUTH")
        da.stop()
        assert secret not in "\n".join(da.lines + a.output)
    finally:
        r2.stop()
