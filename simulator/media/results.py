"""A job's result: the input remuxed (never re-encoded) and tagged with the target language, or a generated video.

Both carry what a translated video would: the audio stream tagged with the target language (a real backend would
have dubbed it; the simulator copies the original sound), a subtitle track in that language whose cues mark the
segments a translation would fill, and container metadata naming the job and the language.

**MP4 first, Matroska when MP4 cannot hold the streams.** An MP4 (H.264/AAC, the usual upload) plays in browsers
and every player, and FFmpeg's MP4 muxer writes `mov_text` subtitles, stream language tags and, with
`use_metadata_tags`, arbitrary container tags reliably; `faststart` puts the index first so a download can start
playing at once. Streams that MP4 cannot carry without re-encoding (VP8, Theora, Vorbis, …) go to Matroska, which
takes nearly any codec, with SubRip subtitles. Both are written through PyAV's public API only.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache, partial
from pathlib import Path

import av
from av.container.input import InputContainer
from av.container.output import OutputContainer
from av.packet import Packet
from av.stream import Disposition, Stream
from av.subtitles.subtitle import SubtitleSet

from . import synth
from .errors import UnsupportedMedia
from .languages import Language, resolve_language
from .probe import MediaInfo, probe

#: Result containers: suffix → (FFmpeg muxer, subtitle codec, which ISO 639-2 form its language tags use).
CONTAINERS = {
    "mp4": ("mp4", "mov_text", "T"),  # ISO/IEC 14496-12: ISO 639-2/T
    "mkv": ("matroska", "subrip", "B"),  # the Matroska specification: ISO 639-2 bibliographic
}
#: Codecs FFmpeg lists for MP4 but only writes there in "experimental" mode.
_MP4_EXPERIMENTAL = {"vorbis"}
_MS = Fraction(1, 1000)
#: The ASS header FFmpeg's text subtitle encoders start from (one default style; players apply their own).
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
    b"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
    b"MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: start and end in seconds from the start of the video, and its text (lines split by \\n)."""

    start: float
    end: float
    text: str


