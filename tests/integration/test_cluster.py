"""Account leases with fencing tokens (core/cluster) against a real
redis-server started here, through tests/tools/leasectl: one process per
node, each "acting" for the accounts it may act for every 50 ms. The acts
are the ledger: no two nodes act for one account at once, fences only grow,
and a node that lost its lease (killed, partitioned, paused) never acts
under it again."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

TOOLS = os.environ.get("TIKD_TOOLS", os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build",
    "tests"))
LEASE, MARGIN, ACT = 3.0, 0.5, 0.05
ACCOUNTS = ["acct%02d" % i for i in range(12)]

if not shutil.which("redis-server"):
    pytest.skip("redis-server is not installed (tools/deps.sh test installs Debian's)",
                allow_module_level=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on a loopback port in its own folder, AOF fsync'd always
    (what docs/cluster.md requires: a fence must survive a restart)"""

    def __init__(self, d, password=None):
        self.dir, self.port, self.password = str(d), free_port(), password
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                self.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.p.terminate()
        self.p.wait(10)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


class Proxy:
    """A TCP proxy to Redis that the test can cut: while cut it forwards
    nothing and closes nothing, as a partition does."""

    def __init__(self, port):
        self.target, self.open = port, threading.Event()
        self.open.set()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    def pipe(self, a, b):
        while True:
            try:
                data = a.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.open.wait()
            try:
                b.sendall(data)
            except OSError:
                return


class Node:
    def __init__(self, redis_addr, name, tmp, accounts=ACCOUNTS, env=None):
        self.name = name
        self.out = open(os.path.join(str(tmp), "%s-%d.out" % (name, time.monotonic_ns())), "w+")
        self.err = open(self.out.name + ".err", "w+")
        self.p = subprocess.Popen([os.path.join(TOOLS, "leasectl"), redis_addr, name, str(LEASE),
                                   str(MARGIN), str(ACT)] + accounts,
                                  stdout=self.out, stderr=self.err,
                                  env=dict(os.environ, **(env or {})))

    def lines(self):
        # One read, then whole lines only. Iterating the file would hand over
        # a line cut at a block flush as two: its head at EOF (dropped) and,
        # on the next readline, its tail as a line of its own.
        with open(self.out.name) as f:
            whole = f.read().split("\n")[:-1]
        return [dict(json.loads(line), node=self.name) for line in whole]

    def held(self):
        """the accounts it holds now, by its held and lost lines"""
        now = {}
        for e in self.lines():
            if e["event"] == "held":
                now[e["account"]] = e["fence"]
            elif e["event"] == "lost":
                now.pop(e["account"], None)
        return now

    def view(self):
        n = len([e for e in self.lines() if e["event"] == "view"])
        self.p.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            views = [e for e in self.lines() if e["event"] == "view"]
            if len(views) > n:
                return views[-1]
            time.sleep(0.02)
        raise AssertionError("no view from " + self.name)

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(10)


def boot():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("not within %.1f s: %s" % (timeout, what))


def check_ledger(nodes):
    """no two nodes act for one account at once, and its fences only grow"""
    acts = sorted((e for n in nodes for e in n.lines() if e["event"] == "act"),
                  key=lambda e: e["t"])
    last = {}
    for e in acts:
        prev = last.get(e["account"])
        if prev:
            assert e["fence"] >= prev["fence"], (prev, e)
            if prev["node"] != e["node"]:
                assert e["fence"] > prev["fence"], (prev, e)
        last[e["account"]] = e
    return acts


def owners(nodes):
    held = {}
    for n in nodes:
        for a in n.held():
            held.setdefault(a, []).append(n.name)
    return held


def one_owner_each(nodes):
    held = owners(nodes)
    return len(held) == len(ACCOUNTS) and all(len(v) == 1 for v in held.values())


