"""Several real server processes on one real Redis: one rate limit, long-polls across processes, settings that
reach every process, `--workers` surviving `kill -9` of the process that drives simulated time, and API keys and
webhooks shared by every process."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests

from client import WebhookReceiver
from simulator.testing import ServerProcess
from simulator.webhooks.signing import new_secret
from tests.conftest import FAST, ROOT, redis_store_url

SETTINGS = {**FAST, "RATE_LIMIT": 5, "TRANSLATION_DELAY": 0.6, "PREMIUM_DELAY_FACTOR": 0.5, "MAX_WAIT": 10}
ADMIN = {"Authorization": f"Bearer {FAST['ADMIN_TOKEN']}"}


@pytest.fixture
def two_servers(redis_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Start two server processes, each on its own port, on the same Redis keys."""
    store = redis_store_url(redis_url)
    servers = [ServerProcess({**SETTINGS, "STORE": store}, cwd=ROOT).start() for _ in range(2)]
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


def test_concurrent_free_submissions_over_two_processes_pass_exactly_the_limit(two_servers) -> None:
    """50 concurrent free submissions of one user, alternating between two processes, get exactly RATE_LIMIT 202s."""
    urls = [server.url for server in two_servers]

    def submit(i: int) -> int:
        return requests.post(f"{urls[i % 2]}/translate", headers={"X-User-Id": "dana"}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(submit, range(50)))
    assert codes.count(202) == SETTINGS["RATE_LIMIT"]
    assert codes.count(429) == 50 - SETTINGS["RATE_LIMIT"]
    assert requests.get(f"{urls[1]}/jobs", params={"user_id": "dana"}, timeout=5).headers["X-Total-Count"] == "5"


def test_a_job_submitted_on_one_process_is_seen_ending_by_a_long_poll_on_the_other(two_servers) -> None:
    """A long-poll held by process B answers the completion of a job submitted to process A within moments."""
    a, b = two_servers
    job = requests.post(f"{a.url}/translate", json={"role": "premium"}, headers={"X-User-Id": "erin"}, timeout=5).json()
    answer = requests.get(f"{b.url}/status/{job['job_id']}", params={"wait": 8, "since": job["version"]}, timeout=10)
    seen = time.time()
    assert answer.json()["status"] == "completed"
    finished = datetime.fromisoformat(answer.json()["finished_at"].replace("Z", "+00:00")).timestamp()
    assert seen - finished < 1.0


def test_a_settings_change_reaches_the_other_process_within_a_second(two_servers) -> None:
    """POST /config to one process changes what the other answers on GET /config within one second."""
    a, b = two_servers
    assert requests.post(f"{a.url}/config", json={"ERROR_RATE": 0.5}, headers=ADMIN, timeout=5).status_code == 200
    deadline = time.monotonic() + 1.0
    while requests.get(f"{b.url}/config", timeout=5).json()["ERROR_RATE"] != 0.5:
        assert time.monotonic() < deadline, "the change did not reach the other process in time"


def test_a_key_issued_by_one_process_works_on_the_other_and_each_webhook_arrives_once(redis_url: str) -> None:
    """AUTH_MODE=keys on Redis: a key issued through process A authenticates on process B (and a wrong one does not);
    jobs submitted with a callback_url through both, each process running its deliverer, reach the one receiver
    once each, and the shared delivery log says so on both processes."""
    secret = new_secret()
    settings = {**SETTINGS, "STORE": redis_store_url(redis_url), "AUTH_MODE": "keys", "ERROR_RATE": 0.0,
                "WEBHOOK_SECRET": secret}
    a, b = (ServerProcess(settings, cwd=ROOT).start() for _ in range(2))
    try:
        issued = requests.post(f"{a.url}/api-keys", json={"user_id": "fay", "role": "premium"}, headers=ADMIN,
                               timeout=5)
        key = {"X-Api-Key": issued.json()["api_key"]}
        assert requests.get(f"{b.url}/jobs", headers=key, timeout=5).status_code == 200
        wrong = {"X-Api-Key": issued.json()["api_key"][:-2] + "xx"}
        assert requests.get(f"{b.url}/jobs", headers=wrong, timeout=5).status_code == 401
        with WebhookReceiver(secret) as receiver:
            ids = [requests.post(f"{server.url}/translate", json={"callback_url": receiver.url}, headers=key,
                                 timeout=5).json()["job_id"] for server in (a, b, a, b, b, a)]
            events = receiver.wait_for(len(ids), 15)
            deadline = time.monotonic() + 10
            while True:  # every delivery recorded as sent: no process is still about to send one
                log = requests.get(f"{b.url}/webhooks/deliveries", headers=ADMIN, timeout=5).json()
                if log["total"] == len(ids) and all(d["status"] == "succeeded" for d in log["deliveries"]):
                    break
                assert time.monotonic() < deadline, log
                time.sleep(0.05)
            assert receiver.duplicates == 0
        assert sorted(e.event["data"]["job_id"] for e in events) == sorted(ids)
        assert [d["attempts"] for d in log["deliveries"]] == [1] * len(ids)
        assert requests.get(f"{a.url}/webhooks/deliveries", headers=ADMIN, timeout=5).json()["total"] == len(ids)
    finally:
        a.stop()
        b.stop()


