"""Uploads and resumable downloads without any I/O: what to send, what answers mean, when to resume or give up.

Both clients stream the bytes their own way (requests, httpx) and follow these rules:

- **Upload**: the file goes as a raw body (`Content-Type` guessed from its name, `video/*` or
  application/octet-stream; its name in `Content-Disposition`) of known length, read a block at a time — never
  whole — and `on_progress(sent_bytes, total_bytes)` is called as it goes. An upload is not retried: the server
  keeps nothing of a failed one, and a file is sent again only when the caller says so.
- **Download**: `GET /results/<job_id>` into `<path>.part`, renamed to `path` once whole. When the connection
  drops (or the server answers 5xx), the next try asks only for the rest (`Range: bytes=<received>-` with
  `If-Range: <ETag>`): a 206 continues the file, a 200 (the result changed) starts it again. Tries are paced like
  every other retry (`pacing.retry_delay`, Retry-After honoured) and bounded by a count and the deadline.
"""

from __future__ import annotations

import mimetypes
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from simulator.client.errors import (
    ServerError,
    ServerUnreachableError,
    TranslationError,
    TransportError,
    WaitTimeoutError,
)
from simulator.client.pacing import Pacing, retry_delay
from simulator.client.protocol import Answer, check, json_object

#: on_progress(done_bytes, total_bytes or None) of an upload or a download.
TransferProgress = Callable[[int, int | None], None]
#: Bytes read from the file per block of an upload, and written per piece of a download.
BLOCK_BYTES = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*UTF-8'[^']*'([^;\s]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded video as the server probed it (the JSON of POST /uploads)."""

    upload_id: str
    filename: str
    size_bytes: int
    duration_seconds: float
    container: str
    video: dict[str, Any]
    audio: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Upload:
        """Build an Upload from the server's JSON."""
        return cls(
            upload_id=str(data["upload_id"]),
            filename=str(data.get("filename", "")),
            size_bytes=int(data["size_bytes"]),
            duration_seconds=float(data["duration_seconds"]),
            container=str(data.get("container", "")),
            video=dict(data.get("video") or {}),
            audio=None if data.get("audio") is None else dict(data["audio"]),
            raw=dict(data),
        )


def upload_headers(path: Path) -> dict[str, str]:
    """Return the headers of a raw upload of `path`: its media type and its name (RFC 6266, UTF-8 safe)."""
    guessed, _ = mimetypes.guess_type(path.name)
    media_type = guessed if guessed and guessed.startswith("video/") else "application/octet-stream"
    ascii_name = path.name.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    disposition = f'attachment; filename="{ascii_name}"'
    if ascii_name != path.name:
        disposition += f"; filename*=UTF-8''{quote(path.name, safe='')}"
    return {"Content-Type": media_type, "Content-Disposition": disposition, "Accept": "application/json"}


def uploaded(answer: Answer) -> Upload:
    """Return the Upload a POST /uploads answer describes; APIError for an error, ProtocolError if foreign."""
    data = json_object(answer)
    try:
        return Upload.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise answer.foreign(f"not an upload: {e!r}") from e


class ProgressReader:
    """A file read a block at a time for an HTTP body of known length, reporting the bytes read so far."""

    def __init__(self, file: Any, total: int, on_progress: TransferProgress | None) -> None:
        self._file = file
        self.total = total
        self.sent = 0
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self.total

    def read(self, size: int = -1) -> bytes:
        """Read the next block (at most BLOCK_BYTES, and never past `total`) and report it."""
        wanted = BLOCK_BYTES if size is None or size < 0 else min(size, BLOCK_BYTES)
        block = self._file.read(min(wanted, self.total - self.sent))
        if block:
            self.sent += len(block)
            if self._on_progress is not None:
                self._on_progress(self.sent, self.total)
        return block

    def __iter__(self) -> Any:
        while block := self.read(BLOCK_BYTES):
            yield block


