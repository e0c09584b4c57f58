"""The fake's notion of "now": the real wall clock plus an offset that tests move.

Advancing the offset models time passing (processing delays, token and upload URL expiry, rate
limit windows); setting it models clock skew between TikTok and the client. Listeners (the publish
scheduler) are woken whenever the offset changes.
"""

import threading
import time


class FakeClock:
    def __init__(self):
        self._lock = threading.Lock()
        self._offset = 0.0
        self._listeners = []

    def now(self):
        return time.time() + self._offset

    @property
    def offset(self):
        return self._offset

    def advance(self, seconds):
        with self._lock:
            self._offset += float(seconds)
        self._notify()

    def set_offset(self, seconds):
        with self._lock:
            self._offset = float(seconds)
        self._notify()

    def on_change(self, callback):
        self._listeners.append(callback)

    def _notify(self):
        for callback in list(self._listeners):
            callback()