@pytest.fixture
def cluster(tmp_path):
    made = {"nodes": [], "redis": None}

    def node(name, redis_addr=None, **kw):
        n = Node(redis_addr or made["redis"].addr, name, tmp_path, **kw)
        made["nodes"].append(n)
        return n

    made["redis"] = Redis(tmp_path)
    made["node"] = node
    yield made
    for n in made["nodes"]:
        n.stop(signal.SIGKILL)
    made["redis"].stop()


def test_every_account_has_one_holder_and_moves_when_nodes_join(cluster):
    a = cluster["node"]("a")
    wait_for(lambda: len(a.held()) == len(ACCOUNTS), 5, "a holds every account alone")
    assert set(a.held().values()) == {1}
    b, c = cluster["node"]("b"), cluster["node"]("c")
    nodes = [a, b, c]
    wait_for(lambda: one_owner_each(nodes) and all(n.held() for n in nodes), 4 * LEASE,
             "each account held by one node, each node holding some")
    for n in (b, c):  # what moved was given back and granted anew, under a greater fence
        assert min(n.held().values()) >= 2, n.held()
    view = a.view()
    assert sorted(x["id"].split("/")[0] for x in view["nodes"]) == ["a", "b", "c"]
    assert view["self"].startswith("a/") and view["connected"] is True
    held_here = {x["account"] for x in view["leases"] if x["held"]}
    assert held_here == set(a.held())
    assert all(0 < x["valid_for"] <= LEASE - MARGIN for x in view["leases"] if x["held"])
    time.sleep(0.5)
    check_ledger(nodes)


def test_a_killed_nodes_accounts_are_taken_over_once_its_lease_ends(cluster):
    a, b = cluster["node"]("a"), cluster["node"]("b")
    wait_for(lambda: one_owner_each([a, b]) and a.held() and b.held(), 4 * LEASE, "a split")
    theirs = a.held()
    a.stop(signal.SIGKILL)
    killed = boot()
    wait_for(lambda: set(theirs) <= set(b.held()), 2 * LEASE, "b takes a's accounts over")
    took = {e["account"]: e for e in b.lines() if e["event"] == "held" and e["account"] in theirs}
    for acct, e in took.items():
        assert e["fence"] == theirs[acct] + 1
        # not before a's lease could have ended at Redis, and within a renewal after it
        assert killed + LEASE - 2 * LEASE / 3 - 0.2 <= e["t"] <= killed + LEASE + LEASE / 3 + 1.5
    time.sleep(5 * ACT)
    acts = check_ledger([a, b])
    assert any(e["node"] == "b" and e["account"] in theirs for e in acts)


def test_a_node_restarted_under_its_name_waits_out_its_earlier_lease(cluster):
    a = cluster["node"]("a")
    wait_for(lambda: len(a.held()) == len(ACCOUNTS), 5, "a holds every account")
    a.stop(signal.SIGKILL)
    killed = boot()
    a2 = cluster["node"]("a")
    wait_for(lambda: len(a2.held()) == len(ACCOUNTS), 2 * LEASE, "the new a holds them")
    first = min(e["t"] for e in a2.lines() if e["event"] == "held")
    assert first >= killed + LEASE / 3, "the new instance acted under the old one's lease"
    assert set(a2.held().values()) == {2}
    check_ledger([a, a2])


def test_a_partitioned_node_stops_before_its_lease_can_end(cluster):
    proxy = Proxy(cluster["redis"].port)
    a = cluster["node"]("a", redis_addr=proxy.addr)
    b = cluster["node"]("b")
    wait_for(lambda: one_owner_each([a, b]) and a.held() and b.held(), 4 * LEASE, "a split")
    theirs = a.held()
    proxy.open.clear()  # a partition: nothing through, nothing closed
    cut = boot()
    wait_for(lambda: set(theirs) <= set(b.held()), 3 * LEASE, "b takes a's accounts over")
    lost = {e["account"]: e for e in a.lines() if e["event"] == "lost"}
    took = {e["account"]: e for e in b.lines() if e["event"] == "held" and e["account"] in theirs}
    for acct in theirs:
        assert lost[acct]["t"] < took[acct]["t"], (lost[acct], took[acct])
        assert lost[acct]["t"] <= cut + LEASE - MARGIN + 0.5
    last_a = max((e["t"] for e in a.lines() if e["event"] == "act"), default=0)
    assert last_a < min(e["t"] for e in took.values())
    # healed: a comes back, its accounts come home to it under new fences
    proxy.open.set()
    wait_for(lambda: theirs.keys() <= a.held().keys(), 6 * LEASE, "a's accounts come home")
    for acct, fence in a.held().items():
        if acct in theirs:
            assert fence >= theirs[acct] + 2, (acct, fence)
    check_ledger([a, b])


