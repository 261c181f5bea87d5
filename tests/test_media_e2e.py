"""Videos end to end: both clients and the command line against `python server.py` on a free port.

The server runs its result worker, so results are made as jobs complete; a proxy that drops the first download
mid-way checks that the clients resume with the rest only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import client
from client import AsyncTranslationClient, BadRequestError, TranslationClient
from simulator.media import probe
from simulator.media.samples import write_sample
from simulator.testing import DroppingProxy
from tests.conftest import ADMIN_TOKEN, RunningServer

QUICK = {"TRANSLATION_DELAY": 0.3, "PREMIUM_DELAY_FACTOR": 1.0, "DELAY_JITTER": 0.0, "ERROR_RATE": 0.0,
         "RATE_LIMIT": 1000}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test videos made once: a second of 320x180 (25 kB), and 8 s of 640x360 (about 100 kB)."""
    folder = tmp_path_factory.mktemp("clips")
    write_sample(folder / "talk.mp4", seconds=1.0, audio_language="eng")
    write_sample(folder / "lecture.mp4", seconds=8.0, width=640, height=360)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One quick server for the module, with its DATA_DIR in a temporary folder."""
    data_dir = tmp_path_factory.mktemp("data")
    running = RunningServer({**QUICK, "DATA_DIR": str(data_dir)}).start()
    running.data_dir = data_dir  # type: ignore[attr-defined]
    yield running
    running.stop()


def data_files(server: RunningServer, folder: str) -> list[str]:
    """Return the names of the files in one folder of the server's DATA_DIR."""
    return sorted(p.name for p in (server.data_dir / folder).iterdir())  # type: ignore[attr-defined]


def eventually(check: object, timeout: float = 10.0) -> None:
    """Wait (real time: the server's worker runs in it) until `check()` is true, or fail."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the server's worker did not get there in time"
        time.sleep(0.02)


def test_upload_translate_and_download_with_the_sync_client(server: RunningServer, clips: Path,
                                                            tmp_path: Path) -> None:
    """upload reports progress to the last byte; the worker makes the result unasked; the download is tagged."""
    seen: list[tuple[int, int | None]] = []
    with TranslationClient(server.url, user_id="e2e-sync") as tc:
        upload = tc.upload(clips / "talk.mp4", on_progress=lambda done, total: seen.append((done, total)))
        size = (clips / "talk.mp4").stat().st_size
        assert (upload.size_bytes, upload.filename, seen[-1]) == (size, "talk.mp4", (size, size))
        job = tc.translate_file(clips / "talk.mp4", "premium", target_language="de", timeout=30)
        assert job.completed and job.result_url == f"/results/{job.job_id}" and job.upload_id is not None
        eventually(lambda: f"{job.job_id}.mp4" in data_files(server, "results"))
        saved = tc.download_result(job, tmp_path)
    assert saved == tmp_path / "talk.de.mp4"
    info = probe(saved)
    assert info.audio is not None and info.audio.language == "deu"
    assert [s.language for s in info.streams_of("subtitle")] == ["deu"]
    assert not list(tmp_path.glob("*.part"))


def test_a_dropped_download_resumes_with_only_the_rest(server: RunningServer, clips: Path, tmp_path: Path) -> None:
    """Cut after 40 kB, the download asks for bytes=<received>- and the proxy passes only the rest after."""
    with TranslationClient(server.url, user_id="e2e-resume") as tc:
        job = tc.translate_file(clips / "lecture.mp4", "premium", target_language="it", timeout=30)
        whole = tc.download_result(job, tmp_path / "whole.mp4").read_bytes()
    assert len(whole) > 80_000
    with DroppingProxy(server.url, drop_after_bytes=40_000) as proxy, \
            TranslationClient(proxy.url, user_id="e2e-resume") as tc:
        resumed = tc.download_result(job, tmp_path / "resumed.mp4").read_bytes()
        requests = list(proxy.requests)
        passed = proxy.sent_bytes
    assert resumed == whole
    assert len(requests) == 2 and requests[0][1] is None
    first_range = int(requests[1][1].removeprefix("bytes=").rstrip("-"))
    assert 0 < first_range <= 40_000
    assert passed < len(whole) + 2_000  # the file once, plus two answers' headers


def test_an_oversized_upload_is_refused_and_nothing_is_written(run_server, clips: Path, tmp_path: Path) -> None:
    """With MAX_UPLOAD_BYTES below the file, the upload is 413 and DATA_DIR gets no file, not even a partial one."""
    data_dir = tmp_path / "data"
    small = run_server({**QUICK, "DATA_DIR": str(data_dir), "MAX_UPLOAD_BYTES": 50_000})
    with TranslationClient(small.url) as tc, pytest.raises(BadRequestError) as caught:
        tc.upload(clips / "lecture.mp4")
    assert (caught.value.status, caught.value.code) == (413, "upload_too_large")
    assert [p for p in data_dir.rglob("*") if p.is_file() and p.name != ".lock"] == []


def test_cleanup_removes_the_files_of_the_jobs_it_removes(server: RunningServer, clips: Path) -> None:
    """POST /cleanup: the worker deletes the removed jobs' result files on its own."""
    with TranslationClient(server.url, user_id="e2e-cleanup", admin_token=ADMIN_TOKEN) as tc:
        job = tc.translate_file(clips / "talk.mp4", "premium", timeout=30)
        eventually(lambda: f"{job.job_id}.mp4" in data_files(server, "results"))
        assert tc.cleanup(["completed"]) >= 1
        eventually(lambda: not [n for n in data_files(server, "results") if n.startswith(job.job_id)])


