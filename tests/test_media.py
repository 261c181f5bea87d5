"""Unit tests of the media core (`simulator.media`): probing, results, generated videos and the data directory.

Every video is made here with PyAV (colour bars and a tone, a second or two); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from simulator.media import (
    MediaNotFound,
    MediaStore,
    MediaTooLong,
    NotAVideo,
    ResultGone,
    StorageFull,
    TooLarge,
    UnreadableMedia,
    UnsupportedMedia,
    generate_video,
    make_result,
    probe,
    resolve_language,
    subtitle_cues,
)
from simulator.media import files as media_files
from simulator.media.samples import write_sample
from tests.conftest import FakeClock

JOB = "5b0f4a3e-3b43-4a8e-9a55-0d1c2b7f8e21"

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


def sidecar_and_media_bytes(root: Path) -> int:
    """Return the bytes of every file under uploads/ and results/ (what usage_bytes counts when idle)."""
    return sum(p.stat().st_size for d in ("uploads", "results") for p in (root / d).iterdir())


def truncated_copy(source: Path, dest: Path, fraction: float) -> Path:
    """Write the first `fraction` of `source` to `dest`, as an interrupted upload would leave it."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def video_payload_digest(path: Path) -> str:
    """Return a digest of every video packet's bytes, in order (equal digests: the video was copied, not encoded)."""
    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
    return digest.hexdigest()


def subtitle_texts(path: Path) -> list[tuple[float, float, str]]:
    """Return the (start s, duration s, text) of every cue of the file's first subtitle stream."""
    cues = []
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        for packet in container.demux(stream):
            for subtitle in packet.decode():
                text = subtitle.dialogue.decode()
                cues.append((float(packet.pts * packet.time_base), float(packet.duration * packet.time_base), text))
    return cues


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


def test_probe_refuses_a_video_whose_pictures_cannot_be_decoded(samples: Path, tmp_path: Path) -> None:
    """An intact MP4 index around random bytes in place of the H.264 data is UnreadableMedia."""
    data = bytearray((samples / "silent.mp4").read_bytes())
    start = data.index(b"mdat") - 4
    size = int.from_bytes(data[start:start + 4], "big")
    data[start + 8:start + size] = random.Random(1).randbytes(size - 8)
    (tmp_path / "garbage.mp4").write_bytes(data)
    with pytest.raises(UnreadableMedia, match="cannot be decoded"):
        probe(tmp_path / "garbage.mp4")


# ------------------------------------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("given", "tag", "iso639_2", "iso639_2b", "name"),
    [
        ("de", "de", "deu", "ger", "German"),
        ("German", "de", "deu", "ger", "German"),
        ("ger", "de", "deu", "ger", "German"),
        ("EN", "en", "eng", "eng", "English"),
        ("pt-BR", "pt-BR", "por", "por", "Portuguese (Brazil)"),
        ("pt_br", "pt-BR", "por", "por", "Portuguese (Brazil)"),
        ("zh-Hans", "zh-Hans", "zho", "chi", "Chinese"),
        ("Greek", "el", "ell", "gre", "Modern Greek"),
        ("iw", "he", "heb", "heb", "Hebrew"),
        ("Spanish (Spain)", "es", "spa", "spa", "Spanish (Spain)"),
        ("Chinese (Mandarin, Simplified)", "zh", "zho", "chi", "Chinese (Mandarin, Simplified)"),
        ("Dothraki (Essos)", "Dothraki (Essos)", "und", "und", "Dothraki (Essos)"),
        ("xx-YY", "xx-YY", "und", "und", "xx-YY"),
        ("", "und", "und", "und", "Undetermined"),
        (None, "und", "und", "und", "Undetermined"),
    ],
)
def test_languages_resolve_to_iso_639_2(given: str | None, tag: str, iso639_2: str, iso639_2b: str,
                                        name: str) -> None:
    """Codes, BCP 47 tags and English names resolve to ISO 639-2 T and B codes; unknown text is `und`."""
    language = resolve_language(given)
    assert (language.tag, language.iso639_2, language.iso639_2b, language.name) == (tag, iso639_2, iso639_2b, name)


