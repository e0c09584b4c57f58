"""A strict fake of TikTok's Login Kit v2, Content Posting API, Display API and webhooks.

The spec it follows is shared/spec/tiktok-api.md (section numbers in comments refer to it).
One HTTP server plays every TikTok host on loopback; tests steer it through /_fake/.
Entry points: `tiktokfake.server.FakeTikTok` in process, or tests/fake/tiktok_fake.py as a CLI.
"""

from .server import FakeTikTok

__all__ = ["FakeTikTok"]
