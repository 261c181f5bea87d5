"""Unit tests of the command line's progress display: interpolation, labels, and how often it redraws."""

from __future__ import annotations

import io
import re

import pytest

from client import Job
from simulator.client.progress import ProgressBoard, estimate, labels, render
from tests.client_fakes import job_json

BAR = re.compile(r"\[[#.]{20}\] +\d{1,3}% [a-z_]+ \(.+, attempt \d+\)")


def translating(progress: int = 20, eta: float = 8.0, job_id: str = "00000000-0000-4000-8000-000000000001") -> Job:
    """Return a job translating at `progress` %, ending in `eta` s."""
    return Job.from_dict(job_json(job_id=job_id, stage="translating", progress=progress, eta_seconds=eta,
                                  started_at="2027-01-15T08:00:00Z"))


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("elapsed", "expected"), [(0, 20), (2, 40), (4, 60), (7, 90), (8, 99), (60, 99)])
def test_progress_is_interpolated_linearly_to_the_eta_and_held_at_99(elapsed: float, expected: int) -> None:
    """A job seen at 20 % with 8 s to go is estimated linearly towards 100 %, never past 99 % before it says so."""
    progress, left = estimate(translating(), seen_at=100.0, now=100.0 + elapsed)
    assert progress == expected
    assert left == pytest.approx(max(0.0, 8.0 - elapsed))


def test_queued_and_finished_jobs_are_not_interpolated() -> None:
    """A queued job keeps 0 % (its eta counts down) and a completed job shows 100 %."""
    queued = Job.from_dict(job_json(stage="queued", queue_position=3, eta_seconds=10.0))
    assert estimate(queued, 0.0, 5.0) == (0, 5.0)
    assert estimate(Job.from_dict(job_json("completed")), 0.0, 5.0) == (100, None)


def test_a_line_shows_bar_percentage_status_and_where() -> None:
    """A rendered line has the bar, the percentage, the status, then the stage or queue position and the eta."""
    line = render(translating(), 60, 4.0)
    assert BAR.fullmatch(line), line
    assert line.startswith("[############........]  60% pending (translating, eta 4s, attempt 1)")


def test_several_jobs_get_short_unique_labels() -> None:
    """Labels are 8 characters of the id (longer where 8 would collide); a single job gets none."""
    ids = ["aaaaaaaa-1111-4000-8000-000000000001", "aaaaaaaa-2222-4000-8000-000000000002", "bbbbbbbb-0000"]
    found = labels(ids)
    assert len(set(found.values())) == 3
    assert found[ids[2]].startswith("bbbbbbbb")
    assert labels(ids[:1]) == {ids[0]: ""}


def test_off_a_terminal_each_change_is_one_plain_labelled_line() -> None:
    """In a pipe every update writes one line per change, labelled by job, without escapes or interpolation."""
    stream = io.StringIO()
    ids = ["11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"]
    board = ProgressBoard(stream, ids).start()
    board.update(translating(20, job_id=ids[0]))
    board.update(translating(50, job_id=ids[1]))
    board.update(Job.from_dict(job_json("completed", job_id=ids[0])))
    board.close()
    lines = stream.getvalue().splitlines()
    assert [line[:8] for line in lines] == ["11111111", "22222222", "11111111"]
    assert all(BAR.search(line) for line in lines)
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert board.draws == 0


def test_on_a_terminal_the_bar_moves_between_answers_a_few_times_a_second() -> None:
    """One answer, then ticks every 50 ms for 2 s: the bar moves on its own, redrawn at most 4 times a second."""
    stream, clock = Terminal(), Clock()
    board = ProgressBoard(stream, clock=clock)
    board.update(translating(0, eta=2.0))
    for _ in range(40):
        clock.now += 0.05
        board.tick()
    assert 2 <= board.draws <= 9
    shown = [int(p) for p in re.findall(r"\] +(\d+)%", stream.getvalue())]
    assert shown == sorted(shown) and shown[0] == 0 and shown[-1] >= 80
    board.close()
    assert stream.getvalue().startswith("\r[") and stream.getvalue().endswith("\n")
    assert " 99% pending" in stream.getvalue().rsplit("\r", 1)[1]


def test_on_a_terminal_several_jobs_are_a_block_of_lines_redrawn_in_place() -> None:
    """With three jobs the terminal shows three labelled lines and redraws them by moving the cursor up."""
    stream, clock = Terminal(), Clock()
    ids = [f"{i}{i}{i}{i}{i}{i}{i}{i}-0000-4000-8000-00000000000{i}" for i in (1, 2, 3)]
    board = ProgressBoard(stream, ids, clock=clock)
    for job_id in ids:
        board.update(translating(10, job_id=job_id))
    for _ in range(2):
        clock.now += 1.0
        board.tick()
    board.close()
    text = stream.getvalue()
    assert "\x1b[3F" in text
    last_block = text.rsplit("\x1b[3F", 1)[1].split("\n")[:3]
    assert [line[:8] for line in last_block] == ["11111111", "22222222", "33333333"]
