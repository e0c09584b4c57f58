"""The HTTP server: one ThreadingHTTPServer on loopback plays every TikTok host.

    /v2/auth/authorize/     the browser authorize page (§1.1)
    /v2/oauth/...           OAuth token and revoke (flat JSON, §1)
    /v2/...                 Content Posting and Display APIs (envelope, §2, §6)
    /upload/video/?...      the upload_url target (§2.4)
    /_fake/...              the control API (control.py), loopback clients only

HTTP/1.1 with keep-alive; every response has a Content-Length and an x-tt-logid header.
Fault rules (faults.py) are applied here, around the handlers, because several of them act on
the connection itself: reset (RST) mid-body, stalls, delays, mangled bodies.
"""

import email.utils
import math
import os
import socket
import ssl
import struct
import sys
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import control, display, oauth, posting, upload
from .config import is_loopback_host
from .core import Core
from .upload import ClientGone
from .wire import (ApiError, OAuthError, Request, Response, api_error_response, envelope,
                   oauth_error_response)

INIT_BUCKETS = ("video_init", "inbox_init", "content_init")
DRAIN_LIMIT = 256 * 1024 * 1024  # larger unread bodies close the connection instead
READ_PIECE = 1024 * 1024


@dataclass(frozen=True)
class Route:
    kind: str  # page | oauth | api | upload
    handler: object
    scopes: tuple = None  # any one of these; None = the handler checks
    bucket: str = None  # rate-limit bucket (config rate_limits)


ROUTES = {
    ("GET", "/v2/auth/authorize/"): Route("page", oauth.authorize),
    ("POST", "/v2/oauth/token/"): Route("oauth", oauth.token),
    ("POST", "/v2/oauth/revoke/"): Route("oauth", oauth.revoke),
    ("POST", "/v2/post/publish/creator_info/query/"):
        Route("api", posting.creator_info, ("video.publish",), "creator_info"),
    ("POST", "/v2/post/publish/video/init/"): Route("api", posting.video_init, ("video.publish",), "video_init"),
    ("POST", "/v2/post/publish/inbox/video/init/"):
        Route("api", posting.inbox_video_init, ("video.upload",), "inbox_init"),
    ("POST", "/v2/post/publish/content/init/"): Route("api", posting.content_init, None, "content_init"),
    ("POST", "/v2/post/publish/status/fetch/"):
        Route("api", posting.status_fetch, ("video.upload", "video.publish"), "status_fetch"),
    ("POST", "/v2/post/publish/cancel/"): Route("api", posting.cancel, ("video.upload", "video.publish"), "cancel"),
    ("GET", "/v2/user/info/"): Route("api", display.user_info, None, "user_info"),
    ("POST", "/v2/video/list/"): Route("api", display.video_list, ("video.list",), "video_list"),
    ("POST", "/v2/video/query/"): Route("api", display.video_query, ("video.list",), "video_query"),
    ("PUT", "/upload/video/"): Route("upload", upload.put),
}
PATHS = {path for _, path in ROUTES}


