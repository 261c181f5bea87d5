"""The job record: the flat form a store keeps of a job, and the job rebuilt from it."""

from __future__ import annotations

import json
import time

import pytest

from simulator.domain.job import RECORD_FIELDS, Job, from_record, iso, to_record
from simulator.domain.status import Stage, Status


def finished_job() -> Job:
    """Return a job that failed once and then completed, with every timestamp set."""
    job = Job(job_id="j1", role="premium", user_id="ann", created_at=100.0, video_url="https://example.com/v.mp4",
              target_language="de", idempotency_key="k", max_retries=3, status=Status.COMPLETED,
              stage=Stage.FINISHED, version=5, attempts=2, updated_at=130.5, started_at=101.0, finished_at=130.5,
              error={"code": "timeout", "message": "The translation worker timed out.", "attempt": 1, "at": "x"})
    return job


def test_a_record_holds_exactly_the_stored_fields_as_plain_values() -> None:
    """to_record gives each stored field once, by name, with the status and stage as their wire strings."""
    record = to_record(finished_job())
    assert list(record) == list(RECORD_FIELDS)
    assert (record["status"], record["stage"]) == ("completed", "finished")
    assert json.loads(json.dumps(record)) == record
    assert not {"created_iso", "updated_iso", "started_iso", "finished_iso"} & set(record)


def test_a_job_rebuilt_from_its_record_is_the_same_with_its_timestamps_formatted() -> None:
    """from_record(to_record(job)) has the same fields, the enums back, and the ISO timestamps made again."""
    job = finished_job()
    rebuilt = from_record(to_record(job))
    assert to_record(rebuilt) == to_record(job)
    assert (rebuilt.status, rebuilt.stage) == (Status.COMPLETED, Stage.FINISHED)
    assert (rebuilt.created_iso, rebuilt.updated_iso, rebuilt.started_iso, rebuilt.finished_iso) == (
        iso(100.0), iso(130.5), iso(101.0), iso(130.5))
    assert iso(130.5) == "1970-01-01T00:02:10.500000Z" and iso(None) is None


def test_timestamps_are_utc_whatever_the_machines_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """iso() formats in UTC with a Z even where local time is five hours behind."""
    monkeypatch.setenv("TZ", "XST+5")  # a POSIX zone: no time zone database needed
    time.tzset()
    try:
        assert iso(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
    finally:
        monkeypatch.undo()
        time.tzset()
