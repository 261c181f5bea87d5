"""The clients' transfer rules without I/O: upload headers and progress, resuming downloads, the byte progress bar."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import pytest

from simulator.client.errors import (
    BadRequestError,
    ConflictError,
    ProtocolError,
    ServerError,
    TransportError,
    WaitTimeoutError,
)
from simulator.client.pacing import Pacing
from simulator.client.progress import TransferBar, byte_size, render_transfer
from simulator.client.protocol import Answer
from simulator.client.transfer import Download, ProgressReader, suggested_name, upload_headers

ETAG = '"abc-1000-1"'


def answer(status: int, body: bytes = b"", **headers: str) -> Answer:
    """Return an answer to GET /results/<id> with these headers (names with _ for -)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    if body:
        named.setdefault("Content-Type", "application/problem+json")
    return Answer("GET", "http://sim/results/j", status, "", named, body)


def download(retries: int = 3, deadline: float = math.inf) -> Download:
    """Return a Download with a seeded generator and default pacing."""
    return Download(deadline=deadline, retries=retries, pacing=Pacing(), rng=random.Random(1))


@pytest.mark.parametrize(
    ("name", "content_type", "disposition"),
    [
        ("talk.mp4", "video/mp4", 'attachment; filename="talk.mp4"'),
        ("clip.webm", "video/webm", 'attachment; filename="clip.webm"'),
        ("notes.txt", "application/octet-stream", 'attachment; filename="notes.txt"'),
        ("tälk.mkv", "video/x-matroska", "attachment; filename=\"t_lk.mkv\"; filename*=UTF-8''t%C3%A4lk.mkv"),
    ],
)
def test_upload_headers_name_the_file_and_its_type(name: str, content_type: str, disposition: str) -> None:
    """A raw upload says its video type (else octet-stream) and its name, with filename* when not ASCII."""
    headers = upload_headers(Path(name))
    assert (headers["Content-Type"], headers["Content-Disposition"]) == (content_type, disposition)


def test_the_progress_reader_reads_a_block_at_a_time_and_reports_each() -> None:
    """The body is read in blocks no larger than asked, never past its length, each reported as sent."""
    seen: list[tuple[int, int | None]] = []
    reader = ProgressReader(io.BytesIO(b"x" * 100_000), 100_000, lambda done, total: seen.append((done, total)))
    blocks = [reader.read(16_384) for _ in range(8)]
    assert [len(b) for b in blocks] == [16_384] * 6 + [1_696, 0]
    assert len(reader) == 100_000 and seen[-1] == (100_000, 100_000) and len(seen) == 7


def test_a_fresh_download_asks_for_the_whole_file_and_takes_its_length() -> None:
    """The first try has no Range; a 200 sets the length and the ETag and starts the file."""
    d = download()
    assert "Range" not in d.headers()
    assert d.begin(answer(200, Content_Length="1000", ETag=ETAG)) is False
    assert (d.total, d.etag) == (1000, ETAG)


def test_after_a_drop_the_next_try_asks_for_the_rest_of_the_same_file() -> None:
    """With 400 bytes written, the retry sends Range: bytes=400- and If-Range with the ETag; a 206 continues."""
    d = download()
    d.headers()
    d.begin(answer(200, Content_Length="1000", ETag=ETAG))
    d.received_bytes(400)
    assert d.finished() is False
    delay = d.failed(TransportError("reset"), now=0.0)
    assert 0 < delay <= Pacing().backoff_cap
    assert d.headers() == {"Accept": "*/*", "Range": "bytes=400-", "If-Range": ETAG}
    assert d.begin(answer(206, Content_Range="bytes 400-999/1000", ETag=ETAG)) is False
    d.received_bytes(600)
    assert d.finished() is True and d.resumed_from == [400]


def test_a_200_to_a_resumed_try_starts_the_file_again() -> None:
    """If the result changed (If-Range did not match), the whole file comes and is written from its start."""
    d = download()
    d.begin(answer(200, Content_Length="1000", ETag=ETAG))
    d.received_bytes(400)
    assert d.begin(answer(200, Content_Length="1200", ETag='"other"')) is True
    assert (d.received, d.total, d.etag) == (0, 1200, '"other"')


@pytest.mark.parametrize("content_range", ["bytes 300-999/1000", "bytes */1000", "nonsense"])
def test_a_206_that_does_not_continue_the_file_is_not_this_api(content_range: str) -> None:
    """A 206 starting anywhere but the byte after those received is a ProtocolError, never spliced in."""
    d = download()
    d.begin(answer(200, Content_Length="1000", ETag=ETAG))
    d.received_bytes(400)
    with pytest.raises(ProtocolError):
        d.begin(answer(206, Content_Range=content_range, ETag=ETAG))


