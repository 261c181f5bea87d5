"""Signed result links: a job's file at `GET /results/<job_id>` for whoever holds the link, no API key needed.

HeyGen's status routes and `video_translate.success` webhooks hand out a `url` that downloads the video
without a key and expires (seven days, as HeyGen's presigned links do). Here that is the one results route
with a signature in its query: `<base>/results/<job_id>?expires=<epoch s>&signature=<hex>`, where the
signature is an HMAC-SHA256 of the job id and the expiry under a secret the store keeps (so links survive
a restart with the SQLite store). It opens that job's file and no other, until it expires; every status
call makes a fresh one. Plain Python, no Flask.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

from simulator.clock import Clock
from simulator.domain.view import result_path

LINK_LIFETIME = 7 * 24 * 3600  # seconds, as HeyGen's download URLs
#: The query parameters of a signed link; either one makes a results request a signed one.
LINK_PARAMETERS = ("expires", "signature")


class ResultLinks:
    """Makes and checks the signed download URLs of results."""

    def __init__(self, secret: str, clock: Clock) -> None:
        self._key = secret.encode()
        self._clock = clock

    def url(self, base_url: str, job_id: str) -> str:
        """Return a download URL for the job's result, valid for seven days from now."""
        expires = int(self._clock()) + LINK_LIFETIME
        query = urlencode({"expires": expires, "signature": self._sign(job_id, expires)})
        return f"{base_url.rstrip('/')}{result_path(job_id)}?{query}"

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