class _Reset(Exception):
    """The connection was reset on purpose; nothing more may be written."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of parallel connections must not hit SYN retransmits

    def __init__(self, addr, family, core, ssl_context, stop_event):
        self.address_family = family
        self.core = core
        self.ssl_context = ssl_context
        self.stop_event = stop_event
        self.connections = set()
        self.connections_lock = threading.Lock()
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        # The TLS handshake runs here, in the connection's own thread, not in accept().
        try:
            request.settimeout(float(self.core.cfg["socket_timeout_sec"]))
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return None
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()
        return None

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)

    def close_connections(self):
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TikTokFake/1.0"

    def version_string(self):
        return self.server_version

    def setup(self):
        self.timeout = float(self.server.core.cfg["socket_timeout_sec"])
        try:  # headers and body leave in separate writes: do not let Nagle hold the body back
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self):
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.core.cfg["log_requests"]:
            sys.stderr.write("fake: %s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # --- request bodies ---
    def _body_setup(self):
        """Read framing headers. False when they are unusable (the request gets a 400)."""
        self._chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        self._remaining = 0
        if self._chunked:
            return True
        value = self.headers.get("Content-Length")
        if value is None:
            return True
        if not value.strip().isdigit():
            return False
        self._remaining = int(value)
        return True

    def read_stream(self, n, sink):
        """Stream n body bytes into sink(bytes). Raises ClientGone if the client stops short."""
        while n > 0:
            try:
                piece = self.rfile.read(min(READ_PIECE, n))
            except (OSError, ValueError):
                piece = b""
            if not piece:
                self.close_connection = True
                raise ClientGone()
            self._remaining -= len(piece)
            n -= len(piece)
            sink(piece)

    def read_body(self, limit):
        """The whole body (Content-Length or chunked). 413 when over `limit`."""
        parts = []
        if self._chunked:
            total = 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ClientGone()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise ApiError(400, "invalid_params", "The chunked request body is malformed.")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._chunked = False
                    break
                total += size
                if total > limit:
                    self.close_connection = True
                    raise ApiError(413, "invalid_params", "The request body is too large.")
                self.read_stream(size, parts.append)
                self._remaining = 0
                self.rfile.readline(1024)
            return b"".join(parts)
        if self._remaining > limit:
            raise ApiError(413, "invalid_params", "The request body is too large.")
        self.read_stream(self._remaining, parts.append)
        return b"".join(parts)

    def _drain(self):
        """Consume an unread body so the connection can carry the next request."""
        if self._chunked:
            try:
                self.read_body(DRAIN_LIMIT)
            except (ApiError, ClientGone):
                self.close_connection = True
        elif 0 < self._remaining <= DRAIN_LIMIT:
            try:
                self.read_stream(self._remaining, lambda piece: None)
            except ClientGone:
                pass
        elif self._remaining > 0:
            self.close_connection = True

    # --- connection tricks for faults ---
    def _reset(self):
        """Abort the connection with a TCP RST (SO_LINGER 0), right now."""
        self.close_connection = True
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            os.close(self.connection.detach())
        except OSError:
            pass
        raise _Reset()

    def _sleep(self, seconds):
        self.server.stop_event.wait(float(seconds))

    # --- dispatch ---
    def _dispatch(self):
        core = self.server.core
        if not self._body_setup():
            self.close_connection = True
            return self._write(Response(400, b"bad Content-Length\n", content_type="text/plain"), core.new_log_id())
        path = urlsplit(self.path).path
        if path == "/_fake" or path.startswith("/_fake/"):
            core.engine.tick()
            try:
                resp = control.handle(core, self, path)
            except ClientGone:
                self.close_connection = True
                return None
            self._drain()
            return self._write(resp, core.new_log_id())

        core.engine.tick()
        req = Request(self, core.new_log_id(), core.now())
        route = ROUTES.get((self.command, path))
        req.open_id = self._identify(core, req, route)
        entry = core.ledger.begin(self.command, path, req.open_id, req.now)
        if route is not None and route.kind == "upload":
            core.ledger.note(entry, range=self.headers.get("Content-Range"))
        self._note_fence(core, entry, req.open_id)
        rule = core.faults.take(self.command, path, req.open_id)
        fault = rule["kind"] if rule else None
        try:
            resp = self._respond(core, req, route, rule)
            self._drain()
            core.ledger.finish(entry, resp.status, resp.error_code, fault, resp.publish_id)
            self._write(resp, req.log_id, rule)
        except _Reset:
            core.ledger.finish(entry, None, None, fault)
        except ClientGone:
            core.ledger.finish(entry, None, "client_gone", fault)
            self.close_connection = True
        except (ConnectionError, TimeoutError):
            core.ledger.finish(entry, None, "client_gone", fault)
            self.close_connection = True
        return None

    def _note_fence(self, core, entry, open_id):
        """A tikd cluster node sends its lease's fencing token (X-Tikd-Fence; TikTok itself
        ignores the header). The ledger keeps it, and marks `stale_fence` on a request whose
        fence is lower than one already seen for the same creator: a node acting after it lost
        the account's lease. A header that is not a whole number is kept as "bad"."""
        raw = self.headers.get("X-Tikd-Fence")
        if raw is None:
            return
        if not raw.isdigit():
            core.ledger.note(entry, fence="bad")
            return
        fence = int(raw)
        with core.lock:
            top = core.fences.get(open_id, 0)
            if open_id is not None and fence > top:
                core.fences[open_id] = fence
        core.ledger.note(entry, fence=fence, stale_fence=fence < top)

    @staticmethod
    def _identify(core, req, route):
        if route is not None and route.kind == "upload":
            found = upload.find_upload(core, req)
            return found.open_id if found else None
        return oauth.token_open_id(core, req)

    def _respond(self, core, req, route, rule):
        """Build the response, applying the before- and after-handler parts of a fault."""
        if rule is not None:
            if rule["delay_sec"]:
                self._sleep(rule["delay_sec"])
            kind = rule["kind"]
            if kind == "reset" and rule["phase"] == "request":
                take = min(int(rule["after_bytes"]), self._remaining)
                if take:
                    self.read_stream(take, lambda piece: None)
                self._reset()
            if kind == "rate_limit" or (kind == "status" and rule.get("phase") != "after"):
                self._drain()
                return _fault_response(core, req, rule)
            if kind == "revoke_token" and req.open_id:
                oauth.revoke_open_id(core, req.open_id, reason=int(rule["reason"]))
            if kind == "fail_publish":
                req.planned_failure = (rule["reason"], rule["stage"])  # set when the publish is created
        resp = self._route(core, req, route)
        if rule is not None and rule["kind"] == "slow_answer":
            self._sleep(float(rule["answer_delay_sec"]))  # done here; the client does not know yet
        if rule is not None and rule["kind"] == "malformed_json":
            resp.body = _mangle(resp.body, rule["mode"])
        if rule is not None and rule["kind"] == "status" and rule.get("phase") == "after":
            return _fault_response(core, req, rule)  # the work is done; the client hears an error
        return resp

    def _route(self, core, req, route):
        try:
            if route is None:
                if req.path in PATHS:
                    return envelope(req.log_id, {}, 405, "method_not_allowed",
                                    "Method %s is not allowed on %s." % (req.method, req.path))
                return envelope(req.log_id, {}, 404, "not_found", "No such endpoint: %s" % req.path)
            if route.kind == "page":
                return route.handler(core, req)
            if route.kind == "oauth":
                return route.handler(core, req)
            if route.kind == "upload":
                return route.handler(core, req, self)
            return self._api(core, req, route)
        except OAuthError as err:
            return oauth_error_response(req.log_id, err, core.cfg["oauth_error_status"])
        except ApiError as err:
            return api_error_response(req.log_id, err)
        except (ClientGone, _Reset, ConnectionError, TimeoutError):
            raise
        except Exception:  # a bug in the fake: say so loudly, answer like TikTok's 500
            traceback.print_exc()
            return envelope(req.log_id, {}, 500, "internal_error", "The fake server hit an internal error.")

    @staticmethod
    def _api(core, req, route):
        """Bearer token (401), rate limit (429), scope (401), then the endpoint."""
        tok = oauth.authenticate(core, req)
        cfg = core.cfg
        bucket = route.bucket
        limit = cfg["rate_limits"][bucket]
        if cfg["shared_init_bucket"] and bucket in INIT_BUCKETS:
            bucket, limit = "init", cfg["rate_limits"]["video_init"]
        if limit is not None:
            with core.lock:
                wait = core.rate.admit((tok.token, bucket), limit, float(cfg["rate_limit_window_sec"]), core.now())
            if wait is not None:
                headers = [("Retry-After", str(max(1, math.ceil(wait))))] if cfg["rate_limit_retry_after"] else []
                raise ApiError(429, "rate_limit_exceeded",
                               "The API rate limit was exceeded. Please try again later.", headers)
        if route.scopes:
            oauth.require_scope(tok, *route.scopes)
        return route.handler(core, req, tok)

    # --- writing ---
    def _write(self, resp, log_id, rule=None):
        if rule is not None and rule["kind"] == "reset" and rule["phase"] == "response":
            self._reset()
        self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("x-tt-logid", log_id)
        for name, value in resp.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if rule is not None and rule["kind"] == "stall":
            part = int(rule["partial_bytes"])
            self.wfile.write(resp.body[:part])
            self._sleep(rule["stall_sec"])
            if rule["then"] == "close":
                self.close_connection = True
                return
            self.wfile.write(resp.body[part:])
            return
        self.wfile.write(resp.body)


