"""Crash test of the SQLite store: a real server killed with SIGKILL at random moments loses nothing it acknowledged."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import requests

from simulator.testing import ServerProcess
from tests.conftest import FAST, ROOT

KILLS = 20
SETTINGS = {**FAST, "TRANSLATION_DELAY": 0.4, "DELAY_JITTER": 0.5, "ERROR_RATE": 0.3, "MAX_RETRIES": 2,
            "WORKERS": 3, "RATE_LIMIT": 1_000_000, "MAX_WAIT": 1}


class Witness:
    """A client that submits and long-polls in a loop, remembering the latest version of each job it was told of."""

    def __init__(self, url: str, prefix: str, rng: random.Random) -> None:
        self.url = url
        self.prefix = prefix
        self.rng = rng
        self.seen: dict[str, dict[str, Any]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        """Submit or poll until the server dies under it (any transport error ends the run)."""
        n = 0
        with requests.Session() as session:
            try:
                while not self.stop.is_set():
                    if not self.seen or self.rng.random() < 0.5:
                        n += 1
                        role = self.rng.choice(["free", "premium"])
                        answer = session.post(f"{self.url}/translate", json={"role": role}, timeout=5,
                                              headers={"X-User-Id": "crash", "Idempotency-Key": f"{self.prefix}-{n}"})
                    else:
                        job_id = self.rng.choice(list(self.seen))
                        answer = session.get(f"{self.url}/status/{job_id}", params={"wait": 0.3}, timeout=5)
                    if answer.status_code in (200, 202):
                        job = answer.json()
                        self.seen[job["job_id"]] = job  # acknowledged: the server sent it
            except requests.RequestException:
                return


def test_sigkill_at_random_moments_loses_no_acknowledged_job_or_transition(tmp_path) -> None:
    """Killed 20 times mid-traffic, the server restarts with every job it answered, each at least as far along."""
    rng = random.Random(20261201)
    settings = {**SETTINGS, "STORE": f"sqlite:///{tmp_path / 'jobs.db'}"}
    acknowledged: dict[str, dict[str, Any]] = {}
    for kill in range(KILLS):
        server = ServerProcess(settings, cwd=ROOT).start()
        check_every_job_is_as_far_along(server.url, acknowledged)
        witness = Witness(server.url, f"k{kill}", rng)
        thread = threading.Thread(target=witness.run)
        thread.start()
        time.sleep(rng.uniform(0.05, 0.6))  # a random moment in the traffic
        server.kill()
        witness.stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()
        acknowledged.update(witness.seen)
    with ServerProcess(settings, cwd=ROOT) as server:
        check_every_job_is_as_far_along(server.url, acknowledged)
    assert len(acknowledged) > KILLS  # the test did make jobs between the kills


def check_every_job_is_as_far_along(url: str, acknowledged: dict[str, dict[str, Any]]) -> None:
    """Assert that every acknowledged job is stored, at a version at least the one seen, and still in a final state."""
    with requests.Session() as session:
        for job_id, before in acknowledged.items():
            now = session.get(f"{url}/status/{job_id}", timeout=5)
            assert now.status_code == 200, f"job {job_id}, acknowledged before a kill, is gone"
            after = now.json()
            assert after["version"] >= before["version"], (before, after)
            if before["done"]:
                assert after["status"] == before["status"]
