"""Client side of the fake TikTok: start it, drive its control API, talk to it like a client.

Used by tests/fake/conftest.py and meant for tikd's integration tests too:

    import sys; sys.path.insert(0, "tests/fake")
    import fakectl
    with fakectl.FakeProcess({"access_token_ttl_sec": 30}) as fake:   # or fakectl.InProcessFake
        fake.ctl.add_fault(kind="status", path_prefix="/v2/post/publish/video/init/", status=503)
        ... point tikd at fake.base_url ...
        assert len(fake.ctl.ledger()["posts"]) == 1

Standard library only. Every wait is bounded; nothing here sleeps blindly.
"""

import hashlib
import hmac
import http.client
import json
import os
import secrets
import select
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

FAKE_DIR = os.path.dirname(os.path.abspath(__file__))
FAKE_SCRIPT = os.path.join(FAKE_DIR, "tiktok_fake.py")
PYTHON = "/usr/bin/python3"


# --- raw HTTP ---

class HttpResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.header_list = headers  # [(name, value)] as received
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<HttpResponse %d %r>" % (self.status, self.body[:200])


def _connection(url, ca_file=None, timeout=10.0):
    parts = urlsplit(url)
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=ca_file)
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def http_request(method, url, body=None, headers=None, ca_file=None, timeout=10.0):
    """One request on a fresh connection. Never follows redirects, never raises on 4xx/5xx."""
    parts = urlsplit(url)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    conn = _connection(url, ca_file, timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return HttpResponse(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


class HttpClient:
    """A keep-alive connection to one base URL; reconnects on the next call after a close."""

    def __init__(self, base_url, ca_file=None, timeout=10.0):
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self.timeout = timeout
        self._conn = None

    def request(self, method, path_or_url, body=None, headers=None):
        target = path_or_url
        if path_or_url.startswith("http"):
            parts = urlsplit(path_or_url)
            target = parts.path + ("?" + parts.query if parts.query else "")
        reused = self._conn is not None
        if self._conn is None:
            self._conn = _connection(self.base_url, self.ca_file, self.timeout)
        try:
            self._conn.request(method, target, body=body, headers=headers or {})
            resp = self._conn.getresponse()
            out = HttpResponse(resp.status, resp.getheaders(), resp.read())
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            # the server had closed the idle keep-alive connection before
            # reading this request (nothing happened there): one fresh try
            return self.request(method, path_or_url, body, headers)
        except BaseException:
            self.close()  # never retried here: a retry could repeat a side effect
            raise
        if resp.will_close:
            self.close()
        return out

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- the control API ---

class ControlError(Exception):
    pass


class FakeControl:
    """Typed wrapper of /_fake/ (docs/testing.md lists every endpoint)."""

    def __init__(self, base_url, ca_file=None):
        self.base_url = base_url.rstrip("/")
        self.http = HttpClient(self.base_url, ca_file)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        resp = self.http.request(method, "/_fake/" + path, data, {"Content-Type": "application/json"} if data else {})
        payload = resp.json()
        if resp.status != 200:
            raise ControlError("%s /_fake/%s -> %d %s" % (method, path, resp.status, payload.get("error")))
        return payload

    # configuration
    def health(self):
        return self.call("GET", "health")

    def config(self):
        return self.call("GET", "config")

    def set_config(self, update=None, **keys):
        return self.call("POST", "config", dict(update or {}, **keys))

    def reset(self, config=None):
        return self.call("POST", "reset", {"config": config} if config else {})

    def creators(self):
        return self.call("GET", "creators")["creators"]

    def put_creator(self, creator):
        return self.call("POST", "creators", creator)["creators"][0]

    def outside_posts(self, open_id, count):
        return self.call("POST", "creators/%s/outside_posts" % quote(open_id, safe=""), {"count": count})

    def usage(self, open_id):
        return self.call("GET", "creators/%s/usage" % quote(open_id, safe=""))

    # faults
    def add_fault(self, **rule):
        return self.call("POST", "faults", rule)["faults"][0]

    def add_faults(self, rules):
        return self.call("POST", "faults", {"faults": rules})["faults"]

    def faults(self):
        return self.call("GET", "faults")["faults"]

    def clear_faults(self):
        return self.call("DELETE", "faults")

    def delete_fault(self, rule_id):
        return self.call("DELETE", "faults/%d" % rule_id)

    # clock
    def clock(self):
        return self.call("GET", "clock")

    def advance(self, seconds):
        return self.call("POST", "clock", {"advance_sec": seconds})

    def skew(self, seconds):
        return self.call("POST", "clock", {"skew_sec": seconds})

    # accounts and tokens
    def grant(self, open_id=None, scopes=None):
        body = {}
        if open_id:
            body["open_id"] = open_id
        if scopes is not None:
            body["scopes"] = list(scopes)
        return self.call("POST", "grant", body)

    def revoke(self, open_id, reason=1):
        return self.call("POST", "revoke", {"open_id": open_id, "reason": reason})

    def tokens(self):
        return self.call("GET", "tokens")

    # publishes
    def publishes(self):
        return self.call("GET", "publishes")["publishes"]

    def publish(self, publish_id):
        return self.call("GET", "publish/" + quote(publish_id, safe=""))

    def advance_publish(self, publish_id):
        return self.call("POST", "publish/%s/advance" % quote(publish_id, safe=""))

    def fail_publish(self, publish_id, reason="internal"):
        return self.call("POST", "publish/%s/fail" % quote(publish_id, safe=""), {"reason": reason})

    def user_post(self, publish_id, public=True):
        return self.call("POST", "publish/%s/user_post" % quote(publish_id, safe=""), {"public": public})

    # records
    def ledger(self, since=0):
        return self.call("GET", "ledger?since=%d" % since)

    def requests(self, path_prefix="/"):
        return [r for r in self.ledger()["requests"] if r["path"].startswith(path_prefix)]

    def posts(self):
        return self.ledger()["posts"]

    def webhooks(self):
        return self.call("GET", "webhooks")

    def emit_webhook(self, event, open_id=None, content=None):
        return self.call("POST", "webhooks/emit", {"event": event, "open_id": open_id, "content": content or {}})

    def close(self):
        self.http.close()


# --- starting the fake ---

class _FakeHandle:
    base_url = None
    ca_file = None

    @property
    def control_url(self):
        return self.base_url + "/_fake"

    @property
    def ctl(self):
        if getattr(self, "_ctl", None) is None:
            self._ctl = FakeControl(self.base_url, self.ca_file)
        return self._ctl

    def api(self, token=None):
        return Api(self.base_url, token, self.ca_file)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class InProcessFake(_FakeHandle):
    """The fake in this process (fast: no interpreter start). Same interface as FakeProcess."""

    def __init__(self, config=None, tls_cert=None, tls_key=None, ca_file=None):
        import sys

        if FAKE_DIR not in sys.path:
            sys.path.insert(0, FAKE_DIR)
        from tiktokfake import FakeTikTok

        self.server = FakeTikTok(config, tls_cert=tls_cert, tls_key=tls_key)
        self.ca_file = ca_file

    @property
    def core(self):
        return self.server.core

    def start(self):
        self.base_url = self.server.start()
        return self.base_url

    def stop(self):
        if getattr(self, "_ctl", None) is not None:
            self._ctl.close()
        self.server.stop()


class FakeProcess(_FakeHandle):
    """The fake as a child process, started through its CLI (tests/fake/tiktok_fake.py)."""

    def __init__(self, config=None, tls_cert=None, tls_key=None, ca_file=None, python=PYTHON,
                 startup_timeout=10.0):
        self.config = config or {}
        self.tls = (tls_cert, tls_key)
        self.ca_file = ca_file
        self.python = python
        self.startup_timeout = startup_timeout
        self.proc = None
        self.info = None
        self._config_file = None

    def start(self):
        fd, self._config_file = tempfile.mkstemp(prefix="tiktok-fake-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.config, fh)
        cmd = [self.python, FAKE_SCRIPT, "--host", "127.0.0.1", "--port", "0", "--config", self._config_file]
        if self.tls[0]:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self._read_line()
        self.info = json.loads(line)
        self.base_url = self.info["base_url"]
        return self.base_url

    def _read_line(self):
        deadline = time.monotonic() + self.startup_timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the fake did not print its JSON line (got %r)" % buf)
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        return buf.split(b"\n", 1)[0].decode("utf-8")

    def stop(self, timeout=10.0):
        """SIGTERM, wait (bounded), return the exit code."""
        if getattr(self, "_ctl", None) is not None:
            self._ctl.close()
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(timeout)
            self.proc.stdout.close()
        if self._config_file and os.path.exists(self._config_file):
            os.unlink(self._config_file)
        return code


# --- talking to the fake as a TikTok client would ---

class Api:
    """Minimal TikTok client calls, for tests of the fake itself."""

    def __init__(self, base_url, token=None, ca_file=None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = HttpClient(self.base_url, ca_file)

    def _auth(self, token):
        token = token if token is not None else self.token
        return {"Authorization": "Bearer " + token} if token else {}

    def post_json(self, path, obj=None, token=None, raw=None, content_type="application/json; charset=UTF-8"):
        body = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode("utf-8"))
        headers = dict(self._auth(token))
        if body:
            headers["Content-Type"] = content_type
        return self.http.request("POST", path, body, headers)

    def get(self, path, token=None):
        return self.http.request("GET", path, None, self._auth(token))

    def form(self, path, fields, content_type="application/x-www-form-urlencoded"):
        return self.http.request("POST", path, urlencode(fields).encode("ascii"),
                                 {"Content-Type": content_type, "Cache-Control": "no-cache"})

    def put_chunk(self, upload_url, data, first, total, content_type="video/mp4", headers=None):
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(data)),
                "Content-Range": "bytes %d-%d/%d" % (first, first + len(data) - 1, total)}
        hdrs.update(headers or {})
        return self.http.request("PUT", upload_url, data, hdrs)

    def upload(self, upload_url, data, chunk_size):
        """PUT `data` in the §2.5 plan: floor(size/chunk) chunks, the last takes the rest."""
        size = len(data)
        count = max(1, size // chunk_size)
        view = memoryview(data)
        statuses = []
        for i in range(count):
            first = i * chunk_size
            end = size if i == count - 1 else first + chunk_size
            statuses.append(self.put_chunk(upload_url, view[first:end], first, size).status)
        return statuses

    def close(self):
        self.http.close()


def pkce_pair():
    """(code_verifier, code_challenge) with TikTok's hex challenge (§1.3)."""
    verifier = secrets.token_urlsafe(48)[:64]
    return verifier, hashlib.sha256(verifier.encode("ascii")).hexdigest()


def authorize(base_url, client_key="fake_client_key", redirect_uri="https://tikd.example.test/oauth/callback",
              scopes=("user.info.basic", "video.publish", "video.upload"), state="state-1",
              code_challenge=None, extra=None, ca_file=None):
    """GET the authorize page; return (response, redirect query params as a dict)."""
    params = {"client_key": client_key, "scope": ",".join(scopes), "response_type": "code",
              "redirect_uri": redirect_uri, "state": state}
    if code_challenge is not None:
        params.update(code_challenge=code_challenge, code_challenge_method="S256")
    params.update(extra or {})
    params = {k: v for k, v in params.items() if v is not None}
    resp = http_request("GET", base_url + "/v2/auth/authorize/?" + urlencode(params), ca_file=ca_file)
    query = {}
    if resp.status == 302:
        query = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["location"]).query).items()}
    return resp, query


