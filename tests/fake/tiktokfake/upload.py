"""The upload host: PUT {upload_url} with one chunk per request (§2.4, §2.5 "At PUT").

Checks, in order: 404 unknown upload or token; 403 expired URL (1 h on the fake clock) or a
publish that already failed; 400 bad headers (Content-Type, Content-Length, Content-Range
syntax, total != video_size, range length != Content-Length); 416 a range other than the next
chunk of the plan (gap, overlap, out of order, wrong length, or a chunk already in flight).
Then the body is streamed into a running sha256: 206 with more to come, 201 for the last chunk.
Error bodies use the envelope; their codes are the fake's own (TikTok documents only statuses).
"""

import re

from .wire import ApiError, Response, media_type

VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
RANGE_RE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+)")


class ClientGone(Exception):
    """The client stopped sending before the declared Content-Length arrived."""


def find_upload(core, req):
    with core.lock:
        upload = core.uploads.get(req.param("upload_id") or "")
        if upload is None or upload.upload_token != req.param("upload_token"):
            return None
        return upload


def put(core, req, conn):
    """Handle one chunk. `conn` streams the body: conn.read_stream(n, sink)."""
    with core.lock:
        upload = find_upload(core, req)
        if upload is None:
            raise ApiError(404, "upload_not_found", "No upload task exists for this URL.")
        if core.now() >= upload.expires_at:
            raise ApiError(403, "upload_url_expired", "The upload URL has expired.")
        if core.publishes[upload.publish_id].phase == "failed":
            raise ApiError(403, "upload_closed", "The publish for this upload has failed.")
        if media_type(req.header("Content-Type")) not in VIDEO_TYPES:
            raise ApiError(400, "invalid_params", "Content-Type must be video/mp4, video/quicktime or video/webm.")
        try:
            length = req.content_length()
        except ValueError:
            length = None
        if length is None:
            raise ApiError(400, "invalid_params", "Content-Length is required.")
        match = RANGE_RE.fullmatch((req.header("Content-Range") or "").strip())
        if not match:
            raise ApiError(400, "invalid_params", "Content-Range must be 'bytes FIRST-LAST/TOTAL'.")
        first, last, total = (int(g) for g in match.groups())
        if total != upload.video_size:
            raise ApiError(400, "invalid_params", "Content-Range total does not match video_size.")
        if last < first or last - first + 1 != length:
            raise ApiError(400, "invalid_params", "Content-Range does not match Content-Length.")
        expected = upload.expected_range()
        if expected is None or (first, last) != expected or upload.in_flight:
            want = "none (the upload is complete)" if expected is None else "bytes %d-%d" % expected
            raise ApiError(416, "range_mismatch",
                           "Content-Range does not match the upload progress; expected %s." % want)
        upload.in_flight = True
        hasher = upload.hasher.copy()

    try:
        conn.read_stream(length, hasher.update)
    except ClientGone:
        with core.lock:
            upload.in_flight = False
        raise

    with core.lock:
        upload.in_flight = False
        upload.hasher = hasher
        upload.received = last + 1
        upload.chunks_done += 1
        done = upload.chunks_done == upload.total_chunk_count
        end = upload.received if core.cfg["upload_progress_range"] == "count" else upload.received - 1
        progress = "bytes 0-%d/%d" % (end, upload.video_size)
    if done:
        core.engine.upload_finished(core.publishes[upload.publish_id])
    # The 201/206 body is undocumented (§2.4); it is empty here so clients cannot depend on it.
    return Response(201 if done else 206, b"", content_type=None, headers=[("Content-Range", progress)])
