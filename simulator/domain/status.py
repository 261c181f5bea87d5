"""Statuses, stages, events and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A job's status; the values are the wire format."""

    PENDING = "pending"
    FAILED = "failed"
    COMPLETED = "completed"
    PERMANENTLY_FAILED = "permanently_failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Tell whether this status never changes again."""
        return self in TERMINAL

    @property
    def result(self) -> str:
        """Return the classic three-value view: pending, completed or error."""
        return RESULTS[self]


TERMINAL = frozenset({Status.COMPLETED, Status.PERMANENTLY_FAILED, Status.CANCELLED})
RESULTS = {
    Status.PENDING: "pending",
    Status.FAILED: "pending",
    Status.COMPLETED: "completed",
    Status.PERMANENTLY_FAILED: "error",
    Status.CANCELLED: "error",
}


class Stage(StrEnum):
    """Where a job is: waiting for a slot, being translated, or done."""

    QUEUED = "queued"
    TRANSLATING = "translating"
    FINISHED = "finished"


class Event(StrEnum):
    """What can happen to a job."""

    START = "start"  # an attempt begins
    COMPLETE = "complete"  # the attempt succeeded
    FAIL = "fail"  # the attempt failed and a retry is left: back to the queue
    GIVE_UP = "give_up"  # the attempt failed and no retry is left
    CANCEL = "cancel"  # an admin cancelled the job


State = tuple[Status, Stage]

#: The only allowed moves. A state that is not a key (every terminal one) accepts no event.
TRANSITIONS: dict[State, dict[Event, State]] = {
    (Status.PENDING, Stage.QUEUED): {
        Event.START: (Status.PENDING, Stage.TRANSLATING),
        Event.CANCEL: (Status.CANCELLED, Stage.FINISHED),
    },
    (Status.FAILED, Stage.QUEUED): {
        Event.START: (Status.PENDING, Stage.TRANSLATING),
        Event.CANCEL: (Status.CANCELLED, Stage.FINISHED),
    },
    (Status.PENDING, Stage.TRANSLATING): {
        Event.COMPLETE: (Status.COMPLETED, Stage.FINISHED),
        Event.FAIL: (Status.FAILED, Stage.QUEUED),
        Event.GIVE_UP: (Status.PERMANENTLY_FAILED, Stage.FINISHED),
        Event.CANCEL: (Status.CANCELLED, Stage.FINISHED),
    },
}

#: Roles and their priorities: premium (1) always starts before free (0).
ROLES = {"free": 0, "premium": 1}
