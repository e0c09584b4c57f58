"""Publishes and their state machine (§2.7, §2.11), driven by the fake clock.

    FILE_UPLOAD:   PROCESSING_UPLOAD --final PUT--> [processing] --> end
    PULL_FROM_URL: PROCESSING_DOWNLOAD --[download]--> [processing] --> end
    end, direct:   PUBLISH_COMPLETE; a PUBLIC_TO_EVERYONE post gets its post id after moderation
    end, inbox:    SEND_TO_USER_INBOX --simulated user posts--> PUBLISH_COMPLETE (repeatable)
    any processing state --injected failure / cancel / revoke / expiry--> FAILED + fail_reason

Each transition's due time is computed from the previous one's, so advancing the clock by a lot
walks every step in order. A background thread ticks when something is due; every API request
also ticks first, so a status fetch never sees a stale state. Webhooks are queued on transitions.
"""

import hashlib
import threading
import time
from dataclasses import dataclass, field

PHASE_STATUS = {
    "download": "PROCESSING_DOWNLOAD",
    "inbox": "SEND_TO_USER_INBOX",
    "complete": "PUBLISH_COMPLETE",
    "failed": "FAILED",
}


@dataclass
class Upload:
    """The upload session behind one upload_url (§2.4, §2.5)."""

    upload_id: str
    upload_token: str
    publish_id: str
    open_id: str
    video_size: int
    chunk_size: int
    total_chunk_count: int
    expires_at: float
    received: int = 0
    chunks_done: int = 0
    in_flight: bool = False
    hasher: object = field(default_factory=hashlib.sha256)

    def expected_range(self):
        """(first, last) inclusive byte range of the next chunk, or None when complete."""
        if self.chunks_done >= self.total_chunk_count:
            return None
        first = self.chunks_done * self.chunk_size
        if self.chunks_done == self.total_chunk_count - 1:
            return first, self.video_size - 1
        return first, first + self.chunk_size - 1


@dataclass
class Publish:
    publish_id: str
    open_id: str
    media_type: str  # VIDEO | PHOTO
    publish_type: str  # DIRECT_PUBLISH | INBOX_SHARE (webhook values, §5.2)
    source: str  # FILE_UPLOAD | PULL_FROM_URL
    post_info: dict
    privacy_level: str  # None for drafts
    urls: list
    created_at: float
    created_mono: float
    phase: str = "upload"  # upload | download | processing | inbox | complete | failed
    phase_started: float = 0.0
    phase_ends: float = None
    fail_reason: str = None
    planned_failure: tuple = None  # (reason, stage)
    upload: Upload = None
    download_total: int = 0
    post_ids: list = field(default_factory=list)
    download_stopped_at: int = None  # downloaded_bytes frozen when a download fails
    post_times: dict = field(default_factory=dict)  # post_id -> fake time it became public
    pending_posts: list = field(default_factory=list)  # (due, post_id) waiting for moderation
    pending_user_posts: list = field(default_factory=list)  # (due, public)
    fail_on_expiry: bool = False  # config upload_expired_fails, fixed at init
    recorded: bool = False

    @property
    def status(self):
        if self.phase in ("upload", "processing"):
            return "PROCESSING_UPLOAD" if self.source == "FILE_UPLOAD" else "PROCESSING_DOWNLOAD"
        return PHASE_STATUS[self.phase]

    @property
    def direct(self):
        return self.publish_type == "DIRECT_PUBLISH"

    @property
    def in_flight(self):
        return self.phase in ("upload", "download", "processing")

    def downloaded_bytes(self, now):
        if self.download_stopped_at is not None:
            return self.download_stopped_at
        if self.phase == "download":
            span = self.phase_ends - self.phase_started
            fraction = 1.0 if span <= 0 else min(1.0, max(0.0, (now - self.phase_started) / span))
            return int(self.download_total * fraction)
        return self.download_total

    def next_due(self):
        """The fake time of this publish's next timed transition, or None."""
        times = []
        if self.phase in ("download", "processing"):
            times.append(self.phase_ends)
        times += [due for due, _ in self.pending_posts]
        times += [due for due, _ in self.pending_user_posts]
        if self.phase == "upload" and self.fail_on_expiry:
            times.append(self.upload.expires_at)
        return min(times) if times else None


