"""Result downloads: signed URLs that expire like HeyGen's (7 days), and the MP4 files behind them.

A successful translation's `url` is `<base>/files/<job_id>.mp4?expires=<epoch s>&signature=<hex>`: the
signature is an HMAC-SHA256 of the job id and the expiry under a secret the store keeps, so the link works
without an API key (as HeyGen's presigned links do) and only for that job until it expires; every status
call makes a fresh one. The file is a small, valid MP4 made with `simulator.media.generate_video` the first
time it is downloaded, tagged with the job's target language. When the uploads work serves real results
(`GET /results/<job_id>`), `ResultLinks.url` is the one place to point there instead.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlencode

from simulator.clock import Clock

LINK_LIFETIME = 7 * 24 * 3600  # seconds, as HeyGen's download URLs
RESULT_SECONDS = 3.0  # length of a generated result
MAX_FILES = 500  # results kept on disk at once; the oldest is removed first (it is made again when asked for)


class ResultLinks:
    """Makes and checks the signed download URLs of results."""

    def __init__(self, secret: str, clock: Clock) -> None:
        self._key = secret.encode()
        self._clock = clock

    def url(self, base_url: str, job_id: str) -> str:
        """Return a download URL for the job's result, valid for seven days from now."""
        expires = int(self._clock()) + LINK_LIFETIME
        query = urlencode({"expires": expires, "signature": self._sign(job_id, expires)})
        return f"{base_url.rstrip('/')}/files/{job_id}.mp4?{query}"

    def refusal(self, job_id: str, expires: str | None, signature: str | None) -> str | None:
        """Return why a download is refused (None when the link is genuine and unexpired)."""
        if expires is None or signature is None or not expires.isdigit() or len(expires) > 12:
            return "The link is incomplete: it needs the expires and signature of a status answer."
        if not hmac.compare_digest(self._sign(job_id, int(expires)).encode(), signature.encode("utf-8", "replace")):
            return "The link's signature does not match; ask the status route for a fresh url."
        if int(expires) < self._clock():
            return "The link has expired; ask the status route for a fresh url."
        return None

    def _sign(self, job_id: str, expires: int) -> str:
        return hmac.new(self._key, f"{job_id}.{expires}".encode(), hashlib.sha256).hexdigest()


class ResultFiles:
    """Generated result files in a temporary directory of this process (made when first needed), at most MAX_FILES."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._lock = threading.Lock()
        self._made: OrderedDict[str, Path] = OrderedDict()

    def _directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="translation-results-"))
            # Removed when this object goes, or at exit at the latest.
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        return self._dir

    def path(self, job_id: str, language: str | None, title: str | None) -> Path:
        """Return the job's result file, generating it the first time (a few tens of milliseconds)."""
        from simulator.media import generate_video  # PyAV is loaded only when a result is downloaded

        with self._lock:
            known = self._made.get(job_id)
            if known is not None and known.exists():
                self._made.move_to_end(job_id)
                return known
            target = self._directory() / f"{job_id}.mp4"
            generate_video(target, seconds=RESULT_SECONDS, language=language, job_id=job_id, title=title)
            self._made[job_id] = target
            while len(self._made) > MAX_FILES:
                _, oldest = self._made.popitem(last=False)
                oldest.unlink(missing_ok=True)
            return target

    def close(self) -> None:
        """Remove every file."""
        with self._lock:
            if self._dir is not None:
                self._cleanup()
                self._dir = None
                self._made.clear()
