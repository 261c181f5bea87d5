"""The media routes through Flask's test client on the fake clock: uploads, submissions from them, results, cleanup.

Every video is made here with PyAV (a second of colour bars and a tone); nothing is downloaded, and no thread
runs: the result worker's step is called directly where a test needs it.
"""

from __future__ import annotations

import gc
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from flask import Flask
from flask.testing import FlaskClient

from server import create_app
from simulator.http.views.media import upload_id_in_url
from simulator.jobfiles import GENERATED_SECONDS, MIN_UPLOAD_SECONDS, JobFiles
from simulator.media import probe
from simulator.media.samples import write_sample
from tests.conftest import ADMIN_TOKEN, FAST, FakeClock

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# ------------------------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of test videos made once for the module."""
    folder = tmp_path_factory.mktemp("clips")
    write_sample(folder / "talk.mp4", seconds=1.0, audio_language="eng")
    write_sample(folder / "talk.webm", seconds=1.0)
    data = (folder / "talk.mp4").read_bytes()
    (folder / "half.mp4").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not a video\n")
    return folder


def make_app(clock: FakeClock, data_dir: Path, **settings: Any) -> Flask:
    """Build an app on the fake clock whose files live in `data_dir`."""
    return create_app({**FAST, "DATA_DIR": str(data_dir), **settings}, clock=clock)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def app(clock: FakeClock, data_dir: Path) -> Iterator[Flask]:
    app = make_app(clock, data_dir)
    yield app
    files(app).close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def files(app: Flask) -> JobFiles:
    """Return the app's JobFiles."""
    return app.extensions["job_files"]


def multipart(client: FlaskClient, path: Path, name: str | None = None) -> Any:
    """POST /uploads a file as multipart/form-data, the way `curl -F file=@path` does."""
    with path.open("rb") as f:
        return client.post("/uploads", data={"file": (f, name or path.name)}, content_type="multipart/form-data")


def upload_id(client: FlaskClient, path: Path) -> str:
    """Upload a file and return its id."""
    response = multipart(client, path)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["upload_id"]


def stored(data_dir: Path) -> list[str]:
    """Return the names of the files in DATA_DIR's uploads/, results/ and tmp/ folders."""
    return sorted(p.name for folder in ("uploads", "results", "tmp") if (data_dir / folder).is_dir()
                  for p in (data_dir / folder).iterdir())


def complete(client: FlaskClient, clock: FakeClock, **body: Any) -> dict[str, Any]:
    """Submit a premium job, let it finish on the fake clock, and return its final view."""
    response = client.post("/translate", json={"role": "premium", **body})
    assert response.status_code == 202, response.get_json()
    clock.advance(FAST["TRANSLATION_DELAY"])
    job = client.get(f"/status/{response.get_json()['job_id']}").get_json()
    assert job["status"] == "completed"
    return job


def fetch(client: FlaskClient, url: str, method: str = "GET", **headers: str) -> Any:
    """Send a request, read its whole answer and close it (a file answer holds the file open until closed)."""
    response = client.open(url, method=method, headers={k.replace("_", "-"): v for k, v in headers.items()})
    response.get_data()
    response.close()
    return response


def save(response: Any, path: Path) -> Path:
    """Write a response's body to `path` and return it."""
    path.write_bytes(response.get_data())
    return path