class Engine:
    def __init__(self, core):
        self.core = core
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    # --- background ticking ---
    def start(self):
        self._thread = threading.Thread(target=self._run, name="fake-publish-engine", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def wake(self):
        self._wake.set()

    def _run(self):
        while not self._stop.is_set():
            self.tick()
            with self.core.lock:
                dues = [p.next_due() for p in self.core.publishes.values()]
            dues = [d for d in dues if d is not None]
            timeout = 1.0
            if dues:
                timeout = min(timeout, max(0.0, min(dues) - self.core.now()) + 0.001)
            self._wake.wait(timeout)
            self._wake.clear()

    def tick(self):
        """Apply every transition that is due on the fake clock."""
        core = self.core
        with core.lock:
            now = core.now()
            for pub in list(core.publishes.values()):
                while self._step(pub, now, force=False):
                    pass

    # --- transitions ---
    def _delay(self, key):
        return float(self.core.processing(key)) * float(self.core.cfg["time_scale"])

    def _step(self, pub, now, force):
        """Apply pub's earliest transition if it is due (or if forced). True if one happened."""
        due = pub.next_due()
        if due is None or (not force and due > now):
            return False
        at = now if force else due
        if pub.phase == "upload":
            # Only reached with fail_on_expiry; otherwise an expired upload simply stays
            # PROCESSING_UPLOAD forever (§2.8 leaves it UNKNOWN). Only the final PUT moves it on.
            if force:
                return False
            self.fail(pub, self.core.cfg["upload_expired_fail_reason"])
            return True
        if pub.phase in ("download", "processing") and pub.phase_ends == due:
            stage = pub.phase
            if pub.planned_failure and pub.planned_failure[1] == stage:
                self.fail(pub, pub.planned_failure[0])
            elif stage == "download":
                self._enter(pub, "processing", at, self._delay("processing_sec"))
            else:
                self._finish_processing(pub, at)
            return True
        for item in sorted(pub.pending_posts):
            if item[0] == due:
                pub.pending_posts.remove(item)
                pub.post_ids.append(item[1])
                pub.post_times[item[1]] = at
                self._webhook(pub, "post.publish.publicly_available", post_id=str(item[1]))
                return True
        for item in sorted(pub.pending_user_posts):
            if item[0] == due:
                pub.pending_user_posts.remove(item)
                self._user_post(pub, at, item[1])
                return True
        return False

    def _enter(self, pub, phase, at, duration):
        pub.phase = phase
        pub.phase_started = at
        pub.phase_ends = at + duration

    def upload_finished(self, pub):
        """The final chunk arrived (201): the bytes go to processing."""
        with self.core.lock:
            self._enter(pub, "processing", self.core.now(), self._delay("processing_sec"))
        self.wake()

    def _finish_processing(self, pub, at):
        if pub.direct:
            pub.phase = "complete"
            self._record(pub)
            self._webhook(pub, "post.publish.complete")
            if pub.privacy_level == "PUBLIC_TO_EVERYONE":
                self._schedule_post_id(pub, at)
        else:
            pub.phase = "inbox"
            self._record(pub)
            self._webhook(pub, "post.publish.inbox_delivered")
            auto = self.core.processing("inbox_auto_post_sec")
            if auto is not None:
                pub.pending_user_posts.append((at + float(auto) * self.core.cfg["time_scale"], True))

    def _schedule_post_id(self, pub, at):
        pub.pending_posts.append((at + self._delay("moderation_sec"), self.core.rand.digits19()))

    def _user_post(self, pub, at, public):
        pub.phase = "complete"
        self._webhook(pub, "post.publish.complete")
        if public:
            self._schedule_post_id(pub, at)

    def fail(self, pub, reason):
        if pub.phase == "download":
            pub.download_stopped_at = pub.downloaded_bytes(self.core.now())
        pub.phase = "failed"
        pub.fail_reason = reason
        pub.pending_posts.clear()
        pub.pending_user_posts.clear()
        self._webhook(pub, "post.publish.failed", reason=reason)

    def _webhook(self, pub, event, **extra):
        content = {"publish_id": pub.publish_id, "publish_type": pub.publish_type}
        content.update(extra)
        self.core.webhooks.emit(event, pub.open_id, content)

    def _record(self, pub):
        if pub.recorded:
            return
        pub.recorded = True
        if pub.source == "FILE_UPLOAD":
            digest, size = pub.upload.hasher.hexdigest(), pub.upload.received
        else:
            digest, size = hashlib.sha256("\n".join(pub.urls).encode("utf-8")).hexdigest(), None
        self.core.ledger.add_post(
            {
                "publish_id": pub.publish_id,
                "open_id": pub.open_id,
                "media_type": pub.media_type,
                "publish_type": pub.publish_type,
                "source": pub.source,
                "status": pub.status,
                "privacy_level": pub.privacy_level,
                "title": pub.post_info.get("title") if isinstance(pub.post_info, dict) else None,
                "description": pub.post_info.get("description") if isinstance(pub.post_info, dict) else None,
                "post_info": pub.post_info,
                "urls": list(pub.urls),
                "sha256": digest,
                "size": size,
                "created_mono": pub.created_mono,
                "completed_mono": time.monotonic(),
                "completed_fake_time": self.core.now(),
            }
        )

    # --- operations used by the API and the control endpoint ---
    def start_download(self, pub, total):
        pub.download_total = total
        self._enter(pub, "download", pub.created_at, self._delay("download_sec"))
        self.wake()

    def advance(self, pub):
        """Force pub's next timed transition now. False when nothing is pending."""
        with self.core.lock:
            self.tick()
            return self._step(pub, self.core.now(), force=True)

    def user_post(self, pub, public):
        """The creator finishes the draft in the app (inbox flows only)."""
        with self.core.lock:
            self._user_post(pub, self.core.now(), public)

    def cancel(self, pub):
        """Best-effort cancel (§2.8); True when it took effect."""
        with self.core.lock:
            now = self.core.now()
            if pub.source != "PULL_FROM_URL" or pub.phase != "download":
                return False
            span = pub.phase_ends - pub.phase_started
            done = 1.0 if span <= 0 else (now - pub.phase_started) / span
            if done >= float(self.core.cfg["cancel_cutoff_fraction"]):
                return False
            self.fail(pub, "publish_cancelled")
            return True

    def fail_inflight(self, open_id, reason):
        with self.core.lock:
            for pub in self.core.publishes.values():
                if pub.open_id == open_id and pub.in_flight:
                    self.fail(pub, reason)

    def describe(self, pub):
        """The control endpoint's view of a publish."""
        now = self.core.now()
        return {
            "publish_id": pub.publish_id,
            "open_id": pub.open_id,
            "media_type": pub.media_type,
            "publish_type": pub.publish_type,
            "source": pub.source,
            "status": pub.status,
            "phase": pub.phase,
            "fail_reason": pub.fail_reason,
            "privacy_level": pub.privacy_level,
            "post_info": pub.post_info,
            "urls": pub.urls,
            "post_ids": [str(p) for p in pub.post_ids],
            "pending_post_ids": len(pub.pending_posts),
            "uploaded_bytes": pub.upload.received if pub.upload else None,
            "downloaded_bytes": pub.downloaded_bytes(now) if pub.source == "PULL_FROM_URL" else None,
            "next_due_in_sec": None if pub.next_due() is None else pub.next_due() - now,
            "planned_failure": list(pub.planned_failure) if pub.planned_failure else None,
        }