def _fault_response(core, req, rule):
    status = 429 if rule["kind"] == "rate_limit" else int(rule["status"])
    headers = []
    retry_after = rule.get("retry_after")
    if retry_after is not None:
        if rule.get("retry_after_format") == "http-date":
            value = email.utils.formatdate(core.now() + float(retry_after), usegmt=True)
        else:
            value = str(int(math.ceil(float(retry_after))))
        headers.append(("Retry-After", value))
    if rule.get("body") is not None:
        resp = Response(status, rule["body"].encode("utf-8"), headers=headers)
        resp.error_code = "fault"
        return resp
    if req.path.startswith("/v2/oauth/"):
        error = "temporarily_unavailable" if status == 503 else "server_error"
        resp = oauth_error_response(req.log_id, OAuthError(error, "Injected fault."), status)
    else:
        if status == 429:
            code = "rate_limit_exceeded"
        else:
            code = rule.get("error_code") or ("internal_error" if status >= 500 else "invalid_params")
        resp = envelope(req.log_id, {}, status, code, rule.get("message") or "Injected fault.")
    resp.headers.extend(headers)
    return resp


def _mangle(body, mode):
    if mode == "garbage":
        return b"<html><body>502 Bad Gateway</body></html>"
    if len(body) < 2:
        return b"{"
    return body[: len(body) // 2]


class FakeTikTok:
    """The fake, in process: `base = FakeTikTok(config).start()`, then `.stop()`."""

    def __init__(self, config=None, host="127.0.0.1", port=0, tls_cert=None, tls_key=None):
        if not is_loopback_host(host):
            raise ValueError("the fake only listens on loopback addresses, not %r" % host)
        self.core = Core(config)
        self.host = host
        self.port = port
        self._tls = (tls_cert, tls_key) if tls_cert else None
        self._server = None
        self._thread = None
        self._stop = threading.Event()

    def start(self):
        ctx = None
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self._tls[0], self._tls[1])
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _Server((self.host, self.port), family, self.core, ctx, self._stop)
        self.port = self._server.server_address[1]
        host = "[%s]" % self.host if family == socket.AF_INET6 else self.host
        self.core.base_url = "%s://%s:%d" % ("https" if ctx else "http", host, self.port)
        self.core.start()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-http", daemon=True)
        self._thread.start()
        return self.core.base_url

    @property
    def base_url(self):
        return self.core.base_url

    @property
    def control_url(self):
        return self.core.base_url + "/_fake"

    def stop(self):
        if self._server is None:
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self.core.stop()
        self._thread.join(timeout=5)
        self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
