"""Read what a video file holds, with PyAV (FFmpeg's libraries): container, duration, video and audio streams.

`probe` also makes sure the file can be read whole: it decodes the first video frame and reads the packets of the
last seconds, so that a truncated upload (an MP4 whose index promises more than the file holds, a Matroska file
cut short) is refused here instead of failing later.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from av.container.input import InputContainer
from av.stream import Disposition, Stream

from .errors import NotAVideo, UnreadableMedia

#: A file whose streams end this much (plus two frames) before the duration its header gives is truncated.
TRUNCATION_TOLERANCE_SECONDS = 0.25
#: How far before the end the tail check starts reading (it goes back further, to the keyframe before).
_TAIL_SECONDS = 3.0
#: A decoder gives its first picture within a few packets (its delay); this many without one: not decodable.
_MAX_PACKETS_BEFORE_A_FRAME = 300
#: FFmpeg demuxers whose "video" is not one: still images, and ANSI art (which FFmpeg picks for any *.txt file).
_NOT_VIDEO_FORMATS = {"image2": "a still image", "gif": "an image (GIF)", "apng": "an image (APNG)",
                      "webp": "a still image", "ico": "an icon", "tiff": "a still image", "tty": "a text file"}
#: Container signatures (offset, bytes, name): a file FFmpeg cannot open but that starts like one of these is a
#: damaged video (UnreadableMedia); anything else is not a video at all (NotAVideo).
_SIGNATURES = (
    (4, b"ftyp", "an MP4/QuickTime"),
    (4, b"moov", "an MP4/QuickTime"),
    (4, b"mdat", "an MP4/QuickTime"),
    (4, b"free", "an MP4/QuickTime"),
    (4, b"wide", "an MP4/QuickTime"),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM"),
    (0, b"FLV", "an FLV"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "an ASF/WMV"),
    (0, b"\x00\x00\x01\xba", "an MPEG program stream"),
    (0, b"OggS", "an Ogg"),
)


@dataclass(frozen=True)
class VideoInfo:
    """The main video stream: codec name (FFmpeg's), picture size in pixels, frames per second."""

    codec: str
    width: int
    height: int
    fps: float | None


@dataclass(frozen=True)
class AudioInfo:
    """The main audio stream: codec name, channels, samples per second, ISO 639-2 language (None if untagged)."""

    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the file, as listed in `MediaInfo.streams`: kind, codec, language tag, title."""

    index: int
    type: str  # video, audio, subtitle, data, attachment
    codec: str
    language: str | None
    title: str | None


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found; `as_dict()` is the upload's JSON (without its id), the rest is for the server and tests."""

    filename: str
    size_bytes: int
    duration_seconds: float
    container: str  # mp4, mov, mkv, webm, avi, …
    video: VideoInfo
    audio: AudioInfo | None
    path: Path = field(compare=False)
    streams: tuple[StreamInfo, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)  # container metadata, e.g. title, job_id, language

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON object the API shows: filename, size, duration, container, video, audio (or None)."""
        return {
            "filename": self.filename,
            "size_bytes": self.size_bytes,
            "duration_seconds": self.duration_seconds,
            "container": self.container,
            "video": {"codec": self.video.codec, "width": self.video.width, "height": self.video.height,
                      "fps": self.video.fps},
            "audio": None if self.audio is None else {
                "codec": self.audio.codec, "channels": self.audio.channels, "sample_rate": self.audio.sample_rate,
                "language": self.audio.language,
            },
        }

    def to_json(self) -> dict[str, Any]:
        """Return every field but the path as JSON-ready data (for sidecar files)."""
        data = dataclasses.asdict(self)
        del data["path"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> MediaInfo:
        """Rebuild a MediaInfo saved with `to_json`, for the file at `path`."""
        return cls(
            filename=data["filename"], size_bytes=data["size_bytes"], duration_seconds=data["duration_seconds"],
            container=data["container"], video=VideoInfo(**data["video"]),
            audio=AudioInfo(**data["audio"]) if data["audio"] else None, path=path,
            streams=tuple(StreamInfo(**s) for s in data.get("streams", ())), tags=dict(data.get("tags", {})),
        )

    def streams_of(self, kind: str) -> list[StreamInfo]:
        """Return the streams of one kind (video, audio, subtitle…) in file order."""
        return [s for s in self.streams if s.type == kind]


def probe(path: str | os.PathLike[str], *, filename: str | None = None) -> MediaInfo:
    """Probe a video file; raise NotAVideo or UnreadableMedia (with a message for people) when it is not usable."""
    path = Path(path)
    name = filename if filename is not None else path.name
    size = path.stat().st_size
    if size == 0:
        raise NotAVideo(f"{name!r} is empty.")
    try:
        container = av.open(str(path))
    except av.FFmpegError as e:
        kind = _looks_like(path)
        if kind is None:
            raise NotAVideo(f"{name!r} is not a video file (FFmpeg does not recognise its format).") from e
        raise UnreadableMedia(f"{name!r} looks like {kind} file but cannot be opened; it is probably truncated or "
                              f"damaged ({_reason(e)}).") from e
    with container:
        return _inspect(container, path, name, size)


def _inspect(container: InputContainer, path: Path, name: str, size: int) -> MediaInfo:
    fmt = container.format.name
    video_stream = next((s for s in container.streams.video
                         if not s.disposition & Disposition.attached_pic), None)  # cover art is not the video
    short = fmt.split(",")[0]
    if short in _NOT_VIDEO_FORMATS or fmt.endswith("_pipe"):
        raise NotAVideo(f"{name!r} is {_NOT_VIDEO_FORMATS.get(short, 'a still image')} ({fmt}), not a video.")
    if video_stream is None:
        what = "an audio file" if container.streams.audio else "a media file"
        raise NotAVideo(f"{name!r} is {what} without a video stream.")
    duration = _duration(container)
    if duration is None or duration <= 0:
        raise UnreadableMedia(f"{name!r} does not say how long it is; send it in a container such as MP4 or MKV.")
    audio_stream = container.streams.audio[0] if container.streams.audio else None
    fps = video_stream.average_rate or video_stream.guessed_rate or video_stream.base_rate
    ctx = video_stream.codec_context
    if ctx is None or not ctx.width or not ctx.height:
        raise UnreadableMedia(f"{name!r} has a video stream FFmpeg cannot decode.")
    _check_decodes(container, video_stream, name)
    _check_complete(container, duration, float(fps) if fps else None, name)
    audio = None
    if audio_stream is not None:
        actx = audio_stream.codec_context
        audio = AudioInfo(codec=_codec_name(audio_stream), channels=actx.channels, sample_rate=actx.sample_rate,
                          language=_language(audio_stream))
    return MediaInfo(
        filename=name,
        size_bytes=size,
        duration_seconds=round(duration, 3),
        container=_container_name(container, path),
        video=VideoInfo(codec=_codec_name(video_stream), width=ctx.width, height=ctx.height,
                        fps=round(float(fps), 3) if fps else None),
        audio=audio,
        path=path,
        streams=tuple(_stream_info(s) for s in container.streams),
        tags=dict(container.metadata),
    )


def _duration(container: InputContainer) -> float | None:
    if container.duration is not None:
        return container.duration / av.time_base
    ends = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return max(ends, default=None)


def _check_decodes(container: InputContainer, stream: Stream, name: str) -> None:
    """Decode the first video frame: a container can be well formed around data that is not video at all."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            if packet.decode():
                return
            if count >= _MAX_PACKETS_BEFORE_A_FRAME:
                break  # do not read a whole large file of undecodable data
    except av.FFmpegError as e:
        raise UnreadableMedia(f"{name!r}: its video cannot be decoded ({_reason(e)}).") from e
    raise UnreadableMedia(f"{name!r}: its video stream holds no picture that can be decoded.")


def _check_complete(container: InputContainer, duration: float, fps: float | None, name: str) -> None:
    """Read the packets of the last seconds; refuse a file whose streams stop well before its stated duration."""
    start = container.start_time / av.time_base if container.start_time is not None else 0.0
    streams = [*container.streams.video, *container.streams.audio]
    end = None
    try:
        container.seek(int((start + max(0.0, duration - _TAIL_SECONDS)) * av.time_base), backward=True)
        for packet in container.demux(streams):
            if packet.pts is None or packet.time_base is None:
                continue
            packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - start
            end = packet_end if end is None else max(end, packet_end)
    except av.FFmpegError:
        pass  # damaged data at the tail: judge by what could be read before it
    tolerance = TRUNCATION_TOLERANCE_SECONDS + (2 / fps if fps else 0.0)
    if end is None or end < duration - tolerance:
        got = "nothing can be read near its end" if end is None else f"its streams stop at {max(end, 0.0):.1f} s"
        raise UnreadableMedia(f"{name!r} is truncated: its header says {duration:.1f} s but {got}. "
                              f"Upload the whole file again.", duration_seconds=round(duration, 3))


def _container_name(container: InputContainer, path: Path) -> str:
    fmt = container.format.name
    if fmt.startswith("mov,mp4"):
        brand = container.metadata.get("major_brand", "").strip()
        return "mov" if brand == "qt" else "3gp" if brand.startswith("3g") else "mp4"
    if fmt.startswith("matroska"):
        with open(path, "rb") as f:
            head = f.read(64)  # the EBML header's DocType says which, a few bytes in
        return "webm" if b"webm" in head else "mkv"
    return fmt.split(",")[0]


def _language(stream: Stream) -> str | None:
    language = stream.metadata.get("language")
    return None if not language or language == "und" else language


def _stream_info(stream: Stream) -> StreamInfo:
    # MP4 keeps a track's title in its `name` box, which FFmpeg reads back under that key.
    title = stream.metadata.get("title") or stream.metadata.get("name") or None
    return StreamInfo(index=stream.index, type=stream.type, codec=_codec_name(stream), language=_language(stream),
                      title=title)


def _codec_name(stream: Stream) -> str:
    """Return the codec's name (mp3), not the decoder's (mp3float)."""
    ctx = stream.codec_context
    return ctx.codec.canonical_name if ctx is not None else "none"


def _looks_like(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(16)
    for offset, magic, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI"
    if head[:1] == b"\x47":
        with open(path, "rb") as f:
            f.seek(188)
            if f.read(1) == b"\x47":
                return "an MPEG transport stream"
    return None


def _reason(error: av.FFmpegError) -> str:
    return getattr(error, "strerror", None) or str(error)