def obtain_tokens(base_url, open_id=None, scopes=("user.info.basic", "video.publish", "video.upload"),
                  client_key="fake_client_key", client_secret="fake_client_secret",
                  redirect_uri="https://tikd.example.test/oauth/callback", pkce=True, ca_file=None):
    """The whole Login Kit dance: authorize (as `open_id`), then exchange the code."""
    verifier, challenge = pkce_pair() if pkce else (None, None)
    resp, query = authorize(base_url, client_key, redirect_uri, scopes, code_challenge=challenge,
                            extra={"fake_user": open_id} if open_id else None, ca_file=ca_file)
    if "code" not in query:
        raise RuntimeError("authorize failed: %r %r" % (resp, query))
    fields = {"client_key": client_key, "client_secret": client_secret, "code": query["code"],
              "grant_type": "authorization_code", "redirect_uri": redirect_uri}
    if verifier:
        fields["code_verifier"] = verifier
    token = http_request("POST", base_url + "/v2/oauth/token/", urlencode(fields).encode("ascii"),
                         {"Content-Type": "application/x-www-form-urlencoded"}, ca_file=ca_file)
    if token.status != 200:
        raise RuntimeError("token exchange failed: %r" % token)
    return token.json()


# --- webhooks ---

def verify_signature(secret, header, raw_body, now=None, tolerance=300):
    """TikTok-Signature check of §5.3: HMAC over t + "." + raw body, and |now - t| <= tolerance."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in fields or "s" not in fields or not fields["t"].isdigit():
        return False
    expected = hmac.new(secret.encode("utf-8"), fields["t"].encode("ascii") + b"." + raw_body,
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["s"]):
        return False
    now = time.time() if now is None else now
    return abs(now - int(fields["t"])) <= tolerance


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class WebhookSink:
    """A loopback receiver that records deliveries. `statuses` lists the answers to give, in
    order (then 200): e.g. WebhookSink(statuses=[500, 503]) fails the first two deliveries.
    `gate` (a threading.Event) holds every answer until it is set, at most 10 s."""

    def __init__(self, statuses=None, gate=None):
        self.statuses = list(statuses or [])
        self.gate = gate  # a threading.Event: when given, answers wait for it (at most 10 s)
        self.received = []  # dicts: headers, body (bytes), json, status answered, t_mono
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if sink.gate is not None:
                    sink.gate.wait(10)
                with sink._cond:
                    status = sink.statuses.pop(0) if sink.statuses else 200
                    sink.received.append({"headers": dict(self.headers.items()), "body": body,
                                          "status": status, "t_mono": time.monotonic()})
                    sink._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = _SinkServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/webhooks/tiktok" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)
        self._thread.start()

    def wait_for(self, count, timeout=5.0):
        """Block until at least `count` deliveries arrived (bounded); return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError("expected %d webhook deliveries, got %d" % (count, len(self.received)))
            return list(self.received)

    def events(self):
        with self._cond:
            return [json.loads(r["body"]) for r in self.received]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def wait_until(predicate, timeout=5.0, interval=0.01, message="condition"):
    """Poll `predicate` until it returns a truthy value (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    waiter = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        waiter.wait(interval)
