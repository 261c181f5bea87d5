"""Synthetic video: a test pattern and a tone, encoded once for a short loop and repeated to any length.

Encoding is what costs time, so only one loop is encoded — `loop_seconds` of video, whole GOPs, and the tone for
a whole number of audio frames — and its packets are written again with shifted timestamps until the wanted
duration is reached. Each video GOP is closed (x264's default), so every repetition decodes on its own; the tone's
frequency is nudged so that the loop holds a whole number of periods, and the audio loop is taken from the middle
of a longer encoding, so the repetitions join without a click. The result is an ordinary, playable file.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
from av.container.output import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType


@dataclass(frozen=True)
class SynthSpec:
    """What to synthesise: picture, frame rate and GOP, tone, codecs and their options."""

    width: int = 320
    height: int = 180
    fps: int = 10
    gop_seconds: int = 1
    loop_seconds: int = 1  # a whole number of GOPs, repeated to make the file
    pattern: str = "smptebars"  # an FFmpeg video source filter: smptebars, testsrc2, …
    video_codec: str = "libx264"
    video_options: dict[str, str] = field(default_factory=lambda: {"preset": "ultrafast"})
    bframes: int = 0  # with B-frames the duration must be a whole number of GOPs
    video_bit_rate: int | None = None
    audio_codec: str | None = "aac"  # None: no audio stream
    sample_rate: int = 48000
    channels: int = 1
    tone_hz: float = 440.0
    audio_bit_rate: int | None = None


@dataclass
class _Loop:
    """The encoded packets of one loop: (pts, dts, duration, keyframe, data), in the encoder's time base."""

    stream: Stream
    time_base: Fraction
    length: int  # loop length in time_base units
    granularity: int  # a cut must fall on a multiple of this (a GOP when there are B-frames, else any frame)
    packets: list[tuple[int, int, int, bool, bytes]]


def add_streams(out: OutputContainer, spec: SynthSpec, *, audio_language: str | None = None) -> list[_Loop]:
    """Add the spec's video (and audio) streams to `out` and encode one loop of each; return the loops."""
    loops = [_encode_video_loop(out, spec)]
    if spec.audio_codec:
        loops.append(_encode_audio_loop(out, spec, audio_language))
    return loops


def loop_packets(loops: list[_Loop], seconds: float) -> Iterator[tuple[float, Packet]]:
    """Yield (time in seconds, packet) of every stream for `seconds`, repeating the loops, merged in time order."""
    return heapq.merge(*(_repeat(loop, seconds) for loop in loops), key=lambda item: item[0])


def mux_in_order(out: OutputContainer, *streams: Iterable[tuple[float, Packet]]) -> None:
    """Mux several (time, packet) sequences, each in time order, interleaved by time."""
    for _, packet in heapq.merge(*streams, key=lambda item: item[0]):
        out.mux_one(packet)


def write(path: str, spec: SynthSpec, seconds: float, *, format: str | None = None,
          options: dict[str, str] | None = None, audio_language: str | None = None) -> None:
    """Write a synthetic video of `seconds` to `path` (container from `format` or the file name)."""
    with av.open(path, "w", format=format, options=options or {}) as out:
        loops = add_streams(out, spec, audio_language=audio_language)
        mux_in_order(out, loop_packets(loops, seconds))


# ------------------------------------------------------------------------------------------------ video


