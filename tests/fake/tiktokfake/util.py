"""Small helpers shared by the fake's modules: random ids and tokens, log ids, JSON, text length.

Every random value comes from `Rand`, so a config `seed` makes a run reproducible. Tokens look
like TikTok's (act./rft. prefixes, `!` and `*` inside) so clients must form-encode and
URL-decode them properly.
"""

import json
import random
import string
import threading
import time

ALNUM = string.ascii_letters + string.digits


class Rand:
    """Thread-safe random source; seeded for reproducible runs, else from the OS."""

    def __init__(self, seed=None):
        self._lock = threading.Lock()
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._seen = set()

    def random(self):
        with self._lock:
            return self._rng.random()

    def chars(self, n, alphabet=ALNUM):
        with self._lock:
            return "".join(self._rng.choice(alphabet) for _ in range(n))

    def digits19(self):
        """A unique 19-digit number starting with 7: always above 2^53 and below 2^63 (§0.3)."""
        with self._lock:
            while True:
                value = 7 * 10**18 + self._rng.randrange(10**18)
                if value not in self._seen:
                    self._seen.add(value)
                    return value

    # Token shapes (§1.5): prefixes from TikTok's examples, bodies with `!`/`*` like real ones.
    def access_token(self):
        return "act." + self.chars(40) + "!" + self.chars(4, string.digits) + ".va"

    def refresh_token(self):
        return "rft." + self.chars(40) + "!" + self.chars(4, string.digits) + ".va"

    def auth_code(self):
        return self.chars(24) + "*" + self.chars(4, string.digits) + "!" + self.chars(8)

    def upload_token(self):
        return self.chars(32, ALNUM + "-_")


class LogIds:
    """Log ids in TikTok's shape: a UTC timestamp, then hex digits (§0.2)."""

    def __init__(self, rand):
        self._rand = rand
        self._lock = threading.Lock()
        self._seq = 0

    def next(self, now):
        with self._lock:
            self._seq += 1
            seq = self._seq
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        return "%s%06d%s" % (stamp, seq % 1000000, self._rand.chars(14, "0123456789ABCDEF"))


def utf16_len(text):
    """Length in UTF-16 code units, the unit TikTok counts titles in (§2.2, §4.2)."""
    return len(text.encode("utf-16-le")) // 2


def dumps(obj):
    """Compact JSON as TikTok sends it. Python ints stay exact, so 19-digit ids are bare numbers."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_constant(name):
    raise ValueError("JSON constant %s is not allowed" % name)


def loads_object(raw):
    """Parse a JSON request body that must be an object; ValueError otherwise."""
    value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError("the JSON body must be an object")
    return value


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