class CountingStream(io.BytesIO):
    """A request body that counts the bytes the server read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def raw_post(client: FlaskClient, body: io.BytesIO, *, content_length: int | None,
             content_type: str = "video/mp4") -> Any:
    """POST /uploads a raw body from a stream, with the Content-Length given (None: chunked, as a server says)."""
    # Set in the environ itself: the test client's own content_length would be the stream's real length.
    overrides: dict[str, Any] = {"wsgi.input_terminated": True} if content_length is None else {
        "CONTENT_LENGTH": str(content_length)}
    return client.post("/uploads", input_stream=body, content_type=content_type, environ_overrides=overrides)


# ------------------------------------------------------------------------------------------- uploads


def test_a_multipart_upload_answers_201_with_the_probe_fields(client: FlaskClient, clips: Path, data_dir: Path) -> None:
    """`curl -F file=@talk.mp4` answers 201, Location, and what probing the stored file found."""
    response = multipart(client, clips / "talk.mp4")
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/uploads/{body['upload_id']}"
    assert body == {"upload_id": body["upload_id"], **probe(clips / "talk.mp4").as_dict()}
    assert body["video"] == {"codec": "h264", "width": 320, "height": 180, "fps": 10.0}
    assert body["audio"] == {"codec": "aac", "channels": 1, "sample_rate": 48000, "language": "eng"}
    assert f"{body['upload_id']}.mp4" in stored(data_dir)


@pytest.mark.parametrize(
    ("query", "headers", "name"),
    [
        ("", {"Content-Disposition": 'attachment; filename="my talk.mp4"'}, "my talk.mp4"),
        ("?filename=lecture.mp4", {}, "lecture.mp4"),
        ("", {"Content-Disposition": "attachment; filename*=UTF-8''t%C3%A4lk.mp4"}, "tälk.mp4"),
        ("", {}, "upload"),
    ],
)
def test_a_raw_video_body_is_an_upload_named_as_the_sender_says(
    client: FlaskClient, clips: Path, query: str, headers: dict[str, str], name: str
) -> None:
    """A raw video/mp4 body is stored too, named by ?filename= or Content-Disposition (else `upload`)."""
    response = client.post("/uploads" + query, data=(clips / "talk.mp4").read_bytes(), content_type="video/mp4",
                           headers=headers)
    assert response.status_code == 201
    assert response.get_json()["filename"] == name


def test_get_upload_answers_the_same_json(client: FlaskClient, clips: Path) -> None:
    """GET /uploads/<id> answers what the POST answered; an unknown id is 404 media_not_found."""
    posted = multipart(client, clips / "talk.mp4").get_json()
    assert client.get(f"/uploads/{posted['upload_id']}").get_json() == posted
    missing = client.get("/uploads/0b7c2a54-3f0e-4f5e-9d59-6f1d2c3b4a50")
    assert (missing.status_code, missing.get_json()["code"]) == (404, "media_not_found")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("text file as video/mp4", 415, "not_a_video"),
        ("text file as multipart", 415, "not_a_video"),
        ("text/plain body", 415, "unsupported_content_type"),
        ("truncated mp4", 422, "unreadable_media"),
        ("multipart without a file field", 422, "validation_error"),
        ("multipart without a boundary", 400, "malformed_multipart"),
        ("multipart cut inside the file", 400, "upload_incomplete"),
        ("body shorter than its Content-Length", 400, "upload_incomplete"),
    ],
)
def test_a_bad_upload_is_refused_naming_why_and_leaves_nothing(
    client: FlaskClient, clips: Path, data_dir: Path, kind: str, status: int, code: str
) -> None:
    """Each kind of bad upload gets its 4xx problem+json, and DATA_DIR holds no file afterwards."""
    video = (clips / "talk.mp4").read_bytes()
    form = b'--B\r\nContent-Disposition: form-data; name="file"; filename="talk.mp4"\r\n\r\n'
    if kind == "text file as video/mp4":
        response = client.post("/uploads", data=(clips / "notes.txt").read_bytes(), content_type="video/mp4")
    elif kind == "text file as multipart":
        response = multipart(client, clips / "notes.txt")
    elif kind == "text/plain body":
        response = client.post("/uploads", data=b"hello", content_type="text/plain")
    elif kind == "truncated mp4":
        response = multipart(client, clips / "half.mp4")
    elif kind == "multipart without a file field":
        response = client.post("/uploads", data={"video": "talk.mp4"}, content_type="multipart/form-data")
    elif kind == "multipart without a boundary":
        response = client.post("/uploads", data=form + video, content_type="multipart/form-data")
    elif kind == "multipart cut inside the file":
        response = client.post("/uploads", data=form + video[:5000], content_type="multipart/form-data; boundary=B")
    else:
        response = raw_post(client, io.BytesIO(video[:5000]), content_length=len(video))
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
    assert stored(data_dir) == []


def test_a_video_longer_than_max_media_seconds_is_refused(clock: FakeClock, tmp_path: Path, clips: Path) -> None:
    """A 1 s video with MAX_MEDIA_SECONDS 0.5 is 422 media_too_long, with both durations, and is not kept."""
    app = make_app(clock, tmp_path / "data", MAX_MEDIA_SECONDS=0.5)
    response = multipart(app.test_client(), clips / "talk.mp4")
    body = response.get_json()
    assert (response.status_code, body["code"], body["max_seconds"]) == (422, "media_too_long", 0.5)
    assert body["duration_seconds"] == pytest.approx(1.0, abs=0.05)
    assert stored(tmp_path / "data") == []
    files(app).close()


@pytest.mark.parametrize("content_type", ["video/mp4", "multipart/form-data; boundary=B"])
def test_an_oversized_upload_is_refused_from_its_content_length_without_reading_it(
    clock: FakeClock, tmp_path: Path, content_type: str
) -> None:
    """A Content-Length over MAX_UPLOAD_BYTES (plus the form's allowance) is 413 before one byte is read."""
    app = make_app(clock, tmp_path / "data", MAX_UPLOAD_BYTES=10_000)
    body = CountingStream(b"\0" * 200_000)
    response = raw_post(app.test_client(), body, content_length=200_000, content_type=content_type)
    assert (response.status_code, response.get_json()["code"]) == (413, "upload_too_large")
    assert body.bytes_read == 0
    assert stored(tmp_path / "data") == []
    files(app).close()


def test_a_chunked_upload_is_cut_off_as_soon_as_it_passes_the_limit(clock: FakeClock, tmp_path: Path) -> None:
    """A body without Content-Length is read only until it passes MAX_UPLOAD_BYTES, then 413, nothing kept."""
    app = make_app(clock, tmp_path / "data", MAX_UPLOAD_BYTES=3 << 20)
    body = CountingStream(b"\0" * (50 << 20))
    response = raw_post(app.test_client(), body, content_length=None)
    assert (response.status_code, response.get_json()["code"]) == (413, "upload_too_large")
    assert body.bytes_read <= (3 << 20) + (1 << 20)  # the limit and the one chunk that passed it
    assert stored(tmp_path / "data") == []
    files(app).close()


def test_the_upload_limit_is_the_upload_routes_alone(client: FlaskClient, clips: Path) -> None:
    """A 100 KiB video uploads while POST /translate still refuses a body over 64 KiB."""
    big = clips / "big.mp4"
    write_sample(big, seconds=8.0, width=640, height=360)
    assert big.stat().st_size > 100 * 1024
    assert multipart(client, big).status_code == 201
    padded = json.dumps({"role": "free", "video_url": "x" * 70_000})
    assert client.post("/translate", data=padded).status_code == 413


def test_an_upload_that_cannot_fit_is_refused_with_507_before_reading(clock: FakeClock, tmp_path: Path) -> None:
    """A body larger than what MAX_DATA_BYTES could make free is 507 storage_full before any byte is read."""
    app = make_app(clock, tmp_path / "data", MAX_DATA_BYTES=1 << 20)
    body = CountingStream(b"\0" * (2 << 20))
    response = raw_post(app.test_client(), body, content_length=2 << 20)
    assert (response.status_code, response.get_json()["code"]) == (507, "storage_full")
    assert body.bytes_read == 0
    files(app).close()


# ------------------------------------------------------------------------------------------- submitting from uploads


def test_a_job_from_an_upload_shows_it_and_is_timed_by_its_duration(
    clock: FakeClock, tmp_path: Path, clips: Path
) -> None:
    """POST /translate with upload_id: the job shows the upload, and DELAY_PER_MEDIA_SECOND 4 makes it take ~4 s."""
    app = make_app(clock, tmp_path / "data", DELAY_PER_MEDIA_SECOND=4.0, PREMIUM_DELAY_FACTOR=1.0)
    client = app.test_client()
    uploaded = upload_id(client, clips / "talk.mp4")
    job = client.post("/translate", json={"role": "premium", "upload_id": uploaded}).get_json()
    assert (job["upload_id"], job["result_url"]) == (uploaded, None)
    assert job["eta_seconds"] == pytest.approx(4.0, abs=0.2)
    files(app).close()


def test_an_unknown_upload_id_is_a_422_naming_it_and_stores_nothing(client: FlaskClient) -> None:
    """An upload_id the server does not hold is refused (422, field upload_id) and no job is made."""
    response = client.post("/translate", json={"upload_id": "0b7c2a54-3f0e-4f5e-9d59-6f1d2c3b4a50"})
    body = response.get_json()
    assert (response.status_code, body["code"]) == (422, "validation_error")
    assert body["errors"][0]["field"] == "upload_id"
    assert client.get("/healthz").get_json()["jobs"] == 0


def test_refused_upload_submissions_do_not_use_up_the_hourly_limit(client: FlaskClient) -> None:
    """Free submissions naming a missing upload are refused without counting against RATE_LIMIT."""
    for _ in range(FAST["RATE_LIMIT"] + 2):
        assert client.post("/translate", json={"upload_id": "nope"}).status_code == 422
    assert client.post("/translate", json={"role": "free"}).status_code == 202


# ------------------------------------------------------------------------------------------- results


def test_the_result_of_an_upload_is_it_remuxed_with_the_target_language(
    client: FlaskClient, clock: FakeClock, clips: Path, tmp_path: Path
) -> None:
    """The download is an MP4 of the same pictures, its audio and a subtitle track tagged German, named talk.de.mp4."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"), target_language="de")
    assert job["result_url"] == f"/results/{job['job_id']}"
    response = fetch(client, job["result_url"])
    assert response.status_code == 200
    assert response.mimetype == "video/mp4"
    assert response.headers["Content-Disposition"] == "attachment; filename=talk.de.mp4"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"')
    info = probe(save(response, tmp_path / "out.mp4"))
    assert [(s.type, s.language) for s in info.streams] == [("video", None), ("audio", "deu"), ("subtitle", "deu")]
    assert info.duration_seconds == pytest.approx(1.0, abs=0.05)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.metadata["job_id"] == job["job_id"]


def test_a_webm_upload_gives_a_matroska_result(client: FlaskClient, clock: FakeClock, clips: Path,
                                               tmp_path: Path) -> None:
    """VP8 and Opus cannot go into MP4 without re-encoding: the result is Matroska, tagged all the same."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.webm"), target_language="fr")
    response = fetch(client, job["result_url"])
    assert response.mimetype == "video/x-matroska"
    assert response.headers["Content-Disposition"] == "attachment; filename=talk.fr.mkv"
    info = probe(save(response, tmp_path / "out.mkv"))
    assert {(s.type, s.language) for s in info.streams if s.type != "video"} == {("audio", "fre"), ("subtitle", "fre")}