# ------------------------------------------------------------------------------------------- results


def test_result_copies_the_video_and_tags_audio_and_subtitles(samples: Path, tmp_path: Path) -> None:
    """make_result() writes an MP4 whose video packets are the source's, audio and mov_text subtitles tagged deu."""
    result = make_result(samples / "clip.mp4", tmp_path / "out", job_id=JOB, language="de")
    assert result.path == tmp_path / "out.mp4" and result.container == "mp4"
    assert [(s.type, s.codec, s.language) for s in result.streams] == [
        ("video", "h264", None), ("audio", "aac", "deu"), ("subtitle", "mov_text", "deu")]
    assert result.duration_seconds == pytest.approx(probe(samples / "clip.mp4").duration_seconds, abs=0.05)
    assert video_payload_digest(result.path) == video_payload_digest(samples / "clip.mp4")
    assert result.streams_of("audio")[0].title == "German"


def test_result_metadata_names_the_job_and_the_language(samples: Path, tmp_path: Path) -> None:
    """The result's container tags carry the job id, the ISO 639-2 code, the tag and a title naming both."""
    result = make_result(samples / "clip.mp4", tmp_path / "out.mp4", job_id=JOB, language="pt-BR", title="talk")
    assert result.tags["job_id"] == JOB
    assert result.tags["language"] == "por" and result.tags["language_tag"] == "pt-BR"
    assert result.tags["title"] == "talk — Portuguese (Brazil) translation"
    assert JOB in result.tags["comment"]


def test_result_cues_mark_each_segment(samples: Path, tmp_path: Path) -> None:
    """The subtitle track has one cue per 10 s segment, timed to it, saying which segment and language it is."""
    result = make_result(samples / "long.mp4", tmp_path / "out", job_id=JOB, language="de")
    cues = subtitle_texts(result.path)
    last = round(probe(samples / "long.mp4").duration_seconds - 10, 3)
    assert [(start, round(length, 3)) for start, length, _ in cues] == [(0.0, 10.0), (10.0, last)]
    assert cues[0][2].startswith("[de] segment 1/2 — 00:00:00–00:00:10")
    assert "German translation of this segment" in cues[0][2] and JOB in cues[0][2]
    assert cues[1][2].startswith("[de] segment 2/2 — 00:00:10–00:00:12")


def test_subtitle_cues_cover_the_duration() -> None:
    """subtitle_cues() splits a duration into segments, the last one cut at the end."""
    cues = subtitle_cues(25.5, resolve_language("fr"), job_id="j", segment_seconds=10)
    assert [(c.start, c.end) for c in cues] == [(0, 10), (10, 20), (20, 25.5)]
    assert cues[2].text.startswith("[fr] segment 3/3 — 00:00:20–00:00:25")


def test_result_of_a_webm_is_matroska_with_bibliographic_tags(samples: Path, tmp_path: Path) -> None:
    """VP8/Opus cannot go in MP4 here, so the result is Matroska with SubRip cues, tagged with ISO 639-2/B."""
    result = make_result(samples / "clip.webm", tmp_path / "out.mp4", job_id=JOB, language="German")
    assert result.path.suffix == ".mkv" and result.container == "mkv"
    assert [(s.type, s.codec, s.language) for s in result.streams] == [
        ("video", "vp8", None), ("audio", "opus", "ger"), ("subtitle", "subrip", "ger")]
    assert video_payload_digest(result.path) == video_payload_digest(samples / "clip.webm")


def test_result_of_an_avi_is_an_mp4(samples: Path, tmp_path: Path) -> None:
    """MPEG-4 video and MP3 from an AVI go into MP4 as they are (AVI's codec tag is not carried over)."""
    result = make_result(samples / "clip.avi", tmp_path / "out", job_id=JOB, language="es")
    assert (result.container, result.video.codec, result.audio and result.audio.codec) == ("mp4", "mpeg4", "mp3")
    assert result.audio is not None and result.audio.language == "spa"