def test_a_paused_node_does_not_act_on_a_lease_that_ended_while_it_slept(cluster):
    a, b = cluster["node"]("a"), cluster["node"]("b")
    wait_for(lambda: one_owner_each([a, b]) and a.held() and b.held(), 4 * LEASE, "a split")
    theirs = a.held()
    a.p.send_signal(signal.SIGSTOP)
    wait_for(lambda: set(theirs) <= set(b.held()), 3 * LEASE, "b takes a's accounts over")
    resumed = boot()
    a.p.send_signal(signal.SIGCONT)
    time.sleep(LEASE)
    for e in a.lines():  # after waking, only under leases granted since
        if e["event"] == "act" and e["t"] >= resumed and e["account"] in theirs:
            assert e["fence"] > theirs[e["account"]], e
    check_ledger([a, b])


def test_fences_survive_a_redis_restart(cluster):
    a = cluster["node"]("a")
    wait_for(lambda: len(a.held()) == len(ACCOUNTS), 5, "a holds every account")
    a.stop(signal.SIGKILL)
    cluster["redis"].stop()
    cluster["redis"].start()  # the same folder: the AOF is read back
    time.sleep(LEASE)  # a's leases end meanwhile (their expiry is kept too)
    b = cluster["node"]("b")
    wait_for(lambda: len(b.held()) == len(ACCOUNTS), 3 * LEASE, "b holds every account")
    assert set(b.held().values()) == {2}
    # and a node that loses Redis for a moment carries on once it is back
    cluster["redis"].stop()
    wait_for(lambda: not b.held(), 2 * LEASE, "b stops acting without Redis")
    cluster["redis"].start()
    wait_for(lambda: len(b.held()) == len(ACCOUNTS), 4 * LEASE, "b holds them again")
    check_ledger([a, b])


def test_redis_auth_and_the_password_stays_out_of_the_output(tmp_path):
    secret = "s3cret-redis-pass-%d" % os.getpid()
    r = Redis(tmp_path, password=secret)
    try:
        good = Node(r.addr, "a", tmp_path, env={"TIKD_REDIS_PASSWORD": secret})
        bad = Node(r.addr, "b", tmp_path, env={"TIKD_REDIS_PASSWORD": "wrong"})
        wait_for(lambda: len(good.held()) == len(ACCOUNTS), 5, "a holds every account")
        time.sleep(LEASE / 2)
        assert not bad.held()
        good.stop()
        bad.stop()
        with open(bad.err.name) as f:
            assert "cluster.auth_failed" in f.read()
        for n in (good, bad):
            for name in (n.out.name, n.err.name):
                with open(name) as f:
                    assert secret not in f.read()
    finally:
        r.stop()


@pytest.mark.parametrize("args,msg", [
    (["127.0.0.1:1", "a b", "3", "0.5"], "node name 'a b' is not allowed"),
    (["nohost", "a", "3", "0.5"], "redis address 'nohost' is not allowed"),
    (["redis.example:6379", "a", "3", "0.5"], "a name would be resolved by a blocking call"),
    (["127.0.0.1:1", "a", "3", "1"], "a margin of 1 s is not allowed"),
    (["127.0.0.1:1", "a", "0.5", "0.1"], "a lease of 0.5 s is not allowed"),
])
def test_bad_options_are_refused_clearly(args, msg):
    r = subprocess.run([os.path.join(TOOLS, "leasectl")] + args + ["0.05", "x"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
