"""The media core's errors: one root, a stable `code` on each, and a message a person can act on.

The HTTP layer maps them to statuses (suggested: NotAVideo 415, UnreadableMedia 422, MediaTooLong 422,
TooLarge 413, StorageFull 507, MediaNotFound 404, ResultGone 410, UnsupportedMedia 422).
"""

from __future__ import annotations

from typing import Any


class MediaError(Exception):
    """Root of the media errors; `code` is a stable machine-readable name, `detail` the human message."""

    code = "media_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotAVideo(MediaError):
    """The file is not a video: not a media file FFmpeg recognises, audio only, or a still image."""

    code = "not_a_video"


class UnreadableMedia(MediaError):
    """The file looks like a video container but cannot be read whole: damaged, truncated, no decodable video."""

    code = "unreadable_media"


class MediaTooLong(MediaError):
    """The video lasts longer than the configured maximum; `extra` has `duration_seconds` and `max_seconds`."""

    code = "media_too_long"


class TooLarge(MediaError):
    """The body is larger than the byte limit; `extra['max_bytes']` says the limit."""

    code = "upload_too_large"


class StorageFull(MediaError):
    """The data directory cannot make room for this file even after evicting every result it may evict."""

    code = "storage_full"


class MediaNotFound(MediaError):
    """No upload or result has this id (never had, or it was deleted)."""

    code = "media_not_found"


class ResultGone(MediaNotFound):
    """The job's result existed but was evicted to make room; the job itself is still there."""

    code = "result_evicted"


class UnsupportedMedia(MediaError):
    """The video can be read but not copied into an MP4 or Matroska result without re-encoding it."""

    code = "unsupported_media"
