"""Webhook delivery: a burst of 1,000 finished jobs, a receiver down for 30 s, and kill -9 with deliveries pending.

    python bench/webhooks.py                    # about a minute and a half
    python bench/webhooks.py --workers 4,8,16   # the burst with each WEBHOOK_WORKERS, side by side
    python bench/webhooks.py --quick            # smoke run (a few seconds)

Every scenario runs `python server.py` and a receiver, `python client.py listen --json`, in their own
processes on free ports; each job is submitted with a `callback_url` pointing at the receiver, which verifies
both signatures, dedupes by `webhook-id`, and prints each event with the time it arrived. Lag: from the job's
`finished_at` (the server's clock) to the receipt (the receiver's clock; the same machine).

1. Burst: N premium jobs (manual mode, then all started by one POST /process_jobs) end within one second
   (TRANSLATION_DELAY 2 s ± 20 %): N deliveries, and the lag from each job's end to its receipt.
2. Receiver down: N jobs end while nothing listens on the callback port; the receiver starts DOWN seconds
   later. Every event must arrive, none twice (after dedupe by webhook-id; duplicates received are counted).
   WEBHOOK_RETRY_SCALE 0.02: retries 0.1 s, 6 s, 36 s, 144 s … after the first attempt.
3. kill -9: the SQLite store, N jobs end while the receiver is down, the server is killed with SIGKILL once
   every delivery has been tried (all pending), then the receiver and the server are started again: every
   event must arrive.

Targets (issue 14): 1,000 deliveries from a one-second burst with lag p95 ≤ 100 ms; after 30 s down, all
delivered, none twice; after kill -9, all delivered.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import Server, epoch, free_port, machine, ms, percentile, revision, table  # noqa: E402
from simulator.webhooks.signing import new_secret  # noqa: E402

SECRET = new_secret()
BASE = {"WEBHOOK_SECRET": SECRET, "ERROR_RATE": 0, "RATE_LIMIT": 1_000_000, "MAX_JOBS": 1_000_000,
        "JOB_TTL": 86_400, "PREMIUM_DELAY_FACTOR": 1}


class Receiver:
    """`python client.py listen --json` in a subprocess; collects (webhook_id, received_at, event) per line."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/webhooks"
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "client.py"), "--json", "listen", "--port", str(port), "--secret", SECRET],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        assert self.process.stderr is not None
        self.process.stderr.readline()  # "Listening on …": it is ready
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until `count` distinct events arrived or `timeout` passed; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.events) >= count:
                    break
            time.sleep(0.02)
        with self._lock:
            return list(self.events)

    def stop(self) -> int:
        """Stop the receiver; return how many duplicate deliveries it dropped (it says so when it stops)."""
        self.process.send_signal(signal.SIGINT)
        try:
            _, said = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, said = self.process.communicate()
        found = re.search(r"(\d+) duplicate", said or "")
        return int(found.group(1)) if found else -1


def submit(server: Server, n: int, callback_url: str) -> list[str]:
    """Submit n premium jobs with a callback_url; return their ids."""
    with requests.Session() as session:
        return [session.post(f"{server.url}/translate", json={"role": "premium", "callback_url": callback_url},
                             timeout=10).json()["job_id"] for _ in range(n)]


def deliveries(server: Server) -> list[dict[str, Any]]:
    """Return the server's delivery log."""
    return server.admin("GET", "/webhooks/deliveries").json()["deliveries"]


def lags(events: list[dict[str, Any]]) -> list[float]:
    """Return each event's lag: receipt minus the job's finished_at, seconds."""
    return [e["received_at"] - epoch(e["data"]["finished_at"]) for e in events]


def burst(n: int, workers: int) -> dict[str, Any]:
    """Scenario 1: n jobs ending within a second, delivered by `workers` threads; return the figures."""
    receiver = Receiver(free_port())
    settings = {**BASE, "TRANSLATION_DELAY": 2.0, "DELAY_JITTER": 0.2, "WORKERS": 10_000,
                "PROCESSING_MODE": "manual", "WEBHOOK_WORKERS": workers}
    try:
        with Server(settings, name="burst") as server:
            ids = submit(server, n, receiver.url)
            server.admin("POST", "/process_jobs", {"count": n})
            events = receiver.wait_for(n, 60)
            log = deliveries(server)
    finally:
        receiver.stop()
    ends = sorted(epoch(e["data"]["finished_at"]) for e in events)
    values = lags(events)
    return {"workers": workers, "jobs": len(ids), "delivered": len(events),
            "window": ends[-1] - ends[0] if ends else float("nan"),
            "p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "max": max(values, default=float("nan")),
            "attempts": sum(d["attempts"] for d in log), "unique": len({e["webhook_id"] for e in events})}


def down_then_back(n: int, down: float) -> dict[str, Any]:
    """Scenario 2: the receiver starts `down` seconds after n jobs ended; return the figures."""
    port = free_port()
    settings = {**BASE, "TRANSLATION_DELAY": 0.2, "DELAY_JITTER": 0, "WORKERS": 10_000, "WEBHOOK_RETRY_SCALE": 0.02}
    with Server(settings, name="down") as server:
        ids = submit(server, n, f"http://127.0.0.1:{port}/webhooks")
        ended = time.monotonic()
        time.sleep(down)
        before = deliveries(server)
        receiver = Receiver(port)
        back, back_epoch = time.monotonic(), time.time()
        try:
            events = receiver.wait_for(n, 180)
            time.sleep(1.0)  # anything sent twice would arrive now
            log = deliveries(server)
        finally:
            duplicates = receiver.stop()
    received = {e["data"]["job_id"] for e in events}
    return {"jobs": len(ids), "down": back - ended, "delivered": len(received & set(ids)),
            "twice_after_dedupe": len(events) - len({e["webhook_id"] for e in events}),
            "duplicates_received": duplicates,
            "attempts_while_down": sum(d["attempts"] for d in before),
            "attempts": sum(d["attempts"] for d in log),
            "all_in": max((e["received_at"] for e in events), default=float("nan")) - back_epoch}