def test_a_job_without_an_upload_gets_a_generated_video(client: FlaskClient, clock: FakeClock, tmp_path: Path) -> None:
    """A plain video_url job's result is a generated MP4 of GENERATED_SECONDS with the language's tags."""
    job = complete(client, clock, video_url="https://videos.example/talk.mp4", target_language="es")
    response = fetch(client, job["result_url"])
    assert response.headers["Content-Disposition"] == f"attachment; filename=translation-{job['job_id'][:8]}.es.mp4"
    info = probe(save(response, tmp_path / "out.mp4"))
    assert info.duration_seconds == pytest.approx(GENERATED_SECONDS, abs=0.2)
    assert info.audio is not None and info.audio.language == "spa"


@pytest.mark.parametrize(
    ("range_header", "status", "part"),
    [
        ("bytes=0-99", 206, slice(0, 100)),
        ("bytes=100-", 206, slice(100, None)),
        ("bytes=-100", 206, slice(-100, None)),
        ("bytes=0-0", 206, slice(0, 1)),
    ],
)
def test_range_requests_answer_the_bytes_asked_for(
    client: FlaskClient, clock: FakeClock, clips: Path, range_header: str, status: int, part: slice
) -> None:
    """A Range gets 206 with exactly those bytes, Content-Length and Content-Range."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"), target_language="de")
    whole = fetch(client, job["result_url"]).get_data()
    response = fetch(client, job["result_url"], Range=range_header)
    assert response.status_code == status
    assert response.get_data() == whole[part]
    assert int(response.headers["Content-Length"]) == len(whole[part])
    if status == 206:
        first = part.start % len(whole) if part.start is not None else 0
        assert response.headers["Content-Range"] == f"bytes {first}-{first + len(whole[part]) - 1}/{len(whole)}"


def test_if_range_resumes_only_the_same_file(client: FlaskClient, clock: FakeClock, clips: Path) -> None:
    """If-Range with the result's ETag gets the rest (206); with another ETag, the whole file (200)."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"), target_language="de")
    whole = fetch(client, job["result_url"])
    etag = whole.headers["ETag"]
    same = fetch(client, job["result_url"], Range="bytes=1000-", If_Range=etag)
    other = fetch(client, job["result_url"], Range="bytes=1000-", If_Range='"another"')
    assert (same.status_code, same.get_data()) == (206, whole.get_data()[1000:])
    assert (other.status_code, other.get_data()) == (200, whole.get_data())


