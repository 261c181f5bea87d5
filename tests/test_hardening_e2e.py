"""Hardening, end to end on real sockets: concurrency, injected faults, held long-polls, secrets, shutdown."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from client import RateLimitError, TranslationClient
from server import create_app
from simulator.testing import ServerProcess
from simulator.ticker import Ticker
from tests.conftest import ADMIN_TOKEN, FAST, ROOT

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class InProcessServer:
    """The real app on a real socket in this process (threaded Werkzeug), so a test can inspect its engine."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.app = create_app({**FAST, **settings})
        self.engine = self.app.extensions["simulator"].engine
        self.ticker = Ticker(self.engine).start()
        self.http = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.ticker.stop()


@pytest.fixture
def in_process() -> Iterator[Any]:
    servers: list[InProcessServer] = []

    def start(settings: dict[str, Any]) -> InProcessServer:
        servers.append(InProcessServer(settings))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def all_jobs(url: str) -> list[dict[str, Any]]:
    """Return every job listed by GET /jobs, with its group."""
    grouped = requests.get(url + "/jobs", timeout=30).json()
    return [{**job, "_group": (status, role)} for status, roles in grouped.items()
            for role, by_id in roles.items() for job in by_id.values()]


# ------------------------------------------------------------------------------------------ concurrency


