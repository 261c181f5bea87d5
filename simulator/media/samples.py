"""Tiny test videos made on the spot (colour bars and a tone), for the tests and the benchmarks: nothing to download."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from . import synth

#: Codecs per container: what such files usually hold, and what FFmpeg's wheels in PyAV can encode.
PRESETS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    # suffix: (muxer, video encoder, audio encoder, video options)
    "mp4": ("mp4", "libx264", "aac", {"preset": "ultrafast"}),
    "mov": ("mov", "libx264", "aac", {"preset": "ultrafast"}),
    "mkv": ("matroska", "libx264", "aac", {"preset": "ultrafast"}),
    "webm": ("webm", "libvpx", "libopus", {"deadline": "realtime", "cpu-used": "8"}),
    "avi": ("avi", "mpeg4", "libmp3lame", {}),
}


def write_sample(
    path: str | os.PathLike[str],
    *,
    seconds: float = 1.0,
    width: int = 320,
    height: int = 180,
    fps: int = 10,
    audio: bool = True,
    audio_language: str | None = None,
    faststart: bool = False,
    spec: synth.SynthSpec | None = None,
) -> Path:
    """Write a test video of colour bars and a 440 Hz tone; its suffix (.mp4 .mov .mkv .webm .avi) picks the codecs.

    `spec` replaces the picture, codec and GOP settings (the benchmark's 720p input); `faststart` puts an MP4's
    index first (by default it is written last, as cameras and most tools do).
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in PRESETS:
        raise ValueError(f"unknown sample container {suffix!r}; choose one of {', '.join(PRESETS)}")
    muxer, video_codec, audio_codec, video_options = PRESETS[suffix]
    if spec is None:
        spec = synth.SynthSpec(width=width, height=height, fps=fps, video_codec=video_codec,
                               video_options=video_options, audio_codec=audio_codec)
    if not audio:
        spec = dataclasses.replace(spec, audio_codec=None)
    options = {"movflags": "+faststart"} if faststart and muxer in ("mp4", "mov") else {}
    synth.write(str(path), spec, seconds, format=muxer, options=options, audio_language=audio_language)
    return path
