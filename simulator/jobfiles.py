"""The files of jobs: uploads kept while jobs need them, results made when jobs complete, files removed with jobs.

`JobFiles` sits between the engine (which knows jobs, never files) and the media core (`simulator.media`, which
knows files, never jobs). It follows the engine's change feed:

- `completed`: a job made from an upload is due a result, which `ResultWorker` (a thread started by
  `python server.py`, like the ticker) produces at once, outside the engine's lock. A job without an upload gets
  a generated video made on its first download instead: nobody pays for videos nobody fetches. Any result that is
  not there yet (no worker in an embedded app, the worker behind, the disk full at completion) is made when it is
  first downloaded; concurrent downloads of it wait for one production.
- `removed` (cleanup, JOB_TTL): the job's result is deleted, and its upload once no other job needs it.

Whoever asks (the worker, and every media request) first catches up with the feed, so an app served without the
worker still removes files and makes results, only later.

**Uploads** are kept while a stored job refers to them, and at least JOB_TTL seconds (never less than
`MIN_UPLOAD_SECONDS`) after they were uploaded or last named in a submission; then they are deleted.

**Where**: DATA_DIR when it is set (kept across restarts, one server at a time: a lock file refuses a second
one). Unset: a private folder of this run under the user's cache folder (`~/.cache/translation-simulator/` on
Linux, `~/Library/Caches/…` on macOS, `%LOCALAPPDATA%\\…` on Windows), made on first use and deleted when the
process ends; a folder left by a killed server is deleted by the next one that starts. The space is bounded by
MAX_DATA_BYTES (see `simulator.media.files`: the oldest results are evicted first, then uploads are refused).

Nothing here imports Flask; PyAV is reached only through `simulator.media`, imported when a file is first needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from simulator.domain import JobNotFound
from simulator.feed import FeedGap

if TYPE_CHECKING:
    from simulator.domain import JobEngine
    from simulator.media import MediaStore, Result, Upload

log = logging.getLogger("server")

#: Seconds an unused upload is kept at least, whatever JOB_TTL says (a client uploads, then submits).
MIN_UPLOAD_SECONDS = 60.0
#: Seconds of simulated time between two sweeps for uploads past their retention.
SWEEP_SECONDS = 10.0
#: Seconds the worker lets the feed's changes gather between two catch-ups (the most it adds to a result's wait).
BATCH_SECONDS = 0.05
#: Length of the generated video of a job that came without an upload: a short talk.
GENERATED_SECONDS = 60.0
#: Jobs seen completing whose upload was not attached yet (a job may complete the instant it is submitted).
_RECENT = 4096
_APP_FOLDER = "translation-simulator"

try:  # POSIX advisory locks; where they do not exist (Windows), DATA_DIR is not guarded against a second server
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class DataDirError(Exception):
    """DATA_DIR cannot be used: not creatable or writable, or held by another server process."""


def user_cache_dir() -> Path:
    """Return this program's folder in the user's cache folder (XDG on Linux, Caches on macOS, LOCALAPPDATA)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / _APP_FOLDER


