"""What happened, for tests to assert on: every request and every completed post.

Request entries are created on arrival (so `seq` order is arrival order) and completed when the
response is sent. `t_mono` is time.monotonic() in the server process, which on Linux is the
system-wide CLOCK_MONOTONIC, comparable with time.monotonic() in the test process.
Control requests (/_fake/...) are not recorded.
"""

import copy
import threading
import time


class Ledger:
    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self._requests = []
            self._posts = []
            self._seq = 0

    def begin(self, method, path, open_id, fake_now):
        with self._lock:
            self._seq += 1
            entry = {
                "seq": self._seq,
                "method": method,
                "path": path,
                "open_id": open_id,
                "t_mono": time.monotonic(),
                "t_fake": fake_now,
                "status": None,
                "error_code": None,
                "fault": None,
                "publish_id": None,
                "range": None,
                "done": False,
            }
            self._requests.append(entry)
            return entry

    def finish(self, entry, status, error_code=None, fault=None, publish_id=None):
        with self._lock:
            entry["status"] = status
            entry["error_code"] = error_code
            entry["fault"] = fault
            if publish_id:
                entry["publish_id"] = publish_id
            entry["t_done_mono"] = time.monotonic()
            entry["done"] = True

    def note(self, entry, **fields):
        with self._lock:
            entry.update(fields)

    def add_post(self, record):
        with self._lock:
            record = dict(record, seq=len(self._posts) + 1)
            self._posts.append(record)

    def snapshot(self, since=0):
        with self._lock:
            return {
                "requests": [copy.deepcopy(e) for e in self._requests if e["seq"] > since],
                "posts": copy.deepcopy(self._posts),
                "next_seq": self._seq,
            }
