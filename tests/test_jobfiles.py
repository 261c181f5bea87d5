"""Where the files of jobs live: DATA_DIR or a private folder of the run, one server each, what a restart keeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import config
from jobs import JobEngine
from server import create_app
from simulator.feed import ChangeFeed
from simulator.jobfiles import DataDir, DataDirError, JobFiles, user_cache_dir
from simulator.media.samples import write_sample
from tests.conftest import FAST, ROOT, FakeClock


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user's cache folder (XDG_CACHE_HOME) at a temporary folder."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG_CACHE_HOME is the Linux convention")
def test_without_data_dir_a_private_run_folder_is_made_and_deleted_at_close(cache_home: Path) -> None:
    """DATA_DIR unset: the files go to a run-* folder under the user's cache folder, gone after close()."""
    data_dir = DataDir.open(None)
    assert data_dir.path.parent == user_cache_dir() == cache_home / "translation-simulator"
    assert data_dir.path.name.startswith(f"run-{os.getpid()}-")
    assert data_dir.path.stat().st_mode & 0o777 == 0o700
    data_dir.close()
    assert not data_dir.path.exists()


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG_CACHE_HOME is the Linux convention")
def test_a_run_folder_left_by_a_killed_server_is_deleted_by_the_next(cache_home: Path) -> None:
    """A run folder whose lock nobody holds (its server was killed) goes when the next run folder is made."""
    root = cache_home / "translation-simulator"
    abandoned, fresh = root / "run-1-dead", root / "run-2-just-made"
    for folder in (abandoned, fresh):
        (folder / "uploads").mkdir(parents=True)
    hour_ago = time.time() - 3600
    os.utime(abandoned, (hour_ago, hour_ago))
    held = DataDir.open(None)  # a live server's folder: its lock is held
    os.utime(held.path, (hour_ago, hour_ago))
    mine = DataDir.open(None)
    assert not abandoned.exists()
    assert fresh.exists()  # too new to judge: its server may not hold its lock yet
    assert held.path.exists()
    mine.close()
    held.close()


def test_a_data_dir_in_use_is_refused_to_a_second_holder(tmp_path: Path) -> None:
    """A configured DATA_DIR is locked: a second opening is refused with a message naming the folder."""
    first = DataDir.open(str(tmp_path / "data"))
    with pytest.raises(DataDirError, match="in use by another server"):
        DataDir.open(str(tmp_path / "data"))
    first.close()
    DataDir.open(str(tmp_path / "data")).close()  # free again once released
    assert (tmp_path / "data").is_dir()  # a configured folder is kept


def test_the_server_refuses_to_start_on_a_data_dir_in_use(tmp_path: Path) -> None:
    """`python server.py` with a DATA_DIR another server holds exits 2 with one line saying so."""
    holder = DataDir.open(str(tmp_path / "data"))
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "PORT": "0"}
    try:
        result = subprocess.run([sys.executable, str(ROOT / "server.py")], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60, check=False)
    finally:
        holder.close()
    assert result.returncode == 2
    assert "in use by another server" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_app_that_handles_no_video_makes_no_folder(cache_home: Path, clock: FakeClock) -> None:
    """Apps that never see an upload or a result leave no folder anywhere (tests build hundreds of them)."""
    client = create_app(FAST, clock=clock).test_client()
    assert client.post("/translate", json={"upload_id": "nope"}).status_code == 422
    assert client.get("/uploads/nope").status_code == 404
    assert not cache_home.exists()


def test_a_restart_on_the_same_data_dir_keeps_uploads_and_drops_results_of_gone_jobs(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A new server on the same DATA_DIR (memory store: no jobs) still has the upload but no orphan result."""
    write_sample(tmp_path / "talk.mp4", seconds=1.0)
    settings = {**FAST, "DATA_DIR": str(tmp_path / "data")}
    first = create_app(settings, clock=clock)
    client = first.test_client()
    with (tmp_path / "talk.mp4").open("rb") as f:
        upload = client.post("/uploads", data={"file": (f, "talk.mp4")}).get_json()
    job = client.post("/translate", json={"role": "premium", "upload_id": upload["upload_id"]}).get_json()
    clock.advance(FAST["TRANSLATION_DELAY"])
    response = client.get(f"/results/{job['job_id']}")
    response.close()
    assert list((tmp_path / "data" / "results").glob("*.mp4"))
    first.extensions["job_files"].close()

    second = create_app(settings, clock=clock).test_client()
    assert second.get(f"/uploads/{upload['upload_id']}").get_json() == upload
    assert not list((tmp_path / "data" / "results").glob("*.mp4"))
    second.application.extensions["job_files"].close()


def test_a_keeper_that_fell_behind_the_feed_still_deletes_the_results_of_removed_jobs(
    tmp_path: Path, clock: FakeClock
) -> None:
    """When the changes it missed are no longer buffered, the results whose jobs are gone are deleted anyway."""
    engine = JobEngine(config.from_mapping({**FAST, "TRANSLATION_DELAY": 2.0}), feed=ChangeFeed(capacity=4),
                       clock=clock)
    files = JobFiles(engine, str(tmp_path / "data"))
    removed = engine.submit("premium", "alice")[0]
    clock.advance(1.0)
    kept = engine.submit("premium", "alice")[0]
    clock.advance(1.0)
    files.result(engine.get(removed["job_id"]))
    clock.advance(1.0)
    files.result(engine.get(kept["job_id"]))
    assert engine.cleanup(older_than=1.5) == 1  # the first job only
    for _ in range(3):
        engine.submit("free", "bob")  # more changes than the feed keeps: the removal is no longer buffered
    files.catch_up()
    assert [result.job_id for result in files.open().results()] == [kept["job_id"]]
    files.close()
