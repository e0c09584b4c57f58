"""Request and response objects, the two TikTok response shapes, and the errors that map to them.

Two shapes (§0.2): OAuth endpoints answer flat JSON; every other endpoint answers the envelope
{"data": {...}, "error": {"code", "message", "log_id"}}. Handlers raise ApiError or OAuthError
and the server turns them into the right shape; every response carries an x-tt-logid header.
"""

from urllib.parse import parse_qs, urlsplit

from .util import dumps, loads_object

JSON_TYPE = "application/json; charset=UTF-8"


class ApiError(Exception):
    """A non-OAuth error: HTTP status plus TikTok's error.code (§3.3)."""

    def __init__(self, status, code, message, headers=None):
        super().__init__("%d %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


class OAuthError(Exception):
    """An OAuth error in the flat shape (§1.10); the HTTP status comes from config."""

    def __init__(self, error, description):
        super().__init__("%s: %s" % (error, description))
        self.error = error
        self.description = description


def invalid_params(message):
    return ApiError(400, "invalid_params", message)


class Response:
    def __init__(self, status, body=b"", content_type=JSON_TYPE, headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers or [])
        self.error_code = None  # for the ledger
        self.publish_id = None  # set when the request created a publish


def envelope(log_id, data=None, status=200, code="ok", message="", with_data=True):
    body = {}
    if with_data:
        body["data"] = data if data is not None else {}
    body["error"] = {"code": code, "message": message, "log_id": log_id}
    resp = Response(status, dumps(body))
    resp.error_code = code
    return resp


def api_error_response(log_id, err):
    resp = envelope(log_id, {}, err.status, err.code, err.message)
    resp.headers.extend(err.headers)
    return resp


def oauth_error_response(log_id, err, status):
    body = {"error": err.error, "error_description": err.description, "log_id": log_id}
    resp = Response(status, dumps(body))
    resp.error_code = err.error
    return resp


def json_response(obj, status=200):
    return Response(status, dumps(obj))


def media_type(header_value):
    """The bare media type of a Content-Type header, lower-cased, without parameters."""
    return (header_value or "").split(";", 1)[0].strip().lower()


class Request:
    """What a handler sees of one HTTP request. The body is read lazily (uploads stream it)."""

    def __init__(self, handler, log_id, now):
        self.handler = handler
        self.method = handler.command
        parts = urlsplit(handler.path)
        self.path = parts.path
        self.raw_query = parts.query
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = handler.headers
        self.client_ip = handler.client_address[0]
        self.log_id = log_id
        self.now = now  # the fake clock at arrival
        self.open_id = None  # filled by the server for the ledger and fault matching
        self.planned_failure = None  # (reason, stage) from a fail_publish fault
        self._body = None

    def param(self, name):
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name):
        return self.headers.get(name)

    def content_length(self):
        """The declared Content-Length, or None when absent; ValueError when malformed."""
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit():
            raise ValueError("bad Content-Length")
        return int(value)

    def bearer_token(self):
        value = self.headers.get("Authorization")
        if not value:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def body(self, limit):
        """The whole request body (Content-Length or chunked), at most `limit` bytes."""
        if self._body is None:
            self._body = self.handler.read_body(limit)
        return self._body

    def json_body(self, limit, allow_empty=False):
        """The body as a JSON object. Enforces Content-Type: application/json (§2.0)."""
        raw = self.body(limit)
        if not raw.strip() and allow_empty:
            return {}
        if media_type(self.header("Content-Type")) != "application/json":
            raise invalid_params("Content-Type must be application/json.")
        try:
            return loads_object(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid_params("The request body is not valid JSON: %s" % exc)

    def form_body(self, limit):
        """The body as form fields, one value each; ValueError on a repeated field."""
        raw = self.body(limit).decode("utf-8", "replace")
        fields = parse_qs(raw, keep_blank_values=True)
        out = {}
        for key, values in fields.items():
            if len(values) != 1:
                raise ValueError("parameter %s is repeated" % key)
            out[key] = values[0]
        return out