def subtitle_cues(duration: float, language: Language, *, job_id: str, segment_seconds: float = 10.0) -> list[Cue]:
    """Return the cues of a result: one per segment of `segment_seconds`, saying where its translation would go."""
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be positive")
    count = max(1, -(-int(duration * 1000) // int(segment_seconds * 1000)))  # ceil, in whole milliseconds
    cues = []
    for index in range(count):
        start = index * segment_seconds
        end = min(duration, start + segment_seconds)
        text = (f"[{language.tag}] segment {index + 1}/{count} — {_clock(start)}–{_clock(end)}\n"
                f"({language.name} translation of this segment · job {job_id})")
        cues.append(Cue(round(start, 3), round(end, 3), text))
    return cues


def make_result(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    job_id: str,
    language: str | None,
    container: str | None = None,
    segment_seconds: float = 10.0,
    title: str | None = None,
) -> MediaInfo:
    """Remux `source` into a translated result at `dest` (suffix set to .mp4 or .mkv); return the result's probe.

    The video and audio packets are copied as they are (no decoding, no encoding); attached pictures, data
    streams and the source's own subtitles are left out. `container` forces "mp4" or "mkv"; by default MP4 is
    used when it can hold every stream, else Matroska. Raises UnreadableMedia when the source cannot be read and
    UnsupportedMedia when neither container takes its streams.
    """
    if container is not None and container not in CONTAINERS:
        raise ValueError(f"container must be one of {', '.join(CONTAINERS)}, not {container!r}")
    lang = resolve_language(language)
    source_info = probe(source)
    choices = [container] if container else [_container_for(source_info), "mkv"]
    last_error: Exception | None = None
    for choice in dict.fromkeys(choices):  # MP4 then Matroska, each once
        final = Path(dest).with_suffix("." + choice)
        try:
            _atomic_write(final, choice, partial(_remux, source_info, suffix=choice, lang=lang, job_id=job_id,
                                                 segment_seconds=segment_seconds, title=title))
        except av.FFmpegError as e:
            last_error = e
            continue
        return probe(final)
    raise UnsupportedMedia(f"{source_info.filename!r} cannot be copied into "
                           f"{' or '.join(c.upper() for c in dict.fromkeys(choices))} without re-encoding it "
                           f"({last_error}).") from last_error


def generate_video(
    dest: str | os.PathLike[str],
    *,
    seconds: float,
    language: str | None,
    job_id: str,
    width: int = 320,
    height: int = 180,
    fps: int = 10,
    segment_seconds: float = 10.0,
    title: str | None = None,
) -> MediaInfo:
    """Write a generated result (colour bars and a tone, MP4) of `seconds` to `dest` (suffix set to .mp4).

    For jobs submitted from a plain video_url: the same language tags, subtitle track and metadata as
    `make_result`. One second is encoded and repeated (1 s GOPs), so a long video costs little more than a short one.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    lang = resolve_language(language)
    spec = synth.SynthSpec(width=width, height=height, fps=fps)
    final = Path(dest).with_suffix(".mp4")

    def write(out: OutputContainer) -> None:
        loops = synth.add_streams(out, spec, audio_language=_code(lang, "mp4"))
        _name_track(loops[1].stream, lang, "mp4", lang.name)
        subtitles = _add_translation(out, "mp4", lang, job_id, title or "Generated video")
        cues = subtitle_cues(seconds, lang, job_id=job_id, segment_seconds=segment_seconds)
        synth.mux_in_order(out, synth.loop_packets(loops, seconds), _cue_packets(subtitles, cues, 0.0))

    _atomic_write(final, "mp4", write)
    return probe(final)


# ------------------------------------------------------------------------------------------------ remux


def _remux(source: MediaInfo, out: OutputContainer, *, suffix: str, lang: Language, job_id: str,
           segment_seconds: float, title: str | None) -> None:
    with av.open(str(source.path)) as inp:
        mapping: dict[int, Stream] = {}
        first_audio = True
        for stream in inp.streams:
            if stream.type == "video" and not stream.disposition & Disposition.attached_pic:
                mapping[stream.index] = out.add_stream_from_template(stream)
            elif stream.type == "audio":
                copy = out.add_stream_from_template(stream)
                if first_audio:  # the track a dub replaces: a real backend would put the translated speech here
                    _name_track(copy, lang, suffix, lang.name)
                    first_audio = False
                mapping[stream.index] = copy
        if suffix == "mp4" and source.container not in ("mp4", "mov", "3gp"):
            for copy in mapping.values():
                copy.codec_context.codec_tag = "\0\0\0\0"  # let MP4 choose its tag: AVI's XVID is not one of MP4's
        subtitles = _add_translation(out, suffix, lang, job_id, title or Path(source.filename).stem)
        origin = (inp.start_time or 0) / av.time_base
        cues = subtitle_cues(source.duration_seconds, lang, job_id=job_id, segment_seconds=segment_seconds)
        synth.mux_in_order(out, _copied(inp, mapping), _cue_packets(subtitles, cues, origin))


def _copied(inp: InputContainer, mapping: dict[int, Stream]) -> Iterator[tuple[float, Packet]]:
    """Yield the packets to copy, with their time; the demuxer's order is kept (the time only places the cues)."""
    last = -math.inf
    seconds_per_tick = {i: float(inp.streams[i].time_base) for i in mapping}  # floats: 43 000 packets in 10 min
    for packet in inp.demux([inp.streams[i] for i in mapping]):
        if packet.dts is None:
            continue  # the empty packet that ends each stream
        index = packet.stream.index
        last = max(last, packet.dts * seconds_per_tick[index])  # monotonic, for the merge with the cues
        packet.stream = mapping[index]
        yield last, packet


# ------------------------------------------------------------------------------------------------ subtitles


def _add_translation(out: OutputContainer, suffix: str, lang: Language, job_id: str, title: str) -> Stream:
    """Add the subtitle stream and the container metadata that name the job and the language."""
    codec = CONTAINERS[suffix][1]
    subtitles = out.add_stream(codec)
    subtitles.codec_context.subtitle_header = _ASS_HEADER
    subtitles.codec_context.time_base = _MS
    _name_track(subtitles, lang, suffix, f"{lang.name} (simulated translation)")
    subtitles.disposition = Disposition.default
    out.metadata["title"] = f"{title} — {lang.name} translation"
    out.metadata["comment"] = f"Simulated translation into {lang.name} ({lang.iso639_2}) by job {job_id}"
    out.metadata["job_id"] = job_id
    out.metadata["language"] = lang.iso639_2
    out.metadata["language_tag"] = lang.tag
    return subtitles


def _cue_packets(stream: Stream, cues: list[Cue], origin: float) -> Iterator[tuple[float, Packet]]:
    for cue in cues:
        start = origin + cue.start
        length_ms = max(1, round((cue.end - cue.start) * 1000))
        dialogue = "0,0,Default,,0,0,0,," + cue.text.replace("\n", "\\N")
        packet = stream.codec_context.encode_subtitle(
            SubtitleSet.create(dialogue.encode(), 0, length_ms, pts=round(start * av.time_base)))
        packet.pts = packet.dts = round(start * 1000)
        packet.duration, packet.time_base, packet.stream = length_ms, _MS, stream
        yield start, packet


# ------------------------------------------------------------------------------------------------ helpers


def _atomic_write(final: Path, suffix: str, fill: Callable[[OutputContainer], None]) -> None:
    """Write through `fill(out)` into a temporary file beside `final`, then rename it: no half-written results."""
    muxer = CONTAINERS[suffix][0]
    options = {"movflags": "+faststart+use_metadata_tags"} if suffix == "mp4" else {}
    temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
    try:
        with av.open(str(temp), "w", format=muxer, options=options) as out:
            fill(out)
        os.replace(temp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _container_for(info: MediaInfo) -> str:
    codecs = {s.codec for s in info.streams if s.type in ("video", "audio")}
    return "mp4" if codecs <= _mp4_codecs() else "mkv"


@lru_cache(maxsize=1)
def _mp4_codecs() -> frozenset[str]:
    with av.open(io.BytesIO(), "w", format="mp4") as out:
        return frozenset(out.supported_codecs - _MP4_EXPERIMENTAL)


def _name_track(stream: Stream, lang: Language, suffix: str, title: str) -> None:
    """Tag a track with the language and a title (MP4 players show the handler name as the track's name)."""
    stream.metadata["language"] = _code(lang, suffix)
    stream.metadata["title"] = title
    if suffix == "mp4":
        stream.metadata["handler_name"] = title


def _code(lang: Language, suffix: str) -> str:
    return lang.iso639_2b if CONTAINERS[suffix][2] == "B" else lang.iso639_2


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
