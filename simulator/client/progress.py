"""The command line's progress display: a bar per job that moves between answers, drawn a few times a second.

The server's `progress` only changes when someone asks, and a good waiter asks rarely (a long-poll may
hold one request for a whole attempt). So on a terminal the bar is interpolated: from the progress and
`eta_seconds` of the last answer (progress is linear in time while translating) it estimates where the
job is now, and redraws at most `redraws_per_second` times. Anywhere else (a pipe, a log file) it prints
one plain line per change the server reported, and never interpolates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from simulator.client.job import Job

BAR_WIDTH = 20


def estimate(job: Job, seen_at: float, now: float) -> tuple[int, float | None]:
    """Return the progress (0–100) and the seconds left that `job`, seen at `seen_at`, probably has at `now`.

    While translating, progress grows linearly to 100 at `eta_seconds`; it is held at 99 until the server
    says the job completed (the attempt may yet fail). Queued and finished jobs keep their progress.
    """
    if job.done or job.eta_seconds is None:
        return job.progress, None
    elapsed = max(0.0, now - seen_at)
    left = max(0.0, job.eta_seconds - elapsed)
    translating = job.stage == "translating" or (job.stage is None and job.started_at is not None
                                                 and job.queue_position is None)
    if not translating or job.eta_seconds <= 0:
        return job.progress, left
    share = min(1.0, elapsed / job.eta_seconds)
    return max(job.progress, min(99, int(job.progress + (100 - job.progress) * share))), left


def render(job: Job, progress: int, left: float | None, label: str = "") -> str:
    """Return one job's progress line: `[####....]  42% pending (translating, eta 3s, attempt 1)`."""
    filled = progress * BAR_WIDTH // 100
    where = f"queue position {job.queue_position}" if job.queue_position else (job.stage or job.status)
    eta = f", eta {left:.0f}s" if left is not None else ""
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"{label}[{bar}] {progress:3d}% {job.status} ({where}{eta}, attempt {job.attempts})"


def labels(job_ids: Sequence[str]) -> dict[str, str]:
    """Return a short label per job: the first 8 characters of its id, or more where those are not unique."""
    if len(job_ids) < 2:
        return {job_id: "" for job_id in job_ids}
    for size in (8, 13, 36):
        if len({job_id[:size] for job_id in job_ids}) == len(set(job_ids)):
            break
    width = max(len(job_id[:size]) for job_id in job_ids)
    return {job_id: job_id[:size].ljust(width) + "  " for job_id in job_ids}