def test_two_thousand_parallel_submissions_make_two_thousand_jobs(run_server) -> None:
    """8 threads x 250 submissions to `python server.py` make 2000 distinct jobs, all listed once."""
    server = run_server({"TRANSLATION_DELAY": 0.05, "WORKERS": 50})

    def submit(worker: int) -> list[str]:
        with requests.Session() as s:
            return [s.post(server.url + "/translate", json={"role": "premium"},
                           headers={"X-User-Id": f"w{worker}"}, timeout=30).json()["job_id"] for _ in range(250)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [i for batch in pool.map(submit, range(8)) for i in batch]
    listed = [job["job_id"] for job in all_jobs(server.url)]
    assert len(ids) == len(set(ids)) == 2000
    assert sorted(listed) == sorted(ids)


def test_fifty_concurrent_free_submissions_pass_the_limit_exactly(run_server) -> None:
    """50 free submissions from one user at once: exactly RATE_LIMIT are accepted, the rest get 429."""
    server = run_server({"RATE_LIMIT": 5})
    barrier = threading.Barrier(50)

    def submit(_: int) -> int:
        with requests.Session() as s:
            barrier.wait()
            return s.post(server.url + "/translate", headers={"X-User-Id": "crowd"}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(submit, range(50)))
    assert codes.count(202) == 5
    assert codes.count(429) == 45
    assert len(all_jobs(server.url)) == 5


def test_cancelling_while_processing_leaves_one_terminal_state_each(in_process) -> None:
    """Jobs cancelled from 4 threads while 8 workers run, fail and retry all end in exactly one terminal state."""
    server = in_process({"TRANSLATION_DELAY": 0.1, "DELAY_JITTER": 0.5, "ERROR_RATE": 0.3, "MAX_RETRIES": 2,
                         "WORKERS": 8, "RATE_LIMIT": 1000})
    with requests.Session() as s:
        ids = [s.post(server.url + "/translate", json={"role": random.choice(["free", "premium"])},
                      headers={"X-User-Id": "many"}, timeout=10).json()["job_id"] for _ in range(300)]
    rng = random.Random(5)
    doomed = rng.sample(ids, 150)
    outcomes: list[int] = []

    def cancel(chunk: list[str]) -> None:
        with requests.Session() as s:
            for job_id in chunk:
                outcomes.append(s.post(f"{server.url}/cancel/{job_id}", headers=ADMIN, json={"reason": "x"},
                                       timeout=10).status_code)
                time.sleep(rng.random() * 0.01)

    threads = [threading.Thread(target=cancel, args=(doomed[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    TranslationClient(server.url).wait_for_all(ids, timeout=60)
    jobs = all_jobs(server.url)
    assert sorted(j["job_id"] for j in jobs) == sorted(ids)  # each job listed exactly once
    assert {j["status"] for j in jobs} <= {"completed", "permanently_failed", "cancelled"}
    assert all(j["_group"][0] == j["status"] for j in jobs)
    cancelled = {j["job_id"] for j in jobs if j["status"] == "cancelled"}
    assert cancelled <= set(doomed)
    assert set(outcomes) <= {200, 409}  # 409: it had finished before the cancel arrived
    assert outcomes.count(200) == len(cancelled)
    assert server.engine.check_invariants() == []


# ------------------------------------------------------------------------------------------ faults


def test_the_client_sees_true_outcomes_under_a_thirty_percent_fault_rate(in_process) -> None:
    """50 submit-and-wait runs under FAULT_RATE=0.3 end with each job's true outcome; no POST made a duplicate."""
    server = in_process({"TRANSLATION_DELAY": 0.2, "PREMIUM_DELAY_FACTOR": 1.0, "ERROR_RATE": 0.3,
                         "MAX_RETRIES": 1, "WORKERS": 10, "FAULT_RATE": 0.3, "FAULT_DELAY": 1.0})
    seen: dict[str, str] = {}

    def run(n: int) -> None:
        with TranslationClient(server.url, user_id=f"f{n % 10}", timeout=0.5, submit_retries=12) as tc:
            job = tc.submit("premium")
            seen[job.job_id] = tc.wait_for_completion(job.job_id, timeout=60).status

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(run, range(50)))
    injected = dict(server.app.extensions["simulator"].faults.injected)
    server.engine.configure({"FAULT_RATE": 0})
    truth = {j["job_id"]: j["status"] for j in all_jobs(server.url)}
    assert len(truth) == 50, "a retried POST made a second job"
    assert seen == truth
    assert sum(injected.values()) >= 20 and all(injected.values()), injected
    print(f"faults injected: {injected}; outcomes: {Counter(seen.values())}")  # shown by pytest -rP


def test_faults_are_distinguishable_and_never_hit_admin_or_health(in_process) -> None:
    """Injected faults answer problem+json code injected_fault; /healthz and admin endpoints never fail."""
    server = in_process({"FAULT_RATE": 1.0, "FAULT_DELAY": 0.0})
    with requests.Session() as s:
        faulted = [s.get(server.url + "/queue", timeout=5) for _ in range(40)]
        assert all(s.get(server.url + "/healthz", timeout=5).status_code == 200 for _ in range(20))
        assert all(s.post(server.url + "/process_jobs", headers=ADMIN, timeout=5).status_code == 200
                   for _ in range(20))
    failed = [r for r in faulted if r.status_code >= 500]
    assert failed and all(r.json()["code"] == "injected_fault" for r in failed)
    assert all(r.headers["Retry-After"] == "1" for r in failed if r.status_code == 503)
    assert {r.json()["fault"] for r in failed} <= {"error_before", "unavailable_before", "error_after"}
    assert len(failed) < 40  # the slow ones answered 200, late (here: after 0 s)
    assert server.app.extensions["simulator"].faults.injected["slow_after"] == 40 - len(failed)


def test_a_fault_after_the_work_keeps_the_work(in_process) -> None:
    """A submission answered by an `error_after` fault still made its job; the same key replays it."""
    server = in_process({"FAULT_RATE": 1.0, "FAULT_DELAY": 0.0})
    faults = server.app.extensions["simulator"].faults
    for _ in range(50):  # until the draw is a fault after the work
        before = dict(faults.injected)
        r = requests.post(server.url + "/translate", headers={"Idempotency-Key": "k1", "X-User-Id": "u"},
                          json={"role": "premium"}, timeout=5)
        if faults.injected["error_after"] > before["error_after"]:
            break
    assert r.status_code == 500 and r.json()["fault"] == "error_after"
    server.engine.configure({"FAULT_RATE": 0})
    replay = requests.post(server.url + "/translate", headers={"Idempotency-Key": "k1", "X-User-Id": "u"},
                           json={"role": "premium"}, timeout=5)
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert len(all_jobs(server.url)) == 1


# ------------------------------------------------------------------------------------------ long-polls


def test_healthz_stays_quick_while_hundreds_of_long_polls_are_held(run_server) -> None:
    """With 450 long-polls sent (400 held: MAX_LONG_POLLS), /healthz answers quickly and the rest answer at once."""
    server = run_server({"TRANSLATION_DELAY": 60, "WORKERS": 1, "MAX_WAIT": 30, "MAX_LONG_POLLS": 400})
    job_id = requests.post(server.url + "/translate", json={"role": "premium"}, timeout=5).json()["job_id"]
    request = f"GET /status/{job_id}?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sockets = []
    try:
        for _ in range(450):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(request)
            sockets.append(sock)
        time.sleep(1.0)  # let the server take them all in
        latencies = []
        with requests.Session() as s:
            for _ in range(50):
                started = time.perf_counter()
                assert s.get(server.url + "/healthz", timeout=5).status_code == 200
                latencies.append(time.perf_counter() - started)
        answered = 0
        for sock in sockets:
            sock.settimeout(0.01)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            assert b"200 OK" in data and b"preference-applied" not in data.lower()
            answered += 1
        assert answered == 50, "exactly the long-polls over MAX_LONG_POLLS are answered at once"
        assert max(latencies) < 0.5
        assert sorted(latencies)[len(latencies) // 2] < 0.05
    finally:
        for sock in sockets:
            sock.close()


# ------------------------------------------------------------------------------------------ secrets


def test_a_generated_admin_token_is_printed_once_and_never_logged_or_returned(tmp_path) -> None:
    """Without ADMIN_TOKEN the server prints a generated one once; it never appears in logs or answers."""
    env_token = os.environ.pop("ADMIN_TOKEN", None)
    err = tmp_path / "err.txt"
    try:
        with open(err, "w") as stderr:
            server = ServerProcess({"TRANSLATION_DELAY": "0.1"}, cwd=ROOT, stderr=stderr).start()
    finally:
        if env_token is not None:
            os.environ["ADMIN_TOKEN"] = env_token
    try:
        url = server.url
        out = "\n".join(server.stdout_lines)
        token = out.split("ADMIN_TOKEN (generated for this run): ", 1)[1].split()[0]
        bodies = []
        with requests.Session() as s:
            auth = {"Authorization": f"Bearer {token}"}
            job_id = s.post(url + "/translate", timeout=5).json()["job_id"]
            bodies.append(s.post(f"{url}/cancel/{job_id}", headers=auth, timeout=5).text)
            bodies.append(s.post(url + "/config", headers=auth, json={"WORKERS": 3}, timeout=5).text)
            bodies.append(s.post(url + "/config", headers=auth, json={"ADMIN_TOKEN": "x"}, timeout=5).text)
            bodies.append(s.get(url + "/config", timeout=5).text)
            bodies.append(s.post(url + "/cleanup", headers={"Authorization": f"Bearer {token}x"}, timeout=5).text)
        assert all(token not in body for body in bodies)
    finally:
        assert server.stop() == 0
    printed, logged = "\n".join(server.stdout_lines), err.read_text()
    assert printed.count(token) == 1
    assert token not in logged and logged.count('"POST /config"') == 2


def test_an_unexpected_error_answers_500_without_internal_detail(client, app, monkeypatch) -> None:
    """An exception inside the engine becomes a 500 problem+json with no message, type or traceback leaked."""

    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internal detail at /srv/app/jobs.py line 42")

    monkeypatch.setattr(app.extensions["simulator"].engine, "get", explode)
    response = client.get("/status/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    body = response.get_data(as_text=True)
    assert json.loads(body)["code"] == "internal_error"
    assert "secret" not in body and "RuntimeError" not in body and "Traceback" not in body


# ------------------------------------------------------------------------------------------ shutdown


def test_sigterm_lets_requests_in_flight_finish_and_exits_zero(run_server) -> None:
    """A held long-poll and a slow answer in flight at SIGTERM both get their answers; the exit code is 0."""
    server = run_server({"TRANSLATION_DELAY": 60, "MAX_WAIT": 30})
    job_id = requests.post(server.url + "/translate", timeout=5).json()["job_id"]
    results: dict[str, int] = {}

    def long_poll() -> None:
        results["long_poll"] = requests.get(f"{server.url}/status/{job_id}?wait=30", timeout=20).status_code

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert server.stop() == 0
    poller.join(timeout=20)
    assert results == {"long_poll": 200}
    assert time.monotonic() - started < 10
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/healthz", timeout=1)


def test_the_client_raises_rate_limit_at_once_under_load(run_server) -> None:
    """Free submissions beyond the limit raise RateLimitError immediately, also when sent concurrently."""
    server = run_server({"RATE_LIMIT": 2})

    def submit(_: int) -> str:
        try:
            with TranslationClient(server.url, user_id="burst") as tc:
                tc.submit("free")
            return "ok"
        except RateLimitError:
            return "limited"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(submit, range(10)))
    assert outcomes.count("ok") == 2 and outcomes.count("limited") == 8