def test_workers_keep_serving_and_lose_nothing_when_the_ticker_holder_is_killed(redis_url: str) -> None:
    """`--workers 2`: kill -9 of the lease holder loses no acknowledged job, another takes the lease within 2 s, and
    the dead worker is replaced."""
    store = redis_store_url(redis_url)
    prefix = store.rsplit("prefix=", 1)[1]
    lease_key = "{" + prefix + "}:leader"
    keys = redis.Redis.from_url(redis_url, decode_responses=True)
    with ServerProcess({**SETTINGS, "STORE": store, "PROCESSES": 2, "TRANSLATION_DELAY": 0.3}, cwd=ROOT) as server:
        with requests.Session() as session:
            acknowledged = [session.post(f"{server.url}/translate", json={"role": "premium"}, timeout=5).json()
                            for _ in range(20)]
        holder = keys.get(lease_key)
        assert holder is not None
        os.kill(int(holder.split(":")[0]), signal.SIGKILL)
        killed = time.monotonic()
        while (now := keys.get(lease_key)) in (None, holder):
            assert time.monotonic() - killed < 2.0, "no process took the ticker over within 2 s"
            time.sleep(0.02)
        for job in acknowledged:  # new connections: served by the survivor (and the restarted worker)
            answer = requests.get(f"{server.url}/status/{job['job_id']}", params={"wait": 5}, timeout=10)
            assert answer.status_code == 200
            assert answer.json()["version"] >= job["version"]
        workers = Path(f"/proc/{server.pid}/task/{server.pid}/children")
        while len(set(workers.read_text().split()) - {holder.split(":")[0]}) < 2:  # the dead one is replaced
            assert time.monotonic() - killed < 20, "the killed worker was not replaced"
            time.sleep(0.05)
        late = requests.post(f"{server.url}/translate", json={"role": "premium"}, timeout=5).json()
        final = requests.get(f"{server.url}/status/{late['job_id']}", params={"wait": 5, "since": late["version"]},
                             timeout=10).json()
        assert final["status"] in ("completed", "pending")  # the new holder drives time: the job moved on
        assert final["version"] > late["version"]
        assert now != holder


def test_workers_share_one_port_and_each_ones_long_polls_wake_on_the_others_changes(redis_url: str) -> None:
    """`--workers 3` prints one Serving line; long-polls on 12 connections (spread over the workers by the kernel)
    are held in the workers' event loops and all answer within moments when another connection cancels the job."""
    settings = {**SETTINGS, "STORE": redis_store_url(redis_url), "PROCESSES": 3, "PROCESSING_MODE": "manual"}
    with ServerProcess(settings, cwd=ROOT) as server:
        assert [line for line in server.stdout_lines if "Serving on" in line] == [f"Serving on {server.url}"]
        job = requests.post(f"{server.url}/translate", json={"role": "premium"}, timeout=5).json()

        def hold(_: int) -> tuple[float, dict]:
            answer = requests.get(f"{server.url}/status/{job['job_id']}",
                                  params={"wait": 10, "since": job["version"]}, timeout=20)
            return time.monotonic(), answer.json()

        with ThreadPoolExecutor(max_workers=12) as pool:
            held = [pool.submit(hold, i) for i in range(12)]
            threading.Event().wait(1.5)  # the long-polls reach their workers and are held
            assert not any(future.done() for future in held)
            cancelled = time.monotonic()
            assert requests.post(f"{server.url}/cancel/{job['job_id']}", headers=ADMIN, timeout=5).status_code == 200
            answers = [future.result() for future in held]
        assert {view["status"] for _, view in answers} == {"cancelled"}
        assert max(at for at, _ in answers) - cancelled < 2.0
