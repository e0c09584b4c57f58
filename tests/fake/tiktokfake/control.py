"""The control API under /_fake/ (JSON in, JSON out, no auth, loopback clients only).

Tests use it to configure the fake, inject faults, move the clock and read the ledger.
Every endpoint is listed in docs/testing.md with its request and response shapes.
"""

import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

from . import config as cfgmod
from . import oauth
from .config import SCOPES, is_loopback_host
from .faults import FaultError
from .posting import pending_shares, window_count
from .util import loads_object
from .wire import ApiError, json_response


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _err(status, message):
    return json_response({"error": message}, status)


def handle(core, handler, path):
    """Serve one control request; returns a Response."""
    if not is_loopback_host(handler.client_address[0]):
        return _err(403, "the control API only answers loopback clients")
    method = handler.command
    query = parse_qs(urlsplit(handler.path).query)
    body = {}
    try:
        raw = handler.read_body(16 * 1024 * 1024)
    except ApiError as exc:
        return _err(exc.status, exc.message)
    if raw.strip():
        try:
            body = loads_object(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _err(400, "the body must be a JSON object: %s" % exc)
    rel = path[len("/_fake"):].strip("/")
    for pattern, methods in _ROUTES:
        match = re.fullmatch(pattern, rel)
        if not match:
            continue
        fn = methods.get(method)
        if fn is None:
            return _err(405, "method %s not allowed here" % method)
        try:
            return json_response(fn(core, body, query, *[unquote(g) for g in match.groups()]))
        except ControlError as exc:
            return _err(exc.status, exc.message)
        except (cfgmod.ConfigError, FaultError, ValueError, TypeError) as exc:
            return _err(400, str(exc))
    return _err(404, "no control endpoint at %s" % path)


# --- endpoints: fn(core, body, query, *path_groups) -> JSON-able ---

def health(core, body, query):
    return {"ok": True, "base_url": core.base_url, "now": core.now(), "mono": time.monotonic()}


def get_config(core, body, query):
    return core.cfg


def set_config(core, body, query):
    return core.set_config(body)


def reset(core, body, query):
    cfg = core.initial_config
    if body.get("config"):
        cfg = cfgmod.merge(cfg, body["config"])
    core.reset(cfg)
    return {"ok": True}


def list_creators(core, body, query):
    with core.lock:
        return {"creators": list(core.creators.values())}


def put_creators(core, body, query):
    items = body.get("creators") if "creators" in body else [body]
    if not isinstance(items, list):
        raise ControlError(400, "creators must be a list")
    return {"creators": [core.put_creator(c) for c in items]}


def _creator(core, open_id):
    creator = core.find_creator(open_id)
    if creator is None:
        raise ControlError(404, "no creator %s" % open_id)
    return creator


def outside_posts(core, body, query, open_id):
    count = body.get("count", 1)
    if not isinstance(count, int) or count < 0:
        raise ControlError(400, "count must be a non-negative integer")
    creator = _creator(core, open_id)
    core.outside_posts(creator["open_id"], count)
    return usage(core, {}, query, creator["open_id"])


def usage(core, body, query, open_id):
    creator = _creator(core, open_id)
    with core.lock:
        now = core.now()
        u = core.usage[creator["open_id"]]
        return {
            "open_id": creator["open_id"],
            "direct_posts_in_window": window_count(u.direct_posts, now, core.cfg["daily_post_window_sec"]),
            "pending_shares": pending_shares(core, creator["open_id"], now),
            "active": creator["open_id"] in core.active_users
            and core.active_users[creator["open_id"]] > now - core.cfg["active_user_window_sec"],
        }


def list_faults(core, body, query):
    return {"faults": core.faults.list()}


def add_faults(core, body, query):
    specs = body["faults"] if "faults" in body else [body]
    if not isinstance(specs, list):
        raise ControlError(400, "faults must be a list")
    return {"faults": [core.faults.add(spec) for spec in specs]}


def clear_faults(core, body, query):
    core.faults.clear()
    return {"ok": True}


def delete_fault(core, body, query, rule_id):
    if not rule_id.isdigit() or not core.faults.remove(int(rule_id)):
        raise ControlError(404, "no fault rule %s" % rule_id)
    return {"ok": True}


def ledger(core, body, query):
    since = int(query.get("since", ["0"])[0])
    snap = core.ledger.snapshot(since)
    snap["webhooks"] = core.webhooks.snapshot()
    return snap


def webhooks(core, body, query):
    return core.webhooks.snapshot()


def emit_webhook(core, body, query):
    event = body.get("event")
    open_id = body.get("open_id") or core.cfg["default_creator"]
    content = body.get("content", {})
    if not isinstance(event, str) or not isinstance(content, dict):
        raise ControlError(400, "need event (string) and content (object)")
    return core.webhooks.emit(event, open_id, content)


def clock(core, body, query):
    if "advance_sec" in body:
        core.clock.advance(float(body["advance_sec"]))
    if "skew_sec" in body:
        core.clock.set_offset(float(body["skew_sec"]))
    core.engine.tick()
    return {"now": core.now(), "offset_sec": core.clock.offset, "real_now": time.time()}


def revoke(core, body, query):
    open_id = body.get("open_id")
    if not isinstance(open_id, str):
        raise ControlError(400, "need open_id")
    reason = body.get("reason", 1)
    return {"revoked_grants": oauth.revoke_open_id(core, _creator(core, open_id)["open_id"], int(reason))}


def grant(core, body, query):
    creator = _creator(core, body.get("open_id") or core.cfg["default_creator"])
    scopes = body.get("scopes", list(SCOPES))
    if not isinstance(scopes, list) or any(s not in SCOPES for s in scopes):
        raise ControlError(400, "scopes must be a list of known scopes")
    return oauth.issue_grant(core, creator["open_id"], scopes)


def tokens(core, body, query):
    with core.lock:
        out = {key: list(values) for key, values in core.issued.items()}
    out["all"] = out["access_tokens"] + out["refresh_tokens"]
    return out


def list_publishes(core, body, query):
    with core.lock:
        return {"publishes": [core.engine.describe(p) for p in core.publishes.values()]}


def _publish(core, publish_id):
    pub = core.publishes.get(publish_id)
    if pub is None:
        raise ControlError(404, "no publish %s" % publish_id)
    return pub


def get_publish(core, body, query, publish_id):
    with core.lock:
        return core.engine.describe(_publish(core, publish_id))


def advance_publish(core, body, query, publish_id):
    with core.lock:
        pub = _publish(core, publish_id)
        if not core.engine.advance(pub):
            raise ControlError(409, "publish %s has no timed step pending (status %s)" % (publish_id, pub.status))
        return core.engine.describe(pub)


def fail_publish(core, body, query, publish_id):
    reason = body.get("reason", "internal")
    with core.lock:
        pub = _publish(core, publish_id)
        if not pub.in_flight:
            raise ControlError(409, "publish %s is not in flight (status %s)" % (publish_id, pub.status))
        core.engine.fail(pub, reason)
        return core.engine.describe(pub)


def user_post(core, body, query, publish_id):
    public = bool(body.get("public", True))
    with core.lock:
        pub = _publish(core, publish_id)
        if pub.publish_type != "INBOX_SHARE" or pub.phase not in ("inbox", "complete"):
            raise ControlError(409, "publish %s is not a delivered draft (status %s)" % (publish_id, pub.status))
        core.engine.user_post(pub, public)
        return core.engine.describe(pub)


_ROUTES = [
    (r"health", {"GET": health}),
    (r"config", {"GET": get_config, "POST": set_config}),
    (r"reset", {"POST": reset}),
    (r"creators", {"GET": list_creators, "POST": put_creators}),
    (r"creators/([^/]+)/outside_posts", {"POST": outside_posts}),
    (r"creators/([^/]+)/usage", {"GET": usage}),
    (r"faults", {"GET": list_faults, "POST": add_faults, "DELETE": clear_faults}),
    (r"faults/([^/]+)", {"DELETE": delete_fault}),
    (r"ledger", {"GET": ledger}),
    (r"webhooks", {"GET": webhooks}),
    (r"webhooks/emit", {"POST": emit_webhook}),
    (r"clock", {"GET": clock, "POST": clock}),
    (r"revoke", {"POST": revoke}),
    (r"grant", {"POST": grant}),
    (r"tokens", {"GET": tokens}),
    (r"publishes", {"GET": list_publishes}),
    (r"publish/([^/]+)", {"GET": get_publish}),
    (r"publish/([^/]+)/advance", {"POST": advance_publish}),
    (r"publish/([^/]+)/fail", {"POST": fail_publish}),
    (r"publish/([^/]+)/user_post", {"POST": user_post}),
]