@pytest.mark.parametrize("range_header", ["bytes={length}-", "bytes=0-9,20-29", "pages=1", "bytes=9-3"])
def test_a_range_that_cannot_be_served_is_416_with_the_files_length(
    client: FlaskClient, clock: FakeClock, clips: Path, range_header: str
) -> None:
    """A Range past the end, of several ranges, or malformed is 416 with Content-Range: bytes */<length>."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"), target_language="de")
    length = len(fetch(client, job["result_url"]).get_data())
    response = fetch(client, job["result_url"], Range=range_header.format(length=length))
    assert (response.status_code, response.get_json()["code"]) == (416, "range_not_satisfiable")
    assert response.headers["Content-Range"] == f"bytes */{length}"


def test_head_answers_the_headers_without_the_file(client: FlaskClient, clock: FakeClock, clips: Path) -> None:
    """HEAD /results/<id> says the length, type and name without sending the bytes."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"))
    response = fetch(client, job["result_url"], "HEAD")
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    assert response.get_data() == b""


def test_a_result_is_not_ready_before_the_job_completes(client: FlaskClient) -> None:
    """A pending job's result is 409 result_not_ready, with Retry-After from its ETA."""
    job = client.post("/translate", json={"role": "premium"}).get_json()
    response = fetch(client, f"/results/{job['job_id']}")
    body = response.get_json()
    assert (response.status_code, body["code"], body["job_status"]) == (409, "result_not_ready", "pending")
    assert response.headers["Retry-After"] == "5"