def killed(n: int) -> dict[str, Any]:
    """Scenario 3: SQLite, kill -9 with every delivery pending, restart; return the figures."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        settings = {**BASE, "TRANSLATION_DELAY": 0.2, "DELAY_JITTER": 0, "WORKERS": 10_000,
                    "WEBHOOK_RETRY_SCALE": 0.02, "STORE": f"sqlite:///{tmp}/jobs.db"}
        server = Server(settings, name="killed").start()
        try:
            ids = submit(server, n, f"http://127.0.0.1:{port}/webhooks")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                log = deliveries(server)
                if len(log) == n and all(d["attempts"] >= 1 for d in log):
                    break
                time.sleep(0.05)
            pending = sum(1 for d in log if d["status"] == "pending")
        finally:
            os.kill(server.pid, signal.SIGKILL)
            server.process.wait()  # type: ignore[union-attr]
            server.process = None
        receiver = Receiver(port)
        restarted = time.monotonic()
        try:
            with Server(settings, name="restarted"):
                events = receiver.wait_for(n, 120)
                took = time.monotonic() - restarted
        finally:
            duplicates = receiver.stop()
    received = {e["data"]["job_id"] for e in events}
    return {"jobs": len(ids), "pending_at_kill": pending, "delivered": len(received & set(ids)),
            "twice_after_dedupe": len(events) - len({e["webhook_id"] for e in events}),
            "duplicates_received": duplicates, "seconds": took}


def main() -> int:
    """Run the three scenarios and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts, a short outage")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the burst (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="burst rounds; medians are reported (default 3)")
    parser.add_argument("--down", type=float, default=30.0, help="seconds the receiver is down (default 30)")
    parser.add_argument("--workers", default="16",
                        help="WEBHOOK_WORKERS values compared in the burst, e.g. 4,8,16 (alternating rounds)")
    args = parser.parse_args()
    jobs, rounds, down, others = (50, 1, 2.0, 20) if args.quick else (args.jobs, args.rounds, args.down, 200)
    counts = [int(w) for w in args.workers.split(",")]

    print(f"# bench/webhooks.py — {machine()}; {revision()}")
    print(f"Load average at the start (other work on this machine): {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    results = [burst(jobs, workers) for _ in range(rounds) for workers in counts]
    rows = [[i // len(counts) + 1, r["workers"], r["jobs"], r["delivered"], r["unique"], f"{r['window']:.2f}",
             ms(r["p50"]), ms(r["p95"]), ms(r["p99"]), ms(r["max"]), r["attempts"]] for i, r in enumerate(results)]
    print(f"## 1. Burst: {jobs} jobs ending within one second\n")
    print(table(["round", "WEBHOOK_WORKERS", "jobs", "delivered", "distinct webhook-ids", "end window s",
                 "lag p50 ms", "lag p95 ms", "lag p99 ms", "lag max ms", "attempts"], rows))
    medians = {w: {k: statistics.median(r[k] for r in results if r["workers"] == w) for k in ("p50", "p95", "p99",
                                                                                           "max")} for w in counts}
    for workers, m in medians.items():
        print(f"\nWEBHOOK_WORKERS {workers}, median of {rounds} round(s): lag p50 {ms(m['p50'])} ms, "
              f"p95 {ms(m['p95'])} ms, p99 {ms(m['p99'])} ms, max {ms(m['max'])} ms.")
    median = medians[counts[-1]]
    print()

    outage = down_then_back(others, down)
    print(f"## 2. Receiver down for {down:g} s, then back\n")
    print(table(["jobs", "down s", "delivered", "twice after dedupe", "duplicates dropped", "attempts while down",
                 "attempts in all", "s from back to the last event"],
                [[outage["jobs"], f"{outage['down']:.1f}", outage["delivered"], outage["twice_after_dedupe"],
                  outage["duplicates_received"], outage["attempts_while_down"], outage["attempts"],
                  f"{outage['all_in']:.1f}"]]))
    crash = killed(others)
    print("\n## 3. SQLite store, kill -9 with deliveries pending, restart\n")
    print(table(["jobs", "pending at the kill", "delivered after restart", "twice after dedupe",
                 "duplicates dropped", "seconds to deliver all after restart"],
                [[crash["jobs"], crash["pending_at_kill"], crash["delivered"], crash["twice_after_dedupe"],
                  crash["duplicates_received"], f"{crash['seconds']:.1f}"]]))

    target_rows = [
        [f"{jobs} deliveries from a one-second burst", "all", f"{min(r['delivered'] for r in results)}"],
        [f"lag p95, job end → receipt (WEBHOOK_WORKERS {counts[-1]})", "≤ 100 ms", f"{ms(median['p95'])} ms"],
        [f"receiver down {down:g} s: delivered", f"{outage['jobs']}", f"{outage['delivered']}"],
        ["receiver down: delivered twice after dedupe", "0", f"{outage['twice_after_dedupe']}"],
        ["kill -9 with deliveries pending: delivered after restart", f"{crash['jobs']}", f"{crash['delivered']}"],
    ]
    print("\n## Targets\n")
    print(table(["target", "wanted", "measured"], target_rows, "lrr"))
    print(f"\nLoad average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    ok = (all(r["delivered"] == r["jobs"] for r in results) and outage["delivered"] == outage["jobs"]
          and outage["twice_after_dedupe"] == 0 and crash["delivered"] == crash["jobs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
