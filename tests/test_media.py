"""Unit tests of the media core (`simulator.media`): probing, results, generated videos and the data directory.

Every video is made here with PyAV (colour bars and a tone, a second or two); nothing is downloaded.
"""


from __future__ import annotations

from pathlib import Path

import av
import pytest

from simulator.media import NotAVideo, UnreadableMedia, probe
from simulator.media.samples import write_sample

# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of sample videos made once for the module (each test copies what it changes)."""
    folder = tmp_path_factory.mktemp("samples")
    write_sample(folder / "clip.mp4", seconds=1.0, audio_language="eng")
    write_sample(folder / "long.mp4", seconds=12.0, faststart=True)
    write_sample(folder / "silent.mp4", seconds=1.0, audio=False)
    write_sample(folder / "clip.webm", seconds=1.0)
    write_sample(folder / "clip.avi", seconds=1.0)
    write_sample(folder / "clip.mkv", seconds=5.0)
    write_sample(folder / "moov-last.mp4", seconds=5.0)
    write_sample(folder / "moov-first.mp4", seconds=5.0, faststart=True)
    return folder


def truncated_copy(source: Path, dest: Path, fraction: float) -> Path:
    """Write the first `fraction` of `source` to `dest`, as an interrupted upload would leave it."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


# ------------------------------------------------------------------------------------------- probe


def test_probe_reports_the_issues_fields_of_a_generated_clip(samples: Path) -> None:
    """probe() of one second of bars and a tone gives exactly the upload JSON's fields and values."""
    info = probe(samples / "clip.mp4")
    data = info.as_dict()
    assert data == {
        "filename": "clip.mp4",
        "size_bytes": (samples / "clip.mp4").stat().st_size,
        "duration_seconds": data["duration_seconds"],
        "container": "mp4",
        "video": {"codec": "h264", "width": 320, "height": 180, "fps": 10.0},
        "audio": {"codec": "aac", "channels": 1, "sample_rate": 48000, "language": "eng"},
    }
    assert data["duration_seconds"] == pytest.approx(1.0, abs=0.05)


def test_probe_takes_the_senders_file_name(samples: Path) -> None:
    """probe(filename=...) reports the name the sender gave instead of the name on disk."""
    assert probe(samples / "clip.mp4", filename="talk.mp4").filename == "talk.mp4"


def test_probe_of_a_video_without_sound_has_no_audio(samples: Path) -> None:
    """A video without an audio stream probes with audio None."""
    assert probe(samples / "silent.mp4").audio is None


@pytest.mark.parametrize(
    ("name", "container", "video_codec", "audio_codec"),
    [
        ("clip.webm", "webm", "vp8", "opus"),
        ("clip.avi", "avi", "mpeg4", "mp3"),
        ("clip.mkv", "mkv", "h264", "aac"),
        ("moov-first.mp4", "mp4", "h264", "aac"),
    ],
)
def test_probe_names_containers_and_codecs(samples: Path, name: str, container: str, video_codec: str,
                                           audio_codec: str) -> None:
    """Containers get their everyday names (webm, not matroska) and codecs FFmpeg's names (mp3, not mp3float)."""
    info = probe(samples / name)
    assert (info.container, info.video.codec, info.audio and info.audio.codec) == (container, video_codec,
                                                                                    audio_codec)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"hello, this is not a video\n" * 40),
        ("notes", b"hello, this is not a video\n" * 40),
        ("empty.mp4", b""),
        ("random.mp4", bytes(range(256)) * 64),
    ],
)
def test_probe_refuses_files_that_are_not_media(tmp_path: Path, name: str, content: bytes) -> None:
    """Text, empty and random files are NotAVideo, with a message that names the file."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NotAVideo, match=name):
        probe(path)


def test_probe_refuses_an_audio_file(samples: Path, tmp_path: Path) -> None:
    """A file with only sound (the clip's audio copied into .m4a) is NotAVideo."""
    dest = tmp_path / "sound.m4a"
    with av.open(str(samples / "clip.mp4")) as inp, av.open(str(dest), "w", format="mp4") as out:
        audio = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    with pytest.raises(NotAVideo, match="audio file"):
        probe(dest)


def test_probe_refuses_a_still_image(tmp_path: Path) -> None:
    """A PNG picture, which FFmpeg opens as a one-frame video, is NotAVideo."""
    dest = tmp_path / "bars.png"
    with av.open("smptebars=size=64x36:rate=1:duration=1", format="lavfi") as src, \
            av.open(str(dest), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 64, 36, "rgb24"
        frame = next(src.decode(video=0))
        frame.pts = None
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(NotAVideo, match="still image"):
        probe(dest)


@pytest.mark.parametrize(
    ("name", "fraction", "message"),
    [
        ("moov-last.mp4", 0.5, "cannot be opened"),  # the index was never written
        ("moov-first.mp4", 0.5, "truncated"),  # the index promises packets the file does not hold
        ("moov-first.mp4", 0.9, "truncated"),
        ("clip.mkv", 0.5, "truncated"),
        ("clip.mkv", 0.9, "truncated"),
    ],
)
def test_probe_refuses_a_truncated_video(samples: Path, tmp_path: Path, name: str, fraction: float,
                                         message: str) -> None:
    """A video cut short (as an interrupted upload leaves it) is UnreadableMedia, whichever end its index is at."""
    path = truncated_copy(samples / name, tmp_path / name, fraction)
    with pytest.raises(UnreadableMedia, match=message):
        probe(path)
