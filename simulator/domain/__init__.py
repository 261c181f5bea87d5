"""The simulation domain: statuses and transitions, the job record, ETA planning, the engine, the wire view.

Plain Python: it never imports Flask, python-dotenv or requests.
"""

from simulator.domain.engine import ERROR_CODES, ERROR_MESSAGES, JobEngine
from simulator.domain.errors import (
    CapacityExceeded,
    ClockNotManual,
    IdempotencyMismatch,
    InvalidArgument,
    JobError,
    JobNotFound,
    ScenariosDisabled,
    StoreUnavailable,
    TransitionRefused,
)
from simulator.domain.invariants import check_invariants
from simulator.domain.job import Job, iso
from simulator.domain.scenario import ReadFault, Scenario, ScenarioError
from simulator.domain.status import RESULTS, ROLES, TERMINAL, TRANSITIONS, Event, Stage, State, Status

__all__ = [
    "ERROR_CODES",
    "ERROR_MESSAGES",
    "RESULTS",
    "ROLES",
    "TERMINAL",
    "TRANSITIONS",
    "CapacityExceeded",
    "ClockNotManual",
    "Event",
    "IdempotencyMismatch",
    "InvalidArgument",
    "Job",
    "JobEngine",
    "JobError",
    "JobNotFound",
    "ReadFault",
    "Scenario",
    "ScenarioError",
    "ScenariosDisabled",
    "Stage",
    "State",
    "Status",
    "StoreUnavailable",
    "TransitionRefused",
    "check_invariants",
    "iso",
]