class ProgressBoard:
    """Shows the jobs a command waits for on `stream`: one line per job, in the order given.

    Pass `update` as the waiting method's `on_progress`; call `close()` when the wait is over (it draws
    the final state and ends the display). On a terminal a thread redraws the interpolated estimate.
    """

    def __init__(
        self,
        stream: TextIO,
        job_ids: Sequence[str] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        interactive: bool | None = None,
        redraws_per_second: float = 4.0,
    ) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._clock = clock
        self._interval = 1.0 / redraws_per_second
        self._order = list(dict.fromkeys(job_ids))
        self._labels = labels(self._order)
        self._seen: dict[str, tuple[Job, float]] = {}
        self._lock = threading.Lock()
        self._drawn_lines = 0  # lines of the block drawn last on a terminal
        self._drawn: list[str] = []
        self._last_draw = -float("inf")
        self._line_open = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        #: How many times the terminal display was drawn (for tests and curiosity).
        self.draws = 0

    def start(self) -> ProgressBoard:
        """Start redrawing a few times a second (on a terminal only); return self."""
        if self.interactive and self._ticker is None:
            self._ticker = threading.Thread(target=self._run, name="progress", daemon=True)
            self._ticker.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick()

    def update(self, job: Job) -> None:
        """Take a new state of a job (as on_progress); show it now or at the next redraw."""
        with self._lock:
            if job.job_id not in self._labels:
                self._order.append(job.job_id)
                self._labels = labels(self._order)
            self._seen[job.job_id] = (job, self._clock())
            if not self.interactive:
                self.stream.write(render(job, job.progress, None, self._labels[job.job_id]) + "\n")
                self.stream.flush()
            else:
                self._draw(force=False)

    def tick(self) -> None:
        """Redraw the terminal display if a redraw is due and something changed."""
        with self._lock:
            if self.interactive:
                self._draw(force=False)

    def close(self) -> None:
        """Stop redrawing, draw the last state, and end the display's line so that messages start afresh."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self.interactive:
                self._draw(force=True)
                if self._line_open:
                    self.stream.write("\n")
                    self._line_open = False
                self.stream.flush()

    def _lines(self, now: float) -> list[str]:
        lines = []
        for job_id in self._order:
            if job_id in self._seen:
                job, seen_at = self._seen[job_id]
                progress, left = estimate(job, seen_at, now)
                lines.append(render(job, progress, left, self._labels[job_id]))
        return lines

    def _draw(self, *, force: bool) -> None:
        now = self._clock()
        if not force and now - self._last_draw < self._interval:
            return
        lines = self._lines(now)
        if not lines or lines == self._drawn:
            return
        self._last_draw = now
        self.draws += 1
        if len(self._order) == 1:  # one job: one line, redrawn in place
            self.stream.write("\r" + lines[0].ljust(78))
            self._line_open = True
        else:  # a block of lines: go back to its top, redraw each line
            if self._drawn_lines:
                self.stream.write(f"\x1b[{self._drawn_lines}F")
            self.stream.write("".join(line + "\x1b[K\n" for line in lines))
            self._drawn_lines = len(lines)
        self._drawn = lines
        self.stream.flush()

    @property
    def line_open(self) -> bool:
        """Tell whether a terminal line is drawn without its newline yet."""
        return self._line_open


def byte_size(nbytes: float) -> str:
    """Return a byte count for people: `512 B`, `37.4 kB`, `62.0 MB`, `1.20 GB` (decimal units)."""
    if nbytes < 1000:
        return f"{nbytes:.0f} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6)):
        if nbytes < scale * 1000:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 1e9:.2f} GB"


def render_transfer(label: str, done: int, total: int | None, rate: float | None) -> str:
    """Return one transfer's line: `upload talk.mp4  [######..............]  31%  62.0 MB of 200.0 MB  85.1 MB/s`."""
    speed = f"  {byte_size(rate)}/s" if rate else ""
    if not total:
        return f"{label}  {byte_size(done)}{speed}"
    share = min(1.0, done / total)
    filled = int(share * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"{label}  [{bar}] {int(share * 100):3d}%  {byte_size(done)} of {byte_size(total)}{speed}"


class TransferBar:
    """Shows the bytes of an upload or download on `stream`, as `on_progress(done_bytes, total_bytes)`.

    On a terminal one line is redrawn in place at most `redraws_per_second` times; anywhere else a line is
    printed at each tenth of the file. `close()` draws the last state and ends the line.
    """

    def __init__(self, stream: TextIO, label: str, *, clock: Callable[[], float] = time.monotonic,
                 interactive: bool | None = None, redraws_per_second: float = 4.0) -> None:
        self.stream = stream
        self.label = label
        self.interactive = stream.isatty() if interactive is None else interactive
        self._clock = clock
        self._interval = 1.0 / redraws_per_second
        self._started = clock()
        self._last_draw = -float("inf")
        self._tenths = -1
        self._state: tuple[int, int | None] = (0, None)
        self._line_open = False
        self._reported = False

    def __call__(self, done: int, total: int | None) -> None:
        """Take the bytes transferred so far (and the total, if known); draw if it is time."""
        self._state = (done, total)
        self._reported = True
        if self.interactive:
            if self._clock() - self._last_draw >= self._interval:
                self._draw()
        elif total:
            tenths = min(10, done * 10 // total)
            if tenths > self._tenths:
                self._tenths = tenths
                self._print_line()

    def close(self) -> None:
        """Draw the last state and end the line, so that what is printed next starts afresh (nothing if none came)."""
        if not self._reported:
            return
        if self.interactive:
            self._draw()
            if self._line_open:
                self.stream.write("\n")
                self._line_open = False
        elif self._state[1] is None or self._tenths < 10:
            self._print_line()
        self.stream.flush()

    def _rate(self) -> float | None:
        elapsed = self._clock() - self._started
        return self._state[0] / elapsed if elapsed > 0 else None

    def _draw(self) -> None:
        self._last_draw = self._clock()
        self.stream.write("\r" + render_transfer(self.label, *self._state, self._rate()).ljust(78))
        self.stream.flush()
        self._line_open = True

    def _print_line(self) -> None:
        self.stream.write(render_transfer(self.label, *self._state, self._rate()) + "\n")
        self.stream.flush()
