"""Fault rules set by tests through POST /_fake/faults.

A rule matches by path prefix (and optionally method and open_id), lets `skip` matching requests
through, then fires on up to `count` of them (null = forever), each with `probability`. The first
rule that fires on a request wins. The server applies the effect (see server.py `_apply_fault`).
"""

import threading

KINDS = {
    # kind: {parameter: default}
    # phase "after": the request is handled first (the work is done), then the status is the answer
    "status": {"status": 500, "error_code": None, "message": None, "body": None, "retry_after": None,
               "phase": "before"},
    "rate_limit": {"retry_after": 1, "retry_after_format": "seconds"},
    "reset": {"after_bytes": 0, "phase": "request"},
    "delay": {},
    "stall": {"stall_sec": 5.0, "partial_bytes": 10, "then": "close"},
    "malformed_json": {"mode": "truncate"},
    "revoke_token": {"reason": 1},
    "fail_publish": {"reason": "internal", "stage": "processing"},
    "slow_answer": {"answer_delay_sec": 1.0},  # the request is handled, the answer waits
}
COMMON = {"kind": None, "path_prefix": "/", "method": None, "open_id": None, "count": 1,
          "probability": 1.0, "skip": 0, "delay_sec": 0.0}


class FaultError(ValueError):
    pass


class FaultBook:
    def __init__(self, core):
        self.core = core
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self._rules = []
            self._next_id = 1

    def add(self, spec):
        rule = self._validate(spec)
        with self._lock:
            rule["id"] = self._next_id
            self._next_id += 1
            rule["seen"] = 0
            rule["fired"] = 0
            self._rules.append(rule)
            return dict(rule)

    def remove(self, rule_id):
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r["id"] != rule_id]
            return len(self._rules) != before

    def list(self):
        with self._lock:
            return [dict(r) for r in self._rules]

    def take(self, method, path, open_id):
        """The rule that fires on this request (a copy), or None."""
        with self._lock:
            for rule in self._rules:
                if not path.startswith(rule["path_prefix"]):
                    continue
                if rule["method"] and rule["method"].upper() != method:
                    continue
                if rule["open_id"] and rule["open_id"] != open_id:
                    continue
                rule["seen"] += 1
                if rule["seen"] <= rule["skip"]:
                    continue
                if rule["count"] is not None and rule["fired"] >= rule["count"]:
                    continue
                if rule["probability"] < 1.0 and self.core.rand.random() >= rule["probability"]:
                    continue
                rule["fired"] += 1
                return dict(rule)
            return None

    @staticmethod
    def _validate(spec):
        if not isinstance(spec, dict):
            raise FaultError("a fault rule must be a JSON object")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultError("kind must be one of %s" % ", ".join(sorted(KINDS)))
        allowed = dict(COMMON, **KINDS[kind])
        for key in spec:
            if key not in allowed:
                raise FaultError("unknown key %r for a %s rule" % (key, kind))
        rule = dict(allowed, **spec)
        if kind == "delay" and not rule["delay_sec"]:
            raise FaultError("a delay rule needs delay_sec")
        if not isinstance(rule["path_prefix"], str) or not rule["path_prefix"].startswith("/"):
            raise FaultError("path_prefix must start with /")
        if rule["count"] is not None and (not isinstance(rule["count"], int) or rule["count"] < 0):
            raise FaultError("count must be a non-negative integer or null")
        if not 0.0 <= float(rule["probability"]) <= 1.0:
            raise FaultError("probability must be within 0..1")
        if kind == "rate_limit" and rule["retry_after_format"] not in ("seconds", "http-date"):
            raise FaultError("retry_after_format must be seconds or http-date")
        if kind == "reset" and rule["phase"] not in ("request", "response"):
            raise FaultError("phase must be request or response")
        if kind == "stall" and rule["then"] not in ("close", "finish"):
            raise FaultError("then must be close or finish")
        if kind == "malformed_json" and rule["mode"] not in ("truncate", "garbage"):
            raise FaultError("mode must be truncate or garbage")
        if kind == "fail_publish" and rule["stage"] not in ("download", "processing"):
            raise FaultError("stage must be download or processing")
        if kind == "slow_answer" and not (isinstance(rule["answer_delay_sec"], (int, float))
                                          and 0 <= rule["answer_delay_sec"] <= 600):
            raise FaultError("answer_delay_sec must be a number of seconds from 0 to 600")
        if kind == "status" and not (isinstance(rule["status"], int) and 100 <= rule["status"] <= 599):
            raise FaultError("status must be an HTTP status code")
        return rule
