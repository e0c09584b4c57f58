"""Signed webhook deliveries (§5) from a background thread; emitting never blocks a request.

Body: {"client_key","event","create_time","user_openid","content"} with `content` a JSON *string*.
Header: TikTok-Signature: t=<unix>,s=<hex hmac_sha256(client_secret, t + "." + raw body)>.
Options (config "webhook"): stale t, wrong s, duplicate deliveries, and retries on a failed
delivery with a compressed backoff. Deliveries go to loopback URLs only.
Every emitted event is recorded even without a URL, and so is every delivery attempt.
"""

import hashlib
import heapq
import hmac
import http.client
import json
import ssl
import threading
import time
from urllib.parse import urlsplit

from .config import is_loopback_host


def sign(secret, t, body):
    """The `s` value of TikTok-Signature for raw body bytes and timestamp t (§5.3)."""
    return hmac.new(secret.encode("utf-8"), str(t).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    def __init__(self, core):
        self.core = core
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread = None
        self.clear()

    def clear(self):
        with self._lock:
            self._heap = []
            self._heap_seq = 0
            self._seq = 0
            self._generation = getattr(self, "_generation", 0) + 1
            self.events = []
            self.deliveries = []

    def start(self):
        self._thread = threading.Thread(target=self._run, name="fake-webhooks", daemon=True)
        self._thread.start()

    def stop(self):
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    # --- producing ---
    def emit(self, event, open_id, content):
        """Queue an event. Safe to call with core.lock held: it only enqueues."""
        core = self.core
        opts = dict(core.cfg["webhook"])
        secret = core.cfg["client_secret"]
        body = json.dumps(
            {
                "client_key": core.cfg["client_key"],
                "event": event,
                "create_time": int(core.now()),
                "user_openid": open_id,
                "content": json.dumps(content, separators=(",", ":")),
            },
            separators=(",", ":"),
        ).encode("utf-8")
        with self._lock:
            self._seq += 1
            record = {
                "seq": self._seq,
                "event": event,
                "user_openid": open_id,
                "content": content,
                "body": body.decode("utf-8"),
                "t_mono": time.monotonic(),
                "delivered": False,
            }
            self.events.append(record)
            if not opts["url"] or not secret:
                return record
            copies = 1 + int(opts["duplicates"])
            for copy_index in range(copies):
                item = {
                    "event_seq": record["seq"],
                    "url": opts["url"],
                    "secret": secret,
                    "opts": opts,
                    "body": body,
                    "attempt": 1,
                    "duplicate": copy_index > 0,
                    "generation": self._generation,
                }
                self._push(time.monotonic(), item)
            return record

    def _push(self, due, item):
        self._heap_seq += 1
        heapq.heappush(self._heap, (due, self._heap_seq, item))
        self._wake.notify_all()

    # --- delivering ---
    def _run(self):
        while True:
            with self._lock:
                while not self._stop:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = (self._heap[0][0] - time.monotonic()) if self._heap else None
                    self._wake.wait(timeout)
                if self._stop:
                    return
                _, _, item = heapq.heappop(self._heap)
            self._deliver(item)

    def _deliver(self, item):
        opts = item["opts"]
        t = int(self.core.now()) - int(opts["stale_t_sec"])
        key = item["secret"] + ("-wrong" if opts["wrong_signature"] else "")
        signature = "t=%d,s=%s" % (t, sign(key, t, item["body"]))
        status, error = None, None
        try:
            status = _post(item["url"], item["body"], signature, opts)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = "%s: %s" % (type(exc).__name__, exc)
        ok = status == 200 or (opts["accept_any_2xx"] and status is not None and 200 <= status < 300)
        with self._lock:
            if item["generation"] != self._generation:
                return  # the fake was reset meanwhile
            self.deliveries.append(
                {
                    "event_seq": item["event_seq"],
                    "attempt": item["attempt"],
                    "duplicate": item["duplicate"],
                    "signature": signature,
                    "status": status,
                    "error": error,
                    "ok": ok,
                    "t_mono": time.monotonic(),
                }
            )
            if ok:
                for event in self.events:
                    if event["seq"] == item["event_seq"]:
                        event["delivered"] = True
                return
            delays = opts["retry_delays_sec"]
            if item["attempt"] <= len(delays):
                retry = dict(item, attempt=item["attempt"] + 1)
                self._push(time.monotonic() + float(delays[item["attempt"] - 1]), retry)

    def snapshot(self):
        with self._lock:
            return {"events": [dict(e) for e in self.events], "deliveries": [dict(d) for d in self.deliveries]}


def _post(url, body, signature, opts):
    parts = urlsplit(url)
    if not parts.hostname or not is_loopback_host(parts.hostname):
        raise ValueError("webhook URL must be on loopback: %s" % url)
    timeout = float(opts["timeout_sec"])
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=opts["ca_file"]) if opts["ca_file"] else ssl.create_default_context()
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=ctx)
    elif parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    else:
        raise ValueError("webhook URL must be http or https")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "TikTok-Signature": signature,
                "User-Agent": "TikTokFake-Webhook/1.0",
            },
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()