def test_result_can_be_forced_into_matroska(samples: Path, tmp_path: Path) -> None:
    """container="mkv" writes Matroska even when MP4 would do."""
    result = make_result(samples / "clip.mp4", tmp_path / "out", job_id=JOB, language="fr", container="mkv")
    assert result.container == "mkv" and result.audio is not None and result.audio.language == "fre"


def test_result_with_an_unknown_language_is_tagged_und(samples: Path, tmp_path: Path) -> None:
    """A free-text language nobody can identify tags the tracks `und` and is quoted in the cues."""
    result = make_result(samples / "clip.mp4", tmp_path / "out", job_id=JOB, language="Elvish")
    assert {s.language for s in result.streams if s.type != "video"} == {None}  # `und` reads back as untagged
    assert subtitle_texts(result.path)[0][2].startswith("[Elvish] segment 1/1")


def test_result_of_a_file_that_is_not_a_video_is_refused(tmp_path: Path) -> None:
    """make_result() of a text file raises NotAVideo and leaves no file behind."""
    source = tmp_path / "notes.txt"
    source.write_text("not a video")
    with pytest.raises(NotAVideo):
        make_result(source, tmp_path / "out", job_id=JOB, language="de")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_generated_video_has_the_duration_and_the_tags(tmp_path: Path) -> None:
    """generate_video() writes an MP4 of the asked duration with bars, a tone, and the result's tags and cues."""
    result = generate_video(tmp_path / "gen", seconds=25, language="ja", job_id=JOB)
    assert result.path == tmp_path / "gen.mp4"
    assert result.duration_seconds == pytest.approx(25, abs=0.05)
    assert result.as_dict()["video"] == {"codec": "h264", "width": 320, "height": 180, "fps": 10.0}
    assert [(s.type, s.language) for s in result.streams] == [("video", None), ("audio", "jpn"), ("subtitle", "jpn")]
    assert result.tags["job_id"] == JOB and result.tags["language"] == "jpn"
    assert len(subtitle_texts(result.path)) == 3


def test_generated_video_decodes_across_its_repetitions(tmp_path: Path) -> None:
    """Every frame of a generated video decodes, also where its encoded second is repeated."""
    result = generate_video(tmp_path / "gen", seconds=3.5, language="de", job_id=JOB)
    with av.open(str(result.path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 35


# ------------------------------------------------------------------------------------------- the data directory


def make_store(tmp_path: Path, clock: FakeClock | None = None, **limits: float) -> MediaStore:
    """Build a store in tmp_path/data with small read chunks and a fake clock (results are ordered by it)."""
    return MediaStore(tmp_path / "data", chunk_bytes=4096, clock=clock or FakeClock(), **limits)  # type: ignore[arg-type]


def test_upload_is_streamed_probed_and_kept_with_a_sidecar(samples: Path, tmp_path: Path) -> None:
    """save_upload() of a file object stores the video under uploads/ with a JSON sidecar of its probe."""
    store = make_store(tmp_path)
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="C:\\videos\\talk.mp4")
    data = upload.as_dict()
    assert data["upload_id"] == upload.upload_id and data["filename"] == "talk.mp4"
    assert data["size_bytes"] == (samples / "clip.mp4").stat().st_size and data["container"] == "mp4"
    assert upload.path == tmp_path / "data" / "uploads" / f"{upload.upload_id}.mp4"
    sidecar = json.loads(upload.path.with_suffix(".json").read_text())
    assert sidecar["upload_id"] == upload.upload_id and sidecar["info"]["filename"] == "talk.mp4"
    assert store.upload(upload.upload_id) == upload
    assert store.usage_bytes() == sidecar_and_media_bytes(tmp_path / "data")
    assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_upload_from_byte_chunks(samples: Path, tmp_path: Path) -> None:
    """save_upload() takes an iterable of byte chunks as well (what a multipart parser yields)."""
    data = (samples / "clip.mp4").read_bytes()
    store = make_store(tmp_path)
    upload = store.save_upload((data[i:i + 1000] for i in range(0, len(data), 1000)), filename="a.mp4",
                               content_length=len(data))
    assert upload.path.read_bytes() == data


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not a video at all\n" * 100, NotAVideo),
        (b"", NotAVideo),
    ],
)
def test_non_video_upload_is_refused_and_deleted(tmp_path: Path, content: bytes, error: type[Exception]) -> None:
    """An upload that is not a video raises NotAVideo, and nothing of it stays on disk or in the usage."""
    store = make_store(tmp_path)
    with pytest.raises(error):
        store.save_upload([content], filename="notes.txt")
    assert sidecar_and_media_bytes(tmp_path / "data") == 0 and store.usage_bytes() == 0
    assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_truncated_upload_is_refused_and_deleted(samples: Path, tmp_path: Path) -> None:
    """An upload holding half a video raises UnreadableMedia and is deleted."""
    half = truncated_copy(samples / "moov-first.mp4", tmp_path / "half.mp4", 0.5)
    store = make_store(tmp_path)
    with open(half, "rb") as body, pytest.raises(UnreadableMedia, match="truncated"):
        store.save_upload(body, filename="half.mp4")
    assert sidecar_and_media_bytes(tmp_path / "data") == 0 and store.usage_bytes() == 0


