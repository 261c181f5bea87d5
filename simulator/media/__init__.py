"""Real video in and out, framework-free: probe uploads, keep them on disk, and produce translated results.

PyAV (FFmpeg's libraries, shipped in its wheels) does the media work. Nothing here imports Flask; the HTTP
layer maps `MediaError`s (each has a stable `code`) to responses.
"""

from .errors import (
    MediaError,
    MediaNotFound,
    MediaTooLong,
    NotAVideo,
    ResultGone,
    StorageFull,
    TooLarge,
    UnreadableMedia,
    UnsupportedMedia,
)
from .probe import AudioInfo, MediaInfo, StreamInfo, VideoInfo, probe

__all__ = [
    "AudioInfo",
    "MediaError",
    "MediaInfo",
    "MediaNotFound",
    "MediaTooLong",
    "NotAVideo",
    "ResultGone",
    "StorageFull",
    "StreamInfo",
    "TooLarge",
    "UnreadableMedia",
    "UnsupportedMedia",
    "VideoInfo",
    "probe",
]