def test_a_416_for_the_rest_of_a_whole_file_ends_the_download() -> None:
    """Asking for bytes past the end of a file already whole (a drop after the last byte) is done, not an error."""
    d = download()
    d.begin(answer(200, Content_Length="1000", ETag=ETAG))
    d.received_bytes(1000)
    problem = b'{"status": 416, "code": "range_not_satisfiable", "title": "x"}'
    d.begin(answer(416, problem, Content_Range="bytes */1000"))
    assert d.done


def test_an_error_answer_is_raised_as_its_api_error() -> None:
    """A 409 result_not_ready is raised as the client's error for it, not retried."""
    d = download()
    problem = b'{"status": 409, "code": "result_not_ready", "title": "Conflict", "detail": "pending"}'
    with pytest.raises(ConflictError) as caught:
        d.begin(answer(409, problem))
    assert caught.value.code == "result_not_ready"
    with pytest.raises(BadRequestError):
        d.failed(BadRequestError(answer(413, b'{"status": 413, "code": "x", "title": "t"}'), {}), now=0.0)


def test_failures_are_retried_only_so_many_times_and_never_past_the_deadline() -> None:
    """Transport errors and 5xx are retried `retries` times in a row; a pause past the deadline raises at once."""
    d = download(retries=2)
    error = ServerError(answer(503, b'{"status": 503, "code": "x", "title": "t"}', Retry_After="1"), {})
    assert d.failed(error, now=0.0) >= 1.0  # Retry-After honoured
    d.failed(TransportError("reset"), now=0.0)
    with pytest.raises(TransportError):
        d.failed(TransportError("reset"), now=0.0)
    with pytest.raises(WaitTimeoutError):
        download(deadline=0.01).failed(TransportError("reset"), now=0.0)


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ("attachment; filename=talk.de.mp4", "talk.de.mp4"),
        ('attachment; filename="my talk.mp4"', "my talk.mp4"),
        ("attachment; filename=t.mp4; filename*=UTF-8''t%C3%A4lk.mp4", "tälk.mp4"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename=".hidden"', "hidden"),
        ("attachment", None),
        ("", None),
    ],
)
def test_the_suggested_name_is_a_plain_file_name(disposition: str, name: str | None) -> None:
    """The server's name is taken (filename* first) without any folder, so it cannot write elsewhere."""
    assert suggested_name(disposition) == name


def test_the_transfer_bar_prints_a_line_per_tenth_off_a_terminal() -> None:
    """Off a terminal, a line at 0 %, then at each tenth reached, and nothing more at close."""
    stream = io.StringIO()
    now = [0.0]
    bar = TransferBar(stream, "upload talk.mp4", clock=lambda: now[0], interactive=False)
    for done in range(0, 1_000_001, 50_000):
        now[0] += 0.1
        bar(done, 1_000_000)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[-1].startswith("upload talk.mp4  [####################] 100%  1.0 MB of 1.0 MB")


def test_the_transfer_bar_redraws_one_line_on_a_terminal_a_few_times_a_second() -> None:
    """On a terminal the line is redrawn in place at most 4 times a second, and ended at close."""
    stream = io.StringIO()
    now = [0.0]
    bar = TransferBar(stream, "download 5b0f4a3e", clock=lambda: now[0], interactive=True)
    for done in range(0, 100):
        now[0] += 0.01
        bar(done * 1000, 100_000)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n")


def test_a_bar_that_saw_nothing_prints_nothing() -> None:
    """A transfer that failed before its first byte leaves no bar behind its error message."""
    stream = io.StringIO()
    TransferBar(stream, "upload missing.mp4", interactive=False).close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("nbytes", "text"), [(512, "512 B"), (37_431, "37.4 kB"), (62_000_000, "62.0 MB"), (1_200_000_000, "1.20 GB")]
)
def test_byte_sizes_read_as_people_write_them(nbytes: int, text: str) -> None:
    """Byte counts are shown in decimal units with one or two decimals."""
    assert byte_size(nbytes) == text


def test_a_transfer_of_unknown_length_shows_the_bytes_so_far() -> None:
    """Without a total the line shows the bytes and the rate, no bar."""
    assert render_transfer("download x", 2_500_000, None, 1_000_000) == "download x  2.5 MB  1.0 MB/s"