def test_a_cancelled_job_never_has_a_result(client: FlaskClient) -> None:
    """A cancelled job's result is 409 and says it never will exist; an unknown job is 404."""
    job = client.post("/translate", json={"role": "premium"}).get_json()
    client.post(f"/cancel/{job['job_id']}", headers=ADMIN, json={})
    response = fetch(client, f"/results/{job['job_id']}")
    assert (response.status_code, response.get_json()["job_status"]) == (409, "cancelled")
    assert "never" in response.get_json()["detail"]
    assert fetch(client, "/results/00000000-0000-4000-8000-000000000000").get_json()["code"] == "job_not_found"


def test_the_oldest_result_is_evicted_for_a_new_one_and_then_gone(clock: FakeClock, tmp_path: Path) -> None:
    """With room for one generated video, making a second evicts the first, whose download is then 410."""
    app = make_app(clock, tmp_path / "data", MAX_DATA_BYTES=3 << 19)  # 1.5 MiB
    client = app.test_client()
    first = complete(client, clock)
    assert fetch(client, first["result_url"]).status_code == 200
    second = complete(client, clock)
    assert fetch(client, second["result_url"]).status_code == 200
    gone = fetch(client, first["result_url"])
    assert (gone.status_code, gone.get_json()["code"]) == (410, "result_evicted")
    files(app).close()


def test_the_worker_step_makes_an_upload_jobs_result_at_completion(
    app: Flask, client: FlaskClient, clock: FakeClock, clips: Path, data_dir: Path
) -> None:
    """Following the feed, the worker's step makes the result of a completed upload job before anyone asks."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"))
    assert f"{job['job_id']}.mp4" not in stored(data_dir)
    files(app).catch_up()
    assert files(app).produce_due() is True
    assert f"{job['job_id']}.mp4" in stored(data_dir)
    assert files(app).produce_due() is False


def test_the_worker_leaves_jobs_without_an_upload_to_their_first_download(
    app: Flask, client: FlaskClient, clock: FakeClock, data_dir: Path
) -> None:
    """A completed plain job is not due a result: nothing is generated until it is downloaded."""
    complete(client, clock, video_url="https://videos.example/a.mp4")
    files(app).catch_up()
    assert files(app).produce_due() is False
    assert not [name for name in stored(data_dir) if name.endswith(".mp4")]


# ------------------------------------------------------------------------------------------- files removed with jobs


def test_cleanup_removes_the_result_and_later_the_upload(
    app: Flask, client: FlaskClient, clock: FakeClock, clips: Path, data_dir: Path
) -> None:
    """After POST /cleanup the job's result file is deleted, and its upload once its retention has passed."""
    uploaded = upload_id(client, clips / "talk.mp4")
    job = complete(client, clock, upload_id=uploaded)
    fetch(client, job["result_url"])
    assert f"{job['job_id']}.mp4" in stored(data_dir)
    assert client.post("/cleanup", headers=ADMIN, json={}).get_json()["removed"] == 1
    files(app).catch_up()
    assert stored(data_dir) == sorted([f"{uploaded}.json", f"{uploaded}.mp4"])
    clock.advance(max(FAST.get("JOB_TTL", 3600.0), MIN_UPLOAD_SECONDS))
    files(app).catch_up()
    assert stored(data_dir) == []