def test_the_async_client_uploads_translates_and_downloads(server: RunningServer, clips: Path,
                                                           tmp_path: Path) -> None:
    """AsyncTranslationClient does the same: upload with progress, translate_file, a resumed download."""

    async def run() -> tuple[Path, list[int]]:
        seen: list[int] = []
        async with AsyncTranslationClient(server.url, user_id="e2e-async") as tc:
            await tc.upload(clips / "talk.mp4", on_progress=lambda done, total: seen.append(done))
            job = await tc.translate_file(clips / "lecture.mp4", "premium", target_language="ja", timeout=30)
        with DroppingProxy(server.url, drop_after_bytes=20_000) as proxy:
            async with AsyncTranslationClient(proxy.url) as tc:
                saved = await tc.download_result(job, tmp_path / "out.mp4")
            assert proxy.dropped == 1 and proxy.requests[1][1] is not None
        return saved, seen

    saved, seen = asyncio.run(run())
    assert seen[-1] == (clips / "talk.mp4").stat().st_size
    info = probe(saved)
    assert info.audio is not None and info.audio.language == "jpn"


def test_the_command_line_uploads_submits_a_file_and_downloads(server: RunningServer, clips: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`upload`, `submit --file … --wait --download` and `download` work, each with a byte progress bar."""
    assert client.main(["--url", server.url, "upload", str(clips / "talk.mp4")]) == 0
    out, err = capsys.readouterr()
    assert "talk.mp4  1.0s  mp4  h264 320x180" in out and "upload talk.mp4" in err and "100%" in err
    code = client.main(["--url", server.url, "submit", "--file", str(clips / "talk.mp4"), "--lang", "pt-BR",
                        "--role", "premium", "--wait", "--download", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    job_id = out.split()[0]
    assert f"saved {tmp_path / 'talk.pt-BR.mp4'}" in out and "download " in err
    assert client.main(["--url", server.url, "download", job_id, "-o", str(tmp_path / "again.mp4")]) == 0
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "talk.pt-BR.mp4").read_bytes()
    assert client.main(["--url", server.url, "upload", str(tmp_path / "missing.mp4")]) == 2