def test_body_shorter_than_its_content_length_is_refused(samples: Path, tmp_path: Path) -> None:
    """A body that ends before its declared Content-Length (a dropped connection) is UnreadableMedia, deleted."""
    data = (samples / "clip.mp4").read_bytes()
    store = make_store(tmp_path)
    with pytest.raises(UnreadableMedia, match=f"ended after 1000 of {len(data)} bytes"):
        store.save_upload([data[:1000]], filename="a.mp4", content_length=len(data))
    assert list((tmp_path / "data" / "tmp").iterdir()) == [] and store.usage_bytes() == 0


def test_declared_oversize_is_refused_before_reading(tmp_path: Path) -> None:
    """A Content-Length over max_upload_bytes raises TooLarge before one byte of the body is read."""
    store = make_store(tmp_path, max_upload_bytes=1000)

    def body() -> Iterator[bytes]:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    with pytest.raises(TooLarge) as caught:
        store.save_upload(body(), content_length=1001)
    assert caught.value.extra["max_bytes"] == 1000
    store.check_upload_size(1000)  # at the limit is fine


def test_oversized_stream_is_refused_without_writing_past_the_limit(tmp_path: Path) -> None:
    """A chunked body passing max_upload_bytes raises TooLarge at that chunk; the disk never holds more than the
    limit, the rest of the body is not read, and the partial file is deleted."""
    limit = 10_000
    store = make_store(tmp_path, max_upload_bytes=limit)
    tmp = tmp_path / "data" / "tmp"
    on_disk: list[int] = []
    asked = 0

    def body() -> Iterator[bytes]:
        nonlocal asked
        while True:
            asked += 1
            on_disk.append(sum(p.stat().st_size for p in tmp.iterdir()))
            yield b"x" * 3000

    with pytest.raises(TooLarge):
        store.save_upload(body(), filename="big.mp4")
    assert max(on_disk) <= limit
    assert asked == 4  # 3 chunks (9 000 bytes) written; the 4th would pass 10 000 and is refused
    assert list(tmp.iterdir()) == [] and store.usage_bytes() == 0


def test_upload_longer_than_the_limit_is_refused(samples: Path, tmp_path: Path) -> None:
    """A video lasting more than max_media_seconds raises MediaTooLong (with both durations) and is deleted."""
    store = make_store(tmp_path, max_media_seconds=10)
    with open(samples / "long.mp4", "rb") as body, pytest.raises(MediaTooLong) as caught:
        store.save_upload(body, filename="long.mp4")
    assert caught.value.extra["max_seconds"] == 10 and caught.value.extra["duration_seconds"] > 10
    assert sidecar_and_media_bytes(tmp_path / "data") == 0