def _encode_video_loop(out: OutputContainer, spec: SynthSpec) -> _Loop:
    if spec.loop_seconds % spec.gop_seconds:
        raise ValueError("loop_seconds must be a whole number of GOPs")
    gop = spec.fps * spec.gop_seconds
    options = dict(spec.video_options)
    if spec.video_codec == "libx264":
        # Closed GOPs of exactly `gop` frames and no scene-cut keyframes: every GOP decodes on its own.
        options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={spec.bframes}:open-gop=0"
    else:
        options.update({"g": str(gop), "bf": str(spec.bframes)})
    stream = out.add_stream(spec.video_codec, rate=spec.fps, options=options)
    stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
    if spec.video_bit_rate:
        stream.bit_rate = spec.video_bit_rate
    time_base = Fraction(1, spec.fps)
    stream.codec_context.time_base = time_base
    frames = spec.fps * spec.loop_seconds
    source = av.open(f"{spec.pattern}=size={spec.width}x{spec.height}:rate={spec.fps}:duration={spec.loop_seconds}",
                     format="lavfi")
    packets = []
    with source:
        for index, frame in enumerate(source.decode(video=0)):
            if index == frames:
                break
            frame.pts, frame.time_base = index, time_base
            frame.pict_type = PictureType.NONE  # the source marks every frame I; x264 would obey and make no GOPs
            packets += stream.encode(frame)
    packets += stream.encode(None)
    granularity = gop if spec.bframes else 1
    return _Loop(stream, time_base, frames, granularity, [_keep(p) for p in packets])


# ------------------------------------------------------------------------------------------------ audio


def _encode_audio_loop(out: OutputContainer, spec: SynthSpec, language: str | None) -> _Loop:
    stream = out.add_stream(spec.audio_codec, rate=spec.sample_rate)
    stream.layout = "mono" if spec.channels == 1 else "stereo"
    if spec.audio_bit_rate:
        stream.bit_rate = spec.audio_bit_rate
    if language:
        stream.metadata["language"] = language
    context = stream.codec_context
    context.time_base = Fraction(1, spec.sample_rate)
    context.open()
    frame_size = context.frame_size or 1024
    # Whole audio frames per loop, close to the video loop; the tone gets a whole number of periods in it.
    loop_frames = max(1, round(spec.loop_seconds * spec.sample_rate / frame_size))
    loop_samples = loop_frames * frame_size
    periods = max(1, round(spec.tone_hz * loop_samples / spec.sample_rate))
    tone_hz = periods * spec.sample_rate / loop_samples
    # Encode three loops and keep the middle one: its frames were encoded with the loop's own sound on both
    # sides, so that repeating it is seamless (the encoder's delay shifts packets by a frame or two).
    duration = 3 * loop_samples / spec.sample_rate
    source = av.open(f"sine=frequency={tone_hz}:sample_rate={spec.sample_rate}:duration={duration}", format="lavfi")
    resampler = av.AudioResampler(format=context.format.name, layout=stream.layout.name, rate=spec.sample_rate,
                                  frame_size=frame_size)
    packets = []
    with source:
        for frame in source.decode(audio=0):
            for chunk in resampler.resample(frame):
                packets += stream.encode(chunk)
    packets += stream.encode(None)
    middle = [p for p in packets if loop_samples <= (p.pts or 0) < 2 * loop_samples]
    kept = [(p.pts - loop_samples, p.pts - loop_samples, frame_size, True, bytes(p)) for p in middle]
    return _Loop(stream, Fraction(1, spec.sample_rate), loop_samples, 1, kept)


# ------------------------------------------------------------------------------------------------ packets


def _keep(packet: Packet) -> tuple[int, int, int, bool, bytes]:
    return packet.pts, packet.dts, packet.duration or 1, packet.is_keyframe, bytes(packet)


def _repeat(loop: _Loop, seconds: float) -> Iterator[tuple[float, Packet]]:
    end = round(Fraction(seconds) / loop.time_base)
    if end % loop.granularity:
        raise ValueError("with B-frames the duration must be a whole number of GOPs")
    seconds_per_tick = float(loop.time_base)
    for offset in range(0, end, loop.length):
        for pts, dts, duration, keyframe, data in loop.packets:
            if pts + offset >= end:
                continue  # past the end (video without B-frames and audio may stop at any frame)
            packet = Packet(data)
            packet.pts, packet.dts, packet.duration = pts + offset, dts + offset, duration
            packet.time_base, packet.is_keyframe, packet.stream = loop.time_base, keyframe, loop.stream
            yield (dts + offset) * seconds_per_tick, packet