def test_job_ttl_removes_the_result_with_the_job(clock: FakeClock, tmp_path: Path, clips: Path) -> None:
    """A finished job expiring after JOB_TTL takes its result file with it."""
    app = make_app(clock, tmp_path / "data", JOB_TTL=30.0)
    client = app.test_client()
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"))
    fetch(client, job["result_url"])
    clock.advance(31.0)
    assert client.get(f"/status/{job['job_id']}").status_code == 404
    files(app).catch_up()
    assert not [name for name in stored(tmp_path / "data") if name.startswith(job["job_id"])]
    files(app).close()


def test_an_upload_is_kept_while_a_stored_job_needs_it(
    app: Flask, client: FlaskClient, clock: FakeClock, clips: Path, data_dir: Path
) -> None:
    """An upload named by a queued job outlives its retention; an unused one is deleted after it."""
    app.extensions["simulator"].engine.configure({"PROCESSING_MODE": "manual"})
    used = upload_id(client, clips / "talk.mp4")
    unused = upload_id(client, clips / "talk.mp4")
    client.post("/translate", json={"upload_id": used})
    clock.advance(3600.0 + 1)
    files(app).catch_up()
    assert client.get(f"/uploads/{used}").status_code == 200
    assert client.get(f"/uploads/{unused}").status_code == 404


def test_injected_faults_on_downloads_leave_no_file_open(clock: FakeClock, tmp_path: Path) -> None:
    """With FAULT_RATE 1 every download fails or is late on purpose; an answer lost after the work closes its file."""
    app = make_app(clock, tmp_path / "data", FAULT_DELAY=0.0)
    client = app.test_client()
    job = complete(client, clock)
    app.extensions["simulator"].engine.configure({"FAULT_RATE": 1.0})
    statuses = {fetch(client, job["result_url"]).status_code for _ in range(30)}
    gc.collect()  # an unclosed file would be reported here (warnings are errors in this suite)
    assert statuses <= {200, 500, 503} and 500 in statuses
    files(app).close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:4777/uploads/0b7c2a54-3f0e-4f5e-9d59-6f1d2c3b4a50", "0b7c2a54-3f0e-4f5e-9d59-6f1d2c3b4a50"),
        ("http://127.0.0.1:4777/uploads/abc/", "abc"),
        ("http://127.0.0.1:4778/uploads/abc", None),  # another server
        ("https://videos.example/uploads/abc", None),
        ("http://127.0.0.1:4777/uploads/abc/file", None),
        ("http://127.0.0.1:4777/uploads/", None),
    ],
)
def test_a_url_of_an_upload_of_this_server_names_the_upload(url: str, expected: str | None) -> None:
    """upload_id_in_url (for routes that take a video_url) finds this server's upload ids, nothing else."""
    assert upload_id_in_url(url, "http://127.0.0.1:4777/") == expected


def test_a_reset_deletes_every_upload_and_result(
    app: Flask, client: FlaskClient, clock: FakeClock, clips: Path, data_dir: Path
) -> None:
    """POST /admin/reset leaves DATA_DIR as a fresh server's: no upload, no result."""
    job = complete(client, clock, upload_id=upload_id(client, clips / "talk.mp4"))
    fetch(client, job["result_url"])
    upload_id(client, clips / "talk.mp4")
    assert client.post("/admin/reset", headers=ADMIN, json={}).status_code == 200
    assert stored(data_dir) == []
    assert client.post("/translate", json={"upload_id": job["upload_id"]}).status_code == 422


def test_a_browser_front_end_may_resume_downloads_and_read_their_names(clock: FakeClock, tmp_path: Path) -> None:
    """With CORS_ORIGINS, a preflight allows Range and If-Range, and a download exposes its name and range."""
    origin = "https://app.example"
    app = make_app(clock, tmp_path / "data", CORS_ORIGINS=origin)
    client = app.test_client()
    job = complete(client, clock)
    preflight = client.options(job["result_url"], headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
    assert {"Range", "If-Range"} <= {h.strip() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    response = fetch(client, job["result_url"], Origin=origin, Range="bytes=0-9")
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Content-Disposition", "Content-Range", "Accept-Ranges", "ETag"} <= exposed
    files(app).close()
