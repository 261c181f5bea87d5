"""Who is asking, what they may see, and as whom and in what role they submit (the rules of AUTH_MODE).

- Open mode (the default), no key: today's rules — `X-User-Id` (or the client address) names the user,
  the role is what the request declares, and every job can be read.
- With a valid key, in either mode: the user and role come from the key. A declared `X-User-Id` that is not
  the key's user is refused, and so is a premium job asked for with a free key.
- Keys mode: every non-admin route needs a key, and a caller sees only their own jobs (another user's job
  is "not found"; listings are filtered). The admin token stands in for a key on reading routes and sees all.
- HeyGen's routes always need a key and always show only the key's own jobs, as HeyGen does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.auth.keys import Principal
from simulator.domain.errors import JobError, JobNotFound


class AccessDenied(JobError):
    """The caller is authenticated but may not do this (403)."""

    code = "forbidden"
    status = 403

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True, slots=True)
class Caller:
    """One request's caller: the key's principal (if any), whether it holds the admin token, and the mode."""

    principal: Principal | None
    admin: bool = False
    keys_mode: bool = False
    heygen: bool = False  # came in on a HeyGen route

    @property
    def scope(self) -> str | None:
        """Return the user whose jobs this caller may see; None: every job."""
        if self.principal is not None and (self.heygen or (self.keys_mode and not self.admin)):
            return self.principal.user_id
        return None

    def submitter(self, declared_user: str | None, declared_role: str | None, fallback_user: str) -> tuple[str, str]:
        """Return (user, role) a submission runs as, or raise AccessDenied when the declaration disagrees."""
        principal = self.principal
        if principal is None:
            return declared_user or fallback_user, declared_role or "free"
        self.check_user(declared_user)
        role = declared_role or principal.role
        if role == "premium" and principal.role != "premium":
            raise AccessDenied("premium_not_allowed",
                               f"This API key belongs to a free user ({principal.user_id}); premium jobs need a "
                               "premium key.")
        return principal.user_id, role

    def check_user(self, declared_user: str | None) -> None:
        """Refuse a declared user (X-User-Id, ?user_id=) that is not the key's own."""
        principal = self.principal
        if principal is not None and declared_user is not None and declared_user != principal.user_id:
            raise AccessDenied("user_mismatch",
                               f"The API key belongs to user {principal.user_id!r}, not {declared_user!r}; "
                               "leave X-User-Id out or send the key's user.")

    def reading_scope(self, declared_user: str | None) -> str | None:
        """Return whose jobs a listing shows: the declared user (checked against the key) within the caller's scope."""
        self.check_user(declared_user)
        scope = self.scope
        if scope is None:
            return declared_user
        if declared_user is not None and declared_user != scope:
            raise AccessDenied("user_mismatch", f"This API key may list only the jobs of user {scope!r}.")
        return scope

    def require_visible(self, job: dict[str, Any]) -> dict[str, Any]:
        """Return the job's view if this caller may see it; another user's job is not found."""
        scope = self.scope
        if scope is not None and job["user_id"] != scope:
            raise JobNotFound(f"No job with id {job['job_id']!r}.", job_id=job["job_id"])
        return job
