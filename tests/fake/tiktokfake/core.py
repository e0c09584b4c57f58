"""The fake's whole state behind one lock: config, creators, grants and tokens, publishes.

Handlers in oauth.py, posting.py, upload.py and display.py work on a `Core`. Everything that reads
or changes state holds `core.lock` (an RLock); nothing holds it across network I/O. The publish
engine (lifecycle.py) and the webhook dispatcher (webhooks.py) run their own threads.
"""

import threading
from dataclasses import dataclass, field

from . import config as cfgmod
from .clock import FakeClock
from .faults import FaultBook
from .ledger import Ledger
from .lifecycle import Engine
from .ratelimit import RateLimiter
from .util import LogIds, Rand
from .webhooks import WebhookDispatcher


@dataclass
class AuthCode:
    code: str
    client_key: str
    open_id: str
    scopes: list
    redirect_uri: str
    code_challenge: str  # None when the authorize request had no PKCE
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    """One user's authorization of the app: the unit that refresh rotates and revoke kills."""

    grant_id: int
    open_id: str
    scopes: list
    refresh_expires_at: float
    refresh_token: str = None
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    grant_id: int
    open_id: str
    scopes: list
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    grant_id: int
    issued_at: float
    expires_at: float
    status: str = "active"  # active | rotated | revoked
    rotated_at: float = 0.0  # when a refresh replaced it (fake clock)


@dataclass
class Usage:
    """Per-creator counters for the caps of §3.2 (fake-clock timestamps)."""

    direct_posts: list = field(default_factory=list)
    inbox_shares: list = field(default_factory=list)  # (time, publish_id)


class Core:
    def __init__(self, config=None):
        self.lock = threading.RLock()
        self.clock = FakeClock()
        self.initial_config = cfgmod.merge(cfgmod.DEFAULTS, config or {})
        self.base_url = None  # set by the server once bound
        self.ledger = Ledger()
        self.faults = FaultBook(self)
        self.webhooks = WebhookDispatcher(self)
        self.engine = Engine(self)
        self.clock.on_change(self.engine.wake)
        self.reset(self.initial_config)

    # --- lifecycle of the state ---
    def reset(self, cfg):
        with self.lock:
            self.cfg = cfg
            self.rand = Rand(cfg["seed"])
            self.log_ids = LogIds(self.rand)
            self.creators = {}
            self.usage = {}
            self.codes = {}
            self.grants = {}
            self.access_tokens = {}
            self.refresh_tokens = {}
            self.next_grant_id = 1
            self.issued = {"access_tokens": [], "refresh_tokens": [], "codes": [], "upload_tokens": []}
            self.publishes = {}
            self.uploads = {}
            self.active_users = {}  # open_id -> fake time of its latest successful init
            self.fences = {}  # open_id -> the highest X-Tikd-Fence seen (a tikd cluster's lease)
            self.rate = RateLimiter()
            self.faults.clear()
            self.ledger.clear()
            self.webhooks.clear()
            self.clock.set_offset(0)
            for creator in cfg["creators"]:
                self.put_creator(creator)

    def set_config(self, update):
        with self.lock:
            self.cfg = cfgmod.merge(self.cfg, update)
            if "creators" in update:
                self.creators = {}
                for creator in self.cfg["creators"]:
                    self.put_creator(creator)
            self.engine.wake()
            return self.cfg

    def put_creator(self, creator):
        """Add or replace a creator. Its usage counters survive a replace."""
        with self.lock:
            norm = cfgmod.normalize_creator(creator)
            new = norm["open_id"] not in self.usage  # first time seen since the last reset
            self.creators[norm["open_id"]] = norm
            self.usage.setdefault(norm["open_id"], Usage())
            if new and norm["outside_posts"]:
                self.outside_posts(norm["open_id"], norm["outside_posts"])
            self.cfg = dict(self.cfg, creators=list(self.creators.values()))
            return norm

    def outside_posts(self, open_id, count):
        """Another app posts `count` times for this creator now: it eats the shared cap (§3.2)."""
        with self.lock:
            now = self.clock.now()
            self.usage.setdefault(open_id, Usage()).direct_posts.extend([now] * int(count))

    # --- accessors ---
    def setting(self, key):
        return cfgmod.resolve(self.cfg, key)

    def processing(self, key):
        return self.cfg["processing"][key]

    def now(self):
        return self.clock.now()

    def new_log_id(self):
        return self.log_ids.next(self.clock.now())

    def find_creator(self, ident):
        """A creator by open_id or username, or None."""
        with self.lock:
            if ident in self.creators:
                return self.creators[ident]
            for creator in self.creators.values():
                if creator["username"] == ident:
                    return creator
            return None

    def start(self):
        self.engine.start()
        self.webhooks.start()

    def stop(self):
        self.engine.stop()
        self.webhooks.stop()
