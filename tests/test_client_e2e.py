"""End-to-end tests of TranslationClient against `python server.py` on a free port, with short delays."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from client import JobFailedError, NotFoundError, RateLimitError, TranslationClient, WaitTimeoutError
from tests.conftest import ADMIN_TOKEN

QUICK = {"TRANSLATION_DELAY": 1.0, "PREMIUM_DELAY_FACTOR": 1.0, "DELAY_JITTER": 0.0, "ERROR_RATE": 0.0}


def lag_ms(job: Any, known_at: float) -> float:
    """Return how long after the job's finished_at (wall clock) the caller knew."""
    return (known_at - job.finished_at.timestamp()) * 1000


def test_long_poll_sees_the_end_at_once_with_two_requests(run_server) -> None:
    """A 1 s job waited for by long-poll is known finished at once (well under a polling interval), in ≤ 2 requests.

    The lag is a few milliseconds (bench/polling.py measures it); the bound here only has to tell a held
    request woken by the end from a client that polls, and must hold on a loaded machine too.
    """
    server = run_server(QUICK)
    with TranslationClient(server.url, user_id="lp") as tc:
        job = tc.submit("free")
        final = tc.wait_for_completion(job.job_id, timeout=10)
        known_at = time.time()
        assert final.status == "completed"
        assert tc.server_long_polls is True
        assert tc.status_requests <= 2
        assert lag_ms(final, known_at) < 500


def test_hint_paced_wait_without_long_polling(run_server) -> None:
    """With MAX_WAIT=0 the client paces on eta_seconds: few requests and a small lag."""
    server = run_server({**QUICK, "MAX_WAIT": 0, "WORKERS": 1})
    with TranslationClient(server.url, user_id="hint") as tc:
        first = tc.submit("free")
        second = tc.submit("free")  # queued behind the first: its eta is an estimate at first
        finals = tc.wait_for_all([first.job_id, second.job_id], timeout=15)
        known_at = time.time()
        assert tc.server_long_polls is False
        assert all(j.status == "completed" for j in finals.values())
        assert tc.status_requests <= 6
        assert lag_ms(finals[second.job_id], known_at) < 500


def test_failure_outcomes_are_reported_not_raised_by_wait(run_server) -> None:
    """A job failing every attempt ends permanently_failed; translate() raises JobFailedError for it."""
    server = run_server({**QUICK, "TRANSLATION_DELAY": 0.2, "ERROR_RATE": 1.0, "MAX_RETRIES": 1})
    with TranslationClient(server.url, user_id="f") as tc:
        job = tc.submit("premium")
        final = tc.wait_for_completion(job.job_id, timeout=10)
        assert final.status == "permanently_failed"
        assert final.attempts == 2
        assert final.error is not None and final.error["code"] in ("timeout", "internal_error", "unknown")
        with pytest.raises(JobFailedError) as caught:
            tc.translate("premium", timeout=10)
        assert caught.value.job.status == "permanently_failed"


def test_cancellation_ends_a_wait(run_server) -> None:
    """An admin cancelling a job while another caller waits ends that wait with the cancelled job."""
    server = run_server({**QUICK, "TRANSLATION_DELAY": 30})
    with TranslationClient(server.url, user_id="c", admin_token=ADMIN_TOKEN) as tc:
        job = tc.submit("free")
        timer = threading.Timer(0.3, tc.cancel_job, args=(job.job_id, "no longer needed"))
        timer.start()
        started = time.monotonic()
        with TranslationClient(server.url) as waiter:
            final = waiter.wait_for_completion(job.job_id, timeout=10)
        timer.join()
        assert final.status == "cancelled"
        assert final.cancel_reason == "no longer needed"
        assert time.monotonic() - started < 2


def test_wait_timeout_carries_the_last_job(run_server) -> None:
    """A wait shorter than the job raises WaitTimeoutError (a TimeoutError) on time, carrying the job."""
    server = run_server({**QUICK, "TRANSLATION_DELAY": 30})
    with TranslationClient(server.url) as tc:
        job = tc.submit("free")
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            tc.wait_for_completion(job.job_id, timeout=0.5)
        assert isinstance(caught.value, WaitTimeoutError)
        assert 0.45 < time.monotonic() - started < 1.5
        assert caught.value.job is not None and caught.value.job.job_id == job.job_id


def test_rate_limit_error_carries_retry_after(run_server) -> None:
    """The free submission over RATE_LIMIT raises RateLimitError with a positive retry_after; premium passes."""
    server = run_server({**QUICK, "RATE_LIMIT": 1})
    with TranslationClient(server.url, user_id="rl") as tc:
        tc.submit("free")
        with pytest.raises(RateLimitError) as caught:
            tc.submit("free")
        assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 3600
        assert caught.value.code == "rate_limited"
        assert tc.submit("premium").role == "premium"


class DroppingProxy:
    """An HTTP proxy that forwards every request but drops the connection instead of answering the first POST."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.dropped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, proxy.target + self.path, data=body, headers=headers,
                                          timeout=30)
                if self.command == "POST" and proxy.dropped == 0:
                    proxy.dropped += 1  # the work is done; the answer is lost on the way back
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_idempotent_submit_retried_after_a_dropped_connection_creates_one_job(run_server) -> None:
    """The first POST reaches the server but its answer is lost; the retry replays it: one job in all."""
    server = run_server(QUICK)
    proxy = DroppingProxy(server.url)
    try:
        with TranslationClient(proxy.url, user_id="idem") as tc:
            job = tc.submit("premium")
        assert proxy.dropped == 1
        stored = TranslationClient(server.url).jobs(user_id="idem")
        assert [j.job_id for j in stored] == [job.job_id]
    finally:
        proxy.close()


def test_a_wait_survives_a_server_restart(run_server, tmp_path) -> None:
    """Stopping the server mid-wait and starting it again on the same port (same SQLite store) ends the wait."""
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    server = run_server({**QUICK, "TRANSLATION_DELAY": 2.0, "STORE": store})
    outcome: dict[str, Any] = {}
    with TranslationClient(server.url, user_id="restart") as tc:
        job = tc.submit("free")

        def wait() -> None:
            try:
                outcome["job"] = tc.wait_for_completion(job.job_id, timeout=20)
            except Exception as e:  # reported below
                outcome["error"] = e

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        assert server.stop() == 0
        time.sleep(0.5)  # the server is down: the waiter's requests are refused
        run_server({**QUICK, "TRANSLATION_DELAY": 2.0, "STORE": store}, port=server.port)
        waiter.join(timeout=25)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["job"].status == "completed"
    assert outcome["job"].job_id == job.job_id


def test_a_job_lost_by_a_restart_is_reported_not_found(run_server) -> None:
    """With the memory store a restart forgets jobs: the waiter gets NotFoundError rather than hanging."""
    server = run_server({**QUICK, "TRANSLATION_DELAY": 5.0})
    with TranslationClient(server.url) as tc:
        job = tc.submit("free")
        server.stop()
        run_server({**QUICK}, port=server.port)
        with pytest.raises(NotFoundError):
            tc.wait_for_completion(job.job_id, timeout=10)