def test_result_of_an_upload_is_kept_per_job(samples: Path, tmp_path: Path) -> None:
    """make_result(upload_id=...) remuxes the upload into results/<job>.mp4 with a download name and a sidecar."""
    store = make_store(tmp_path)
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="talk.mp4")
    result = store.make_result(JOB, language="de", upload_id=upload.upload_id)
    assert result.path == tmp_path / "data" / "results" / f"{JOB}.mp4" and result.path.exists()
    assert result.download_name == "talk.de.mp4" and result.media_type == "video/mp4"
    assert not result.generated and result.upload_id == upload.upload_id
    assert store.result(JOB) == result
    assert probe(result.path).audio.language == "deu"  # type: ignore[union-attr]
    assert store.usage_bytes() == sidecar_and_media_bytes(tmp_path / "data")


def test_result_without_an_upload_is_generated(tmp_path: Path) -> None:
    """make_result() without an upload generates a video of the given duration."""
    store = make_store(tmp_path)
    result = store.make_result(JOB, language="fr", seconds=12)
    assert result.generated and result.download_name == f"translation-{JOB[:8]}.fr.mp4"
    assert result.info.duration_seconds == pytest.approx(12, abs=0.05)


def test_upload_that_cannot_be_remuxed_gets_a_generated_result(samples: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """When the upload cannot be copied into MP4 or Matroska, the job gets a generated video of its duration."""
    store = make_store(tmp_path)
    with open(samples / "long.mp4", "rb") as body:
        upload = store.save_upload(body, filename="odd.mp4")

    def refuse(*args: object, **kwargs: object) -> None:
        raise UnsupportedMedia("no container takes these streams")

    monkeypatch.setattr(media_files, "make_result", refuse)
    result = store.make_result(JOB, language="de", upload_id=upload.upload_id)
    assert result.generated and result.info.duration_seconds == pytest.approx(12, abs=0.05)
    assert result.download_name == f"translation-{JOB[:8]}.de.mp4"


def test_unknown_upload_and_result_are_not_found(tmp_path: Path) -> None:
    """An unknown or unsafe upload id, and a job without a result, raise MediaNotFound."""
    store = make_store(tmp_path)
    for bad in ("nope", "../../etc/passwd"):
        with pytest.raises(MediaNotFound):
            store.make_result(JOB, language="de", upload_id=bad)
    with pytest.raises(MediaNotFound):
        store.result(JOB)


def test_upload_deleted_under_a_result_is_not_found(samples: Path, tmp_path: Path) -> None:
    """An upload whose file disappears before its result is made raises MediaNotFound, not an OSError."""
    store = make_store(tmp_path)
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="clip.mp4")
    upload.path.unlink()  # as if another thread deleted it between the lookup and the remux
    with pytest.raises(MediaNotFound, match="deleted"):
        store.make_result(JOB, language="de", upload_id=upload.upload_id)
    assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_download_name_is_safe_for_any_language_text(samples: Path, tmp_path: Path) -> None:
    """A free-text language that is not a known code is reduced to safe characters in the download name."""
    store = make_store(tmp_path)
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="talk.mp4")
    result = store.make_result(JOB, language='Elvish "high"/x', upload_id=upload.upload_id)
    assert result.download_name == "talk.Elvish_high_x.mp4" and result.language == 'Elvish "high"/x'


def test_oldest_results_are_evicted_first_to_make_room(samples: Path, tmp_path: Path) -> None:
    """When a write needs room, results go oldest first (and only as many as needed); uploads stay."""
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    for job in ("job-1", "job-2", "job-3"):
        store.make_result(job, language="de", seconds=10)
        clock.advance(1)
    store.max_data_bytes = store.usage_bytes() + 20_000  # room for the sidecar, not for the 13 KB upload too
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="clip.mp4")
    with pytest.raises(ResultGone, match="job-1"):
        store.result("job-1")
    assert store.result("job-2") and store.result("job-3") and store.upload(upload.upload_id)
    assert not (tmp_path / "data" / "results" / "job-1.mp4").exists()
    assert not (tmp_path / "data" / "results" / "job-1.json").exists()
    assert store.usage_bytes() == sidecar_and_media_bytes(tmp_path / "data") <= store.max_data_bytes


