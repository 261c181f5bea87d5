"""Real video in and out, framework-free: probe uploads, keep them on disk, and produce translated results.

PyAV (FFmpeg's libraries, shipped in its wheels) does the media work: `probe` reads what a file holds,
`make_result` remuxes an upload into a result tagged with the target language (no re-encoding), and
`generate_video` makes a result for jobs that came without an upload. `MediaStore` keeps uploads and results
under a data directory within a byte budget. Nothing here imports Flask; the HTTP layer maps `MediaError`s
(each has a stable `code`) to responses.
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
from .files import MediaStore, Result, Upload
from .languages import Language, resolve_language
from .probe import AudioInfo, MediaInfo, StreamInfo, VideoInfo, probe
from .results import Cue, generate_video, make_result, subtitle_cues

__all__ = [
    "AudioInfo",
    "Cue",
    "Language",
    "MediaError",
    "MediaInfo",
    "MediaNotFound",
    "MediaStore",
    "MediaTooLong",
    "NotAVideo",
    "Result",
    "ResultGone",
    "StorageFull",
    "StreamInfo",
    "TooLarge",
    "UnreadableMedia",
    "UnsupportedMedia",
    "Upload",
    "VideoInfo",
    "generate_video",
    "make_result",
    "probe",
    "resolve_language",
    "subtitle_cues",
]