class DataDir:
    """The folder the files live in, locked for this process; a temporary one is deleted by `close()`."""

    def __init__(self, path: Path, *, temporary: bool) -> None:
        self.path = path
        self.temporary = temporary
        self._lock_file: BinaryIO | None = None
        self._finalizer: weakref.finalize | None = None

    @classmethod
    def open(cls, configured: str | None) -> DataDir:
        """Take DATA_DIR (or make this run's private folder); raise DataDirError if it cannot be used."""
        if configured:
            data_dir = cls(Path(configured).expanduser(), temporary=False)
        else:
            root = user_cache_dir()
            _remove_abandoned_runs(root)
            data_dir = cls(root / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}", temporary=True)
        data_dir._take()
        return data_dir

    def _take(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_file = open(self.path / ".lock", "a+b")  # held open as long as the folder is used
        except OSError as e:
            raise DataDirError(f"cannot use DATA_DIR {self.path}: {e.strerror or e}") from None
        if fcntl is not None:
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock_file.close()
                raise DataDirError(f"DATA_DIR {self.path} is in use by another server process") from None
        self._lock_file = lock_file
        if self.temporary:
            # Deleted when the process ends, even if nobody calls close() (an app built by a test).
            self._finalizer = weakref.finalize(self, _remove_folder, self.path, lock_file)

    def close(self) -> None:
        """Release the folder; delete it if it was this run's temporary one."""
        if self._finalizer is not None:
            self._finalizer()
        elif self._lock_file is not None:
            self._lock_file.close()
        self._lock_file = None


def _remove_folder(path: Path, lock_file: BinaryIO) -> None:
    lock_file.close()
    shutil.rmtree(path, ignore_errors=True)


def _remove_abandoned_runs(root: Path) -> None:
    """Delete the run folders of servers that ended without deleting theirs (killed): their lock is free."""
    if fcntl is None or not root.is_dir():
        return
    for folder in root.glob("run-*"):
        try:
            if time.time() - folder.stat().st_mtime < MIN_UPLOAD_SECONDS:
                continue  # just made: its server may not hold its lock yet
            with open(folder / ".lock", "a+b") as lock_file:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # a running server holds it (or it is not ours to judge)


class JobFiles:
    """Uploads and results of the engine's jobs, following its change feed (see the module's description)."""

    def __init__(self, engine: JobEngine, data_dir: str | None) -> None:
        self.engine = engine
        self.configured_dir = data_dir
        self._lock = threading.RLock()
        self._dir: DataDir | None = None
        self._store: MediaStore | None = None
        self._cursor = engine.feed.cursor()
        self._job_upload: dict[str, str] = {}  # job id → the upload it was submitted with
        self._refs: dict[str, set[str]] = {}  # upload id → the stored jobs made from it
        self._touched: dict[str, float] = {}  # upload id → when a submission last named it
        self._recently_completed: OrderedDict[str, None] = OrderedDict()
        self._due: deque[str] = deque()  # completed upload jobs whose result the worker makes next
        self._producing: dict[str, threading.Event] = {}
        self._next_sweep = -float("inf")

    # ---------------------------------------------------------------- the folder

    @property
    def data_dir(self) -> Path | None:
        """Return the folder in use (None until the first file is needed)."""
        return None if self._dir is None else self._dir.path

    def open(self) -> MediaStore:
        """Open the data folder (at start-up, to fail early) and return the media store; DataDirError if unusable."""
        with self._lock:
            if self._store is None:
                from simulator.media import MediaStore  # PyAV is loaded when files are first needed

                data_dir = DataDir.open(self.configured_dir)
                try:
                    store = MediaStore(data_dir.path, clock=self.engine.now)
                except OSError as e:
                    data_dir.close()
                    raise DataDirError(f"cannot use DATA_DIR {data_dir.path}: {e.strerror or e}") from None
                self._dir, self._store = data_dir, store
                if store.uploads() or store.results():
                    self._reconcile(store)
            return self._limited(self._store)

    def close(self) -> None:
        """Release the data folder (deleting it if it is this run's temporary one)."""
        with self._lock:
            if self._dir is not None:
                self._dir.close()
            self._dir, self._store = None, None

    def _opened(self) -> MediaStore | None:
        """Return the media store if it holds files already: a configured DATA_DIR always may, a new run's none."""
        if self._store is None and self.configured_dir:
            return self.open()
        return None if self._store is None else self._limited(self._store)

    def _limited(self, store: MediaStore) -> MediaStore:
        settings = self.engine.settings
        store.max_upload_bytes = settings.MAX_UPLOAD_BYTES
        store.max_media_seconds = settings.MAX_MEDIA_SECONDS
        store.max_data_bytes = settings.MAX_DATA_BYTES
        return store

    # ---------------------------------------------------------------- uploads

    def check_room(self, nbytes: int | None) -> None:
        """Raise StorageFull before reading a body of `nbytes` if it cannot fit even after evicting every result."""
        from simulator.media import StorageFull

        if nbytes is None:
            return
        store = self.open()
        stats = store.stats()
        evictable = sum(result.size_bytes for result in store.results())
        free = store.max_data_bytes - stats["used_bytes"] - stats["reserved_bytes"] + evictable
        if nbytes > free:
            raise StorageFull(f"The data directory is full: the upload needs {nbytes} bytes and {max(0, free)} can "
                              f"be made free of {store.max_data_bytes} (MAX_DATA_BYTES).",
                              needed_bytes=nbytes, free_bytes=max(0, free))

    def save_upload(self, body: BinaryIO | Iterable[bytes], *, filename: str | None,
                    content_length: int | None) -> Upload:
        """Stream a body into a new upload (see `MediaStore.save_upload` for what is refused)."""
        self.catch_up()
        upload = self.open().save_upload(body, filename=filename, content_length=content_length)
        with self._lock:
            self._touched[upload.upload_id] = upload.created_at
        return upload

    def upload(self, upload_id: str) -> Upload:
        """Return an upload; raise MediaNotFound if there is none with this id."""
        from simulator.media import MediaNotFound

        self.catch_up()
        store = self._opened()
        if store is None:
            raise MediaNotFound(f"There is no upload {upload_id!r}.", upload_id=upload_id)
        return store.upload(upload_id)

    def has_upload(self, upload_id: str) -> bool:
        """Tell whether an upload with this id is stored."""
        from simulator.media import MediaNotFound

        try:
            self.upload(upload_id)
        except MediaNotFound:
            return False
        return True

    def use(self, upload_id: str) -> Upload:
        """Return an upload a submission names, keeping it for its retention from now (MediaNotFound if none)."""
        upload = self.upload(upload_id)
        with self._lock:
            self._touched[upload_id] = self.engine.now()
        return upload

    def attach(self, upload_id: str, job_id: str) -> None:
        """Record that a job was made from an upload: the upload is kept while the job is stored."""
        with self._lock:
            self._job_upload[job_id] = upload_id
            self._refs.setdefault(upload_id, set()).add(job_id)
            if job_id in self._recently_completed:  # it completed before this call: make its result now
                del self._recently_completed[job_id]
                self._due.append(job_id)

    # ---------------------------------------------------------------- results

    def result(self, job: dict[str, Any]) -> Result:
        """Return the result of a completed job (its view), making it first if needed.

        Raises ResultGone if it was evicted for room, StorageFull if it cannot be made for lack of room.
        """
        from simulator.media import MediaNotFound, ResultGone

        self.catch_up()
        job_id = job["job_id"]
        store = self.open()
        while True:
            try:
                return store.result(job_id)
            except ResultGone:
                raise  # evicted for room: not made again, which would evict another
            except MediaNotFound:
                pass
            with self._lock:
                running = self._producing.get(job_id)
                if running is None:
                    self._producing[job_id] = done = threading.Event()
            if running is not None:
                running.wait()  # someone else is making it; then look again (it may have failed for room)
                continue
            try:
                return self._make(store, job)
            finally:
                with self._lock:
                    del self._producing[job_id]
                done.set()

    def produce_due(self) -> bool:
        """Make the result of the next completed upload job that has none (the worker's step); tell if one was due."""
        from simulator.media import MediaError

        with self._lock:
            if not self._due:
                return False
            job_id = self._due.popleft()
        try:
            job = self.engine.get(job_id)
            self.result(job)
        except JobNotFound:
            pass  # removed before its turn
        except MediaError as e:
            log.warning("no result for job %s yet (%s); it is made when it is downloaded", job_id, e.detail)
        return True

    def _make(self, store: MediaStore, job: dict[str, Any]) -> Result:
        """Produce a job's result: its upload remuxed, or a generated video; delete it if the job went meanwhile."""
        from simulator.media import MediaNotFound

        job_id, language, upload_id = job["job_id"], job["target_language"], job["upload_id"]
        try:
            result = store.make_result(job_id, language=language, upload_id=upload_id, seconds=GENERATED_SECONDS)
        except MediaNotFound:
            if upload_id is None:
                raise
            log.warning("job %s: its upload %s is gone; the result is a generated video", job_id, upload_id)
            result = store.make_result(job_id, language=language, seconds=GENERATED_SECONDS)
        if not self._job_exists(job_id):  # removed while its result was being made: do not leave the file behind
            store.delete_job(job_id)
            raise MediaNotFound(f"Job {job_id} was removed.", job_id=job_id)
        return result

    def _job_exists(self, job_id: str) -> bool:
        try:
            self.engine.get(job_id)
        except JobNotFound:
            return False
        return True

    def clear(self) -> int:
        """Delete every upload and result (the server is reset to as freshly started); return how many files went."""
        self.catch_up()
        with self._lock:
            store = self._opened()
            if store is None:
                return 0
            uploads, results = store.uploads(), store.results()
            for upload in uploads:
                store.delete_upload(upload.upload_id)
            for result in results:
                store.delete_job(result.job_id)
            self._job_upload.clear()
            self._refs.clear()
            self._touched.clear()
            self._due.clear()
            self._recently_completed.clear()
            return len(uploads) + len(results)

    # ---------------------------------------------------------------- following the jobs

    def catch_up(self, wait: float = 0.0) -> None:
        """Apply the feed's changes since the last call (waiting up to `wait` s for one), then sweep old uploads."""
        feed = self.engine.feed
        try:
            changes = feed.wait(self._cursor, wait) if wait > 0 else feed.since(self._cursor)
        except FeedGap:
            # Removals may have been missed: check each result's job (results are few; the jobs may be many).
            # Missed completions are made on download; references to gone jobs are dropped by the sweep.
            with self._lock:
                self._cursor = feed.cursor()
                store = self._store
                for result in store.results() if store is not None else ():
                    if not self._job_exists(result.job_id):
                        store.delete_job(result.job_id)
                self._next_sweep = -float("inf")
            log.info("the file keeper skipped changes it fell behind on; results checked against the jobs")
            changes = []
        with self._lock:
            for change in changes:
                if change.seq <= self._cursor:
                    continue  # another thread applied it already
                self._cursor = change.seq
                if change.kind == "completed":
                    self._completed(change.job_id)
                elif change.kind == "removed":
                    self._removed(change.job_id)
            self._sweep()

    def _completed(self, job_id: str) -> None:  # lock held
        if job_id in self._job_upload:
            self._due.append(job_id)
        else:
            self._recently_completed[job_id] = None
            while len(self._recently_completed) > _RECENT:
                self._recently_completed.popitem(last=False)

    def _removed(self, job_id: str) -> None:  # lock held
        self._recently_completed.pop(job_id, None)
        upload_id = self._job_upload.pop(job_id, None)
        if upload_id is not None:
            refs = self._refs.get(upload_id)
            if refs is not None:
                refs.discard(job_id)
                if not refs:
                    del self._refs[upload_id]
        if self._store is not None:
            self._store.delete_job(job_id)
        if upload_id is not None:
            self._next_sweep = -float("inf")  # its upload may be due for deletion now

    def _sweep(self) -> None:  # lock held
        """Delete uploads no stored job needs once past their retention (at most every SWEEP_SECONDS)."""
        now = self.engine.now()
        if self._store is None or now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        keep = max(self.engine.settings.JOB_TTL, MIN_UPLOAD_SECONDS)
        for upload in self._store.uploads():
            upload_id = upload.upload_id
            if now - max(upload.created_at, self._touched.get(upload_id, upload.created_at)) < keep:
                continue
            refs = self._refs.get(upload_id)
            if refs:  # drop references to jobs that are gone (a removal missed in a gap of the feed)
                refs.difference_update([job_id for job_id in list(refs) if not self._job_exists(job_id)])
                if refs:
                    continue
                del self._refs[upload_id]
            self._store.delete_upload(upload_id)
            self._touched.pop(upload_id, None)

    def _reconcile(self, store: MediaStore) -> None:
        """Match the files to the stored jobs: delete results of gone jobs, rebuild references and due results."""
        jobs = {job["job_id"]: job for job in self.engine.jobs()}
        with self._lock:
            for result in store.results():
                if result.job_id not in jobs:
                    store.delete_job(result.job_id)
            have = {result.job_id for result in store.results()}
            self._job_upload.clear()
            self._refs.clear()
            for job_id, job in jobs.items():
                upload_id = job["upload_id"]
                if upload_id is None:
                    continue
                self._job_upload[job_id] = upload_id
                self._refs.setdefault(upload_id, set()).add(job_id)
                if job["status"] == "completed" and job_id not in have:
                    self._due.append(job_id)
            self._next_sweep = -float("inf")


class ResultWorker:
    """A thread that follows the jobs and makes results as they complete (started by `python server.py`)."""

    def __init__(self, files: JobFiles) -> None:
        self._files = files
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-worker", daemon=True)

    def start(self) -> ResultWorker:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after the result it is making, and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        files = self._files
        while not self._stop.is_set():
            try:
                if files.engine.feed.closed:  # shutting down: the feed no longer waits
                    self._stop.wait(0.5)
                files.catch_up(wait=1.0)
                while not self._stop.is_set() and files.produce_due():
                    files.catch_up()
                # Let changes gather: one wake-up per batch, not one per job change under heavy submission load.
                self._stop.wait(BATCH_SECONDS)
            except Exception:  # pragma: no cover - the worker must keep running whatever happens
                log.exception("result worker step failed")
                with contextlib.suppress(Exception):
                    self._stop.wait(0.5)