def test_storage_full_when_eviction_cannot_make_room(samples: Path, tmp_path: Path) -> None:
    """A write that does not fit even after evicting every result raises StorageFull and leaves nothing behind."""
    store = make_store(tmp_path)
    with open(samples / "clip.mp4", "rb") as body:
        kept = store.save_upload(body, filename="kept.mp4")
    store.make_result("job-1", language="de", seconds=5)
    store.max_data_bytes = store.usage_bytes() + 1000
    with open(samples / "long.mp4", "rb") as body, pytest.raises(StorageFull):
        store.save_upload(body, filename="long.mp4")
    with pytest.raises(ResultGone):
        store.result("job-1")
    assert store.upload(kept.upload_id)  # uploads are never evicted
    assert list((tmp_path / "data" / "tmp").iterdir()) == []
    assert store.usage_bytes() == sidecar_and_media_bytes(tmp_path / "data")


def test_delete_job_and_upload_remove_their_files(samples: Path, tmp_path: Path) -> None:
    """delete_job() removes a job's result and sidecar, delete_upload() an upload's; both answer whether they did."""
    store = make_store(tmp_path)
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="clip.mp4")
    store.make_result(JOB, language="de", upload_id=upload.upload_id)
    assert store.delete_job(JOB) and not store.delete_job(JOB)
    assert store.delete_upload(upload.upload_id) and not store.delete_upload(upload.upload_id)
    assert sidecar_and_media_bytes(tmp_path / "data") == 0 and store.usage_bytes() == 0
    with pytest.raises(MediaNotFound):
        store.result(JOB)


def test_reopening_the_directory_restores_the_index(samples: Path, tmp_path: Path) -> None:
    """A new store on the same directory finds the uploads and results, oldest result first, and drops strays."""
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    with open(samples / "clip.mp4", "rb") as body:
        upload = store.save_upload(body, filename="clip.mp4")
    first = store.make_result("job-1", language="de", upload_id=upload.upload_id)
    clock.advance(1)
    store.make_result("job-2", language="fr", seconds=3)
    (tmp_path / "data" / "tmp" / "left-over.part").write_bytes(b"x" * 100)
    (tmp_path / "data" / "results" / "stray.mp4").write_bytes(b"x" * 100)
    again = make_store(tmp_path)
    assert again.upload(upload.upload_id) == upload and again.result("job-1") == first
    assert [r.job_id for r in again.results()] == ["job-1", "job-2"]
    assert again.uploads() == [upload]
    assert not (tmp_path / "data" / "results" / "stray.mp4").exists()
    assert list((tmp_path / "data" / "tmp").iterdir()) == []
    assert again.usage_bytes() == store.usage_bytes() == sidecar_and_media_bytes(tmp_path / "data")


def test_concurrent_uploads_and_results_keep_exact_accounts(samples: Path, tmp_path: Path) -> None:
    """Uploads and results from several threads at once are all kept, and usage matches the disk exactly."""
    store = make_store(tmp_path)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(3):
                with open(samples / "clip.mp4", "rb") as body:
                    upload = store.save_upload(body, filename=f"{n}-{i}.mp4")
                store.make_result(f"job-{n}-{i}", language="de", upload_id=upload.upload_id)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.stats()["uploads"] == 12 and store.stats()["results"] == 12
    assert store.usage_bytes() == sidecar_and_media_bytes(tmp_path / "data")


def test_a_result_bigger_than_the_budget_is_refused(tmp_path: Path) -> None:
    """A generated result that cannot fit at all raises StorageFull and stores nothing."""
    store = make_store(tmp_path, max_data_bytes=50_000)
    with pytest.raises(StorageFull):
        store.make_result(JOB, language="de", seconds=60)
    assert sidecar_and_media_bytes(tmp_path / "data") == 0 and store.usage_bytes() == 0
    assert math.isclose(store.stats()["reserved_bytes"], 0)
