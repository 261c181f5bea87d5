"""The data directory: uploads streamed to disk and checked, results per job, and a bound on the space they take.

Layout under DATA_DIR::

    tmp/                 uploads and results being written (emptied at start-up)
    uploads/<id>.<ext>   an accepted upload; <id>.json beside it holds what `probe` found and the original name
    results/<job>.<ext>  a job's result (.mp4 or .mkv); <job>.json beside it

Every file is written under a temporary name and renamed into place, so the directory never shows a half-written
upload or result, and the index is rebuilt from the JSON sidecars when a store opens an existing directory.

Space: `usage_bytes()` counts every stored file and sidecar plus the bytes of writes in progress. A write that would
pass `max_data_bytes` first evicts results, oldest first (their jobs stay; `result()` then raises ResultGone);
uploads are never evicted, since a queued job may still need them. When even that cannot make room, the write is
refused with StorageFull and its partial file deleted.

Thread-safe: one lock guards the index and the byte counts; the slow work (receiving a body, probing, remuxing)
happens outside it, each write in its own temporary file. A file that is deleted or evicted while a reader has it
open stays readable through that open file (POSIX), so serve downloads from an open file object.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from .errors import MediaNotFound, MediaTooLong, ResultGone, StorageFull, TooLarge, UnreadableMedia, UnsupportedMedia
from .languages import resolve_language
from .probe import MediaInfo, probe
from .results import generate_video, make_result

CHUNK_BYTES = 1 << 20  # read and write a body a mebibyte at a time
#: Room held for a sidecar before it is written (they are a few hundred bytes to a couple of kilobytes).
SIDECAR_RESERVE_BYTES = 16 << 10
#: Generated results take about 12 KB per second (320x180 bars at 10 fps and a mono tone); room held per second.
GENERATED_BYTES_PER_SECOND = 16 << 10
#: Room held beyond the upload's size for a remuxed result (subtitle track, metadata, MP4 index).
RESULT_OVERHEAD_BYTES = 256 << 10
MEDIA_TYPES = {"mp4": "video/mp4", "mkv": "video/x-matroska"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_MAX_TOMBSTONES = 100_000


@dataclass(frozen=True)
class Upload:
    """An accepted upload: its id, what probing found (with the sender's file name) and when it was stored."""

    upload_id: str
    info: MediaInfo
    created_at: float

    @property
    def path(self) -> Path:
        """Return where the upload is stored."""
        return self.info.path

    def as_dict(self) -> dict[str, Any]:
        """Return the API's JSON for the upload: its id, then the probe's fields."""
        return {"upload_id": self.upload_id, **self.info.as_dict()}


@dataclass(frozen=True)
class Result:
    """A job's result file: where it is, what it holds, how to name it in a download, and what it came from."""

    job_id: str
    info: MediaInfo
    language: str  # the language tag the result was made for ("de", "pt-BR")
    upload_id: str | None  # the upload it was remuxed from; None when generated
    generated: bool  # a generated video (no upload, or an upload that could not be remuxed)
    download_name: str  # e.g. "talk.de.mp4"
    created_at: float

    @property
    def path(self) -> Path:
        """Return where the result is stored."""
        return self.info.path

    @property
    def size_bytes(self) -> int:
        """Return the result file's size."""
        return self.info.size_bytes

    @property
    def media_type(self) -> str:
        """Return the Content-Type to serve the result with."""
        return MEDIA_TYPES.get(self.path.suffix.lstrip("."), "application/octet-stream")


class MediaStore:
    """Uploads and results under one data directory, within a byte budget (see the module's description).

    The limits are attributes that may be changed while the store is in use (a runtime setting); None means
    no limit. A lower `max_data_bytes` takes effect at the next write, which evicts results as needed.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        max_upload_bytes: int | None = None,
        max_media_seconds: float | None = None,
        max_data_bytes: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (or create) the data directory, empty its tmp/ folder and index what it already holds."""
        self.root = Path(data_dir)
        self.max_upload_bytes = max_upload_bytes
        self.max_media_seconds = max_media_seconds
        self.max_data_bytes = max_data_bytes
        self.chunk_bytes = chunk_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._results: OrderedDict[str, Result] = OrderedDict()  # oldest first: the eviction order
        self._disk: dict[Path, int] = {}  # bytes of each stored file and sidecar
        self._used = 0
        self._reserved = 0
        self._evicted: OrderedDict[str, float] = OrderedDict()  # job id → when its result was evicted
        self._tmp = self.root / "tmp"
        self._upload_dir = self.root / "uploads"
        self._result_dir = self.root / "results"
        for folder in (self._tmp, self._upload_dir, self._result_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():  # writes a previous process did not finish
            _remove(leftover)
        self._load()

    # ------------------------------------------------------------------------------------------ uploads

    def check_upload_size(self, content_length: int | None) -> None:
        """Raise TooLarge if a declared body size is over the upload limit (before reading any of it)."""
        if content_length is not None and self.max_upload_bytes is not None and content_length > self.max_upload_bytes:
            raise TooLarge(f"The upload is {content_length} bytes; the limit is {self.max_upload_bytes} bytes.",
                           max_bytes=self.max_upload_bytes)

    def save_upload(
        self,
        body: BinaryIO | Iterable[bytes],
        *,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> Upload:
        """Stream a body (a file object or byte chunks) to disk, probe it and keep it; return the Upload.

        The body is never held whole in memory. Refused, with the partial file deleted: a declared or actual size
        over `max_upload_bytes` (TooLarge, raised before the chunk that would pass the limit is written), a body
        shorter than its declared `content_length` (UnreadableMedia), not a video (NotAVideo), unreadable or
        truncated (UnreadableMedia), longer than `max_media_seconds` (MediaTooLong), no room (StorageFull).
        """
        self.check_upload_size(content_length)
        name = _clean_filename(filename) or "upload"
        upload_id = str(uuid.uuid4())
        temp = self._tmp / f"{upload_id}.part"
        final: Path | None = None
        hold = _Hold(self)
        try:
            hold.add(SIDECAR_RESERVE_BYTES)
            written = self._receive(body, temp, hold)
            if content_length is not None and written < content_length:
                raise UnreadableMedia(f"The upload of {name!r} ended after {written} of {content_length} bytes.",
                                      received_bytes=written)
            info = probe(temp, filename=name)
            if self.max_media_seconds is not None and info.duration_seconds > self.max_media_seconds:
                raise MediaTooLong(f"{name!r} lasts {info.duration_seconds:.1f} s; the limit is "
                                   f"{self.max_media_seconds:g} s.", duration_seconds=info.duration_seconds,
                                   max_seconds=self.max_media_seconds)
            final = self._upload_dir / f"{upload_id}.{_suffix(info.container)}"
            os.replace(temp, final)
            upload = Upload(upload_id, replace(info, path=final), self._clock())
            sidecar = _write_sidecar(final, {"upload_id": upload_id, "created_at": upload.created_at,
                                             "info": upload.info.to_json()})
        except BaseException:
            for path in (temp, final, final and _sidecar_path(final)):
                if path is not None:
                    _remove(path)
            hold.release()
            raise
        with self._lock:
            hold.settle()
            self._add_file(final, info.size_bytes)
            self._add_file(sidecar, sidecar.stat().st_size)
            self._uploads[upload_id] = upload
        return upload

    def upload(self, upload_id: str) -> Upload:
        """Return an upload; raise MediaNotFound if there is none with this id."""
        with self._lock:
            found = self._uploads.get(upload_id) if _SAFE_ID.fullmatch(upload_id) else None
        if found is None:
            raise MediaNotFound(f"There is no upload {upload_id!r}.", upload_id=upload_id)
        return found

    def uploads(self) -> list[Upload]:
        """Return every upload, oldest first."""
        with self._lock:
            return sorted(self._uploads.values(), key=lambda u: u.created_at)

    def delete_upload(self, upload_id: str) -> bool:
        """Delete an upload and its sidecar; return whether there was one."""
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
            if upload is None:
                return False
            self._drop_files(upload.path)
        return True

    # ------------------------------------------------------------------------------------------ results

    def make_result(
        self,
        job_id: str,
        *,
        language: str | None,
        upload_id: str | None = None,
        seconds: float | None = None,
        title: str | None = None,
    ) -> Result:
        """Produce and keep a job's result: the upload remuxed, or (no upload) a generated video of `seconds`.

        An upload that cannot be remuxed without re-encoding (UnsupportedMedia) gets a generated video of its
        duration instead, marked `generated`. A previous result of the job is replaced. Raises MediaNotFound for
        an unknown upload and StorageFull when there is no room even after evicting older results.
        """
        if not _SAFE_ID.fullmatch(job_id):
            raise ValueError(f"job id {job_id!r} is not a safe file name")
        upload = self.upload(upload_id) if upload_id is not None else None
        if upload is None and (seconds is None or seconds <= 0):
            raise ValueError("a result without an upload needs a positive duration in seconds")
        lang = resolve_language(language)
        duration = upload.info.duration_seconds if upload else float(seconds or 0)
        estimate = (upload.info.size_bytes + RESULT_OVERHEAD_BYTES if upload
                    else int(duration * GENERATED_BYTES_PER_SECOND) + RESULT_OVERHEAD_BYTES)
        hold = _Hold(self)
        temp_dir = self._tmp / f"{job_id}.{uuid.uuid4().hex}"
        try:
            hold.add(estimate + SIDECAR_RESERVE_BYTES)
            temp_dir.mkdir()
            info, generated = self._produce(temp_dir / job_id, upload, lang.tag, duration, job_id, title)
            if info.size_bytes > estimate:  # more than was held: make room for the rest, or give up
                hold.add(info.size_bytes - estimate)
            final = self._result_dir / info.path.name
            stem = Path(upload.info.filename).stem if upload and not generated else f"translation-{job_id[:8]}"
            tag = re.sub(r"[^A-Za-z0-9-]+", "_", lang.tag)  # free text when the language is unknown
            result = Result(job_id=job_id, info=replace(info, path=final), language=lang.tag,
                            upload_id=upload_id, generated=generated,
                            download_name=f"{stem}.{tag}{final.suffix}", created_at=self._clock())
            with self._lock:
                old = self._results.pop(job_id, None)
                if old is not None:
                    self._drop_files(old.path)
                os.replace(info.path, final)
                sidecar = _write_sidecar(final, _result_json(result))
                hold.settle()
                self._add_file(final, info.size_bytes)
                self._add_file(sidecar, sidecar.stat().st_size)
                self._results[job_id] = result
                self._evicted.pop(job_id, None)
        finally:
            _remove(temp_dir)
            hold.release()
        return result

    def result(self, job_id: str) -> Result:
        """Return a job's result; raise ResultGone if it was evicted, MediaNotFound if there never was one."""
        with self._lock:
            found = self._results.get(job_id)
            evicted = job_id in self._evicted
        if found is not None:
            return found
        if evicted:
            raise ResultGone(f"The result of job {job_id} was removed to make room for newer files.", job_id=job_id)
        raise MediaNotFound(f"Job {job_id} has no result.", job_id=job_id)

    def results(self) -> list[Result]:
        """Return every result, oldest first (the order they would be evicted in)."""
        with self._lock:
            return list(self._results.values())

    def delete_job(self, job_id: str) -> bool:
        """Delete a job's result and forget its eviction; return whether a result file was deleted."""
        with self._lock:
            self._evicted.pop(job_id, None)
            result = self._results.pop(job_id, None)
            if result is None:
                return False
            self._drop_files(result.path)
        return True

    # ------------------------------------------------------------------------------------------ space

    def usage_bytes(self) -> int:
        """Return the bytes the data directory holds (files and sidecars) plus those held by writes in progress."""
        with self._lock:
            return self._used + self._reserved

    def stats(self) -> dict[str, Any]:
        """Return counts and byte totals for monitoring: uploads, results, evicted results, usage and limit."""
        with self._lock:
            return {"uploads": len(self._uploads), "results": len(self._results), "evicted": len(self._evicted),
                    "used_bytes": self._used, "reserved_bytes": self._reserved, "max_bytes": self.max_data_bytes}

    # ------------------------------------------------------------------------------------------ internals

    def _receive(self, body: BinaryIO | Iterable[bytes], temp: Path, hold: _Hold) -> int:
        """Copy the body into `temp`, holding room chunk by chunk; return the bytes written."""
        written = 0
        with open(temp, "wb") as out:
            for chunk in _chunks(body, self.chunk_bytes):
                if self.max_upload_bytes is not None and written + len(chunk) > self.max_upload_bytes:
                    raise TooLarge(f"The upload is over the limit of {self.max_upload_bytes} bytes.",
                                   max_bytes=self.max_upload_bytes)
                hold.add(len(chunk))
                out.write(chunk)
                written += len(chunk)
        return written

    def _produce(self, dest: Path, upload: Upload | None, language: str, duration: float, job_id: str,
                 title: str | None) -> tuple[MediaInfo, bool]:
        if upload is not None:
            try:
                return make_result(upload.path, dest, job_id=job_id, language=language, title=title), False
            except UnsupportedMedia:
                pass  # the job still gets a video of the right length
            except FileNotFoundError as e:
                raise MediaNotFound(f"The upload {upload.upload_id} was deleted.", upload_id=upload.upload_id) from e
        return generate_video(dest, seconds=duration, language=language, job_id=job_id, title=title), True

    def _reserve(self, nbytes: int) -> None:
        """Hold `nbytes` for a write, evicting the oldest results if needed; raise StorageFull if it cannot."""
        with self._lock:
            if self.max_data_bytes is not None:
                while self._used + self._reserved + nbytes > self.max_data_bytes and self._results:
                    job_id, oldest = self._results.popitem(last=False)
                    self._drop_files(oldest.path)
                    self._evicted[job_id] = self._clock()
                    while len(self._evicted) > _MAX_TOMBSTONES:
                        self._evicted.popitem(last=False)
                if self._used + self._reserved + nbytes > self.max_data_bytes:
                    free = max(0, self.max_data_bytes - self._used - self._reserved)
                    raise StorageFull(f"The data directory is full: {nbytes} more bytes are needed and {free} are "
                                      f"free of {self.max_data_bytes}, after evicting every result.",
                                      needed_bytes=nbytes, free_bytes=free)
            self._reserved += nbytes

    def _add_file(self, path: Path, size: int) -> None:  # with the lock held
        self._used += size - self._disk.get(path, 0)
        self._disk[path] = size

    def _drop_files(self, media: Path) -> None:  # with the lock held: the media file and its sidecar
        for path in (media, _sidecar_path(media)):
            self._used -= self._disk.pop(path, 0)
            _remove(path)

    def _load(self) -> None:
        """Index the uploads and results a previous process left, oldest result first; delete strays."""
        results = []
        for folder in (self._upload_dir, self._result_dir):
            sidecars = {p for p in folder.glob("*.json")}
            media = {p for p in folder.iterdir() if p.suffix != ".json"}
            for sidecar in sidecars:
                try:
                    data = json.loads(sidecar.read_text())
                    path = folder / data["file"]
                    info = MediaInfo.from_json(data["info"], path)
                    size = path.stat().st_size
                except (OSError, ValueError, KeyError, TypeError):
                    _remove(sidecar)
                    continue
                media.discard(path)
                self._add_file(path, size)
                self._add_file(sidecar, sidecar.stat().st_size)
                if folder is self._upload_dir:
                    self._uploads[data["upload_id"]] = Upload(data["upload_id"], info, data["created_at"])
                else:
                    results.append(Result(job_id=data["job_id"], info=info, language=data["language"],
                                          upload_id=data["upload_id"], generated=data["generated"],
                                          download_name=data["download_name"], created_at=data["created_at"]))
            for stray in media:  # a file whose sidecar was never written
                _remove(stray)
        for result in sorted(results, key=lambda r: r.created_at):
            self._results[result.job_id] = result


class _Hold:
    """The room one write holds in a store: grown chunk by chunk, then settled (stored) or released (failed)."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store
        self.nbytes = 0

    def add(self, nbytes: int) -> None:
        """Hold `nbytes` more (may evict results or raise StorageFull)."""
        self.store._reserve(nbytes)
        self.nbytes += nbytes

    def settle(self) -> None:
        """Give the held room back because the files are now counted as stored (call with the store's lock held)."""
        self.store._reserved -= self.nbytes
        self.nbytes = 0

    def release(self) -> None:
        """Give back whatever is still held (after a failure; nothing once settled)."""
        if self.nbytes:
            with self.store._lock:
                self.settle()


# ---------------------------------------------------------------------------------------------- helpers


def _chunks(body: BinaryIO | Iterable[bytes], size: int) -> Iterable[bytes]:
    if hasattr(body, "read"):
        while chunk := body.read(size):  # type: ignore[union-attr]
            yield chunk
    else:
        for chunk in body:
            if chunk:
                yield bytes(chunk)


def _result_json(result: Result) -> dict[str, Any]:
    return {"job_id": result.job_id, "language": result.language, "upload_id": result.upload_id,
            "generated": result.generated, "download_name": result.download_name,
            "created_at": result.created_at, "info": result.info.to_json()}


def _sidecar_path(media: Path) -> Path:
    return media.with_suffix(".json")


def _write_sidecar(media: Path, data: dict[str, Any]) -> Path:
    """Write the JSON beside a stored file (atomically); return its path."""
    sidecar = _sidecar_path(media)
    temp = sidecar.with_name(f".{sidecar.name}.{uuid.uuid4().hex}.part")
    temp.write_text(json.dumps({**data, "file": media.name}, ensure_ascii=False, indent=1))
    os.replace(temp, sidecar)
    return sidecar


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        with contextlib.suppress(FileNotFoundError):
            path.rmdir()
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _clean_filename(filename: str | None) -> str:
    """Keep the last part of a sender's file name, without control characters or path separators, ≤ 200 chars."""
    if not filename:
        return ""
    name = _UNSAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:200]


def _suffix(container: str) -> str:
    return re.sub(r"[^a-z0-9]", "", container.lower())[:8] or "bin"
