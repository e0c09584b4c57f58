"""Per-token, per-endpoint sliding-window rate limits (§3.1, §6.5).

A sliding window is stricter than a fixed one: no burst of twice the limit at a window edge.
Only admitted requests are counted; a request answered 429 does not extend the wait.
Times are on the fake clock, so advancing the clock frees the window.
"""

from collections import deque


class RateLimiter:
    def __init__(self):
        self._hits = {}

    def admit(self, key, limit, window, now):
        """Record a hit and return None, or return the seconds until a slot frees up."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= limit:
            return max(0.0, hits[0] + window - now)
        hits.append(now)
        return None

    def clear(self):
        self._hits.clear()
