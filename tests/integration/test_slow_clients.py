"""Slow clients (issue 13, item 3): hundreds of connections that trickle
their headers or bodies never stop the callback page, the webhooks or
/healthz. One address may hold server.max_per_ip connections; every request
must have arrived whole within server.request_timeout of its connection
opening (or its last answer), else the connection is cut."""
import socket
import threading
import time

import fakectl

TRICKLE = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "


def slow_site(s, per_ip=8, request_timeout=2.0, max_connections=512):
    s.cfg.write_text(s.cfg.read_text() + "server = { max_per_ip = %d, request_timeout = %s, "
                     "max_connections = %d, idle_timeout = 30 }\n"
                     % (per_ip, request_timeout, max_connections))
    return s.start()


def attackers(port, sources, per_source, first=TRICKLE):
    """Open connections from each source address and send a first piece."""
    socks = []
    for src in sources:
        for _ in range(per_source):
            c = socket.socket()
            c.setblocking(True)
            c.settimeout(2)
            try:
                c.bind((src, 0))
                c.connect(("127.0.0.1", port))
                c.sendall(first)
            except OSError:
                c.close()
                continue
            socks.append(c)
    return socks


def trickle(socks, stop):
    while not stop.is_set():
        for c in socks:
            try:
                c.send(b"a")
            except OSError:
                pass
        time.sleep(0.3)


def timed_get(s, path="/healthz"):
    t0 = time.monotonic()
    resp = fakectl.http_request("GET", "http://127.0.0.1:%d%s" % (s.port, path), timeout=15)
    return resp.status, time.monotonic() - t0


def closed_by_peer(c):
    c.settimeout(0.2)
    try:
        c.recv(1024)  # the end of the stream, or an answer before it
        return True
    except socket.timeout:
        return False
    except OSError:  # reset
        return True


def test_one_address_with_hundreds_of_trickling_connections(s):
    d = slow_site(s)
    socks = attackers(s.port, ["127.0.0.2"], 600)  # more than the server holds in all
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
    t.start()
    try:
        for _ in range(10):
            status, took = timed_get(s)
            assert status == 200 and took < 1.0, (status, took)
            status, took = timed_get(s, "/oauth/callback?state=nope&code=x")
            assert status == 400 and took < 1.0, (status, took)
            resp = fakectl.http_request("POST", "http://127.0.0.1:%d/webhooks/tiktok" % s.port,
                                        body=b"{}", headers={"Content-Type": "application/json"},
                                        timeout=5)
            assert resp.status in (400, 401), resp.status
            time.sleep(0.2)
        # the few the address was allowed are cut once their deadline passes
        time.sleep(2.5)
        assert all(closed_by_peer(c) for c in socks)
        d.wait_for(r"event=server\.slow_clients_cut")
    finally:
        stop.set()
        t.join()
        for c in socks:
            c.close()
    assert d.proc.poll() is None


def test_many_addresses_filling_every_slot_are_cut_in_time(s):
    """More trickling connections than the server holds, from many
    addresses: a real client waits at most about request_timeout."""
    d = slow_site(s, per_ip=8, request_timeout=2.0, max_connections=200)
    sources = ["127.0.1.%d" % i for i in range(1, 31)]  # 30 x 8 = 240 > 200
    socks = attackers(s.port, sources, 8)
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(socks, stop), daemon=True)
    t.start()
    try:
        status, took = timed_get(s)
        assert status == 200 and took < 2.0 + 3.0, (status, took)
    finally:
        stop.set()
        t.join()
        for c in socks:
            c.close()
    assert d.proc.poll() is None


def test_a_body_that_trickles_is_cut(s):
    d = slow_site(s, per_ip=8, request_timeout=1.5)
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"POST /webhooks/tiktok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000\r\n\r\n{")
    t0 = time.monotonic()
    c.settimeout(0.5)
    gone = False
    while time.monotonic() - t0 < 6:
        try:
            c.send(b" ")
            if c.recv(1024) == b"":
                gone = True
                break
        except socket.timeout:
            continue
        except OSError:
            gone = True
            break
    took = time.monotonic() - t0
    c.close()
    assert gone and took < 1.5 + 2.0, took
    # a client that sends its request at once is never cut, kept alive or not
    status, took = timed_get(s)
    assert status == 200
    assert d.proc.poll() is None