class Download:
    """One resumable download: the Range to ask for, what each answer means, and whether to try again.

    Call `headers()` before each try, `begin(answer)` with the answer's status and headers (its body not read),
    `received_bytes(n)` for each piece written, `finished()` when the body ended without an error, and
    `failed(error, now)` when a try failed: it returns the pause before the next one, or raises.
    """

    def __init__(self, *, deadline: float, retries: int, pacing: Pacing, rng: random.Random,
                 on_progress: TransferProgress | None = None) -> None:
        self.deadline = deadline
        self.retries = retries
        self.received = 0
        self.total: int | None = None
        self.etag: str | None = None
        self.tries = 0
        self.resumed_from: list[int] = []  # the offset each resumed try started at (for tests and curiosity)
        self._failures = 0
        self._pacing = pacing
        self._rng = rng
        self._on_progress = on_progress
        self.done = False
        #: The file name the server suggests (Content-Disposition), once an answer came.
        self.filename: str | None = None

    def headers(self) -> dict[str, str]:
        """Return the headers of the next try: the rest of the file, if part of it arrived already."""
        self.tries += 1
        headers = {"Accept": "*/*"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
            if self.etag:
                headers["If-Range"] = self.etag
        return headers

    def begin(self, answer: Answer) -> bool:
        """Judge an answer's status and headers; return True when the file must be written from its start again.

        Raises the APIError of an error answer (whose whole body `answer` carries), ProtocolError for a foreign
        or inconsistent one. A 416 to a request for the rest of a file already whole ends the download.
        """
        if answer.status == 416 and self.received and self.total == self.received:
            self.done = True
            return False
        if answer.status not in (200, 206):
            check(answer)  # raises for every error status
            raise answer.foreign(f"status {answer.status} where a file was expected")
        etag = answer.headers.get("ETag")
        self.filename = self.filename or suggested_name(answer.headers.get("Content-Disposition", ""))
        if answer.status == 200:
            restart = self.received > 0
            if restart:
                self.resumed_from.append(0)
            self.received = 0
            self.total = _length(answer)
            self.etag = etag
            return restart
        match = _CONTENT_RANGE.fullmatch(answer.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != self.received or (self.etag and etag and etag != self.etag):
            raise answer.foreign(f"a 206 that does not continue the file at byte {self.received} "
                                 f"(Content-Range {answer.headers.get('Content-Range')!r})")
        if match.group(3) != "*":
            self.total = int(match.group(3))
        self.resumed_from.append(self.received)
        return False

    def received_bytes(self, nbytes: int) -> None:
        """Count `nbytes` more written, and report the progress."""
        self.received += nbytes
        if self._on_progress is not None:
            self._on_progress(self.received, self.total)

    def finished(self) -> bool:
        """Tell whether the body that just ended completes the file (False: it ended early; try again)."""
        self.done = self.total is None or self.received >= self.total
        if self.done:
            self._failures = 0
        return self.done

    def failed(self, error: TranslationError, now: float) -> float:
        """Return the pause before the next try after `error`, or raise it when it is fatal or tries ran out."""
        if not isinstance(error, (TransportError, ServerError)):
            raise error
        self._failures += 1
        if self._failures > self.retries:
            raise error
        delay = retry_delay(self._failures, getattr(error, "retry_after", None), self._rng, self._pacing)
        if now + delay >= self.deadline:
            if isinstance(error, TransportError):
                raise ServerUnreachableError(f"download not finished before the deadline: {error}", None, error)
            raise WaitTimeoutError(f"download not finished before the deadline: {error}", None, error)
        return delay


def partial_path(path: Path, job_id: str) -> Path:
    """Return where a download is written until whole: `<path>.part`, or `<folder>/<job_id>.part` for a folder."""
    return path / f"{job_id}.part" if path.is_dir() else path.with_name(path.name + ".part")


def final_path(path: Path, download: Download, job_id: str) -> Path:
    """Return where a whole download goes: `path`, or in a folder the name the server suggested."""
    return path / (download.filename or f"{job_id}.mp4") if path.is_dir() else path


def suggested_name(disposition: str) -> str | None:
    """Return the file name a Content-Disposition suggests (filename* first), without any folder; None if none."""
    extended = _FILENAME_STAR.search(disposition)  # RFC 6266: filename* wins over filename
    if extended:
        name = unquote(extended.group(1), errors="replace")
    else:
        message = Message()
        message["Content-Disposition"] = disposition
        name = message.get_filename()
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    return name or None


def _length(answer: Answer) -> int | None:
    try:
        length = int(answer.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def ended_early(received: int, total: int | None) -> TransportError:
    """Return the error of a body that ended before its length: the connection dropped."""
    return TransportError(f"the download stopped after {received} of {total} bytes")
