"""The waiting problem: how fast, and with how many requests, does each way of waiting learn that a job ended?

One server, one run, the same jobs: several durations (1 s, 3 s, 10 s by default, with jitter), each
waited for by every strategy side by side (one process per strategy, one thread per job):

1. fixed 1 s polling;  2. fixed 5 s polling;  3. exponential backoff from 1 s, ×2, capped at 30 s;
4. TranslationClient with long-polling off (paced by the server's hints);
5. TranslationClient with long-polling.

Jobs are submitted at a steady rate (20 a second), durations interleaved, and each strategy starts
waiting for a job as soon as it is submitted, as a caller would (the clients use
`wait_for_completion`, one thread per job).

For each: status requests per job (mean, max) and the detection lag, from the instant the server
finished the job (its `finished_at`) to the instant the caller knew, p50 / p95 / max. Both processes
run on one machine, so their wall clocks agree.

    python bench/polling.py            # the full run (about 30 s)
    python bench/polling.py --quick    # a one-second smoke run: durations and intervals ×0.1, 2 jobs each
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench._common import Server, epoch, machine, ms, percentile, revision, table  # noqa: E402
from client import TranslationClient  # noqa: E402

FIXED_1 = "fixed 1 s polling"
FIXED_5 = "fixed 5 s polling"
BACKOFF = "backoff 1 s ×2, cap 30 s"
HINTED = "our client, long-poll off (hint-paced)"
LONG_POLL = "our client, long-poll"
STRATEGIES = (FIXED_1, FIXED_5, BACKOFF, HINTED, LONG_POLL)
OURS = (HINTED, LONG_POLL)
BASELINES = (FIXED_1, FIXED_5, BACKOFF)

#: What one waiter reports: job id, status requests it sent, when it knew (epoch s), the final job, error.
Outcome = dict[str, Any]


# ------------------------------------------------------------------------------------------- strategies


def poll_loop(url: str, job_id: str, delays: Callable[[int], float]) -> Outcome:
    """Poll GET /status/<id> until the job is done, sleeping `delays(n)` after the n-th unfinished answer."""
    with requests.Session() as session:
        n = 0
        first_at = None
        while True:
            body = session.get(f"{url}/status/{job_id}", timeout=30).json()
            first_at = first_at or time.time()
            n += 1
            if body["done"]:
                return {"job_id": job_id, "requests": n, "known_at": time.time(), "first_at": first_at, "job": body}
            time.sleep(delays(n - 1))


def waiter(name: str, url: str, scale: float) -> Callable[[str], Outcome]:
    """Return the function that waits for one job the way strategy `name` does."""
    if name == FIXED_1:
        return lambda job_id: poll_loop(url, job_id, lambda n: 1.0 * scale)
    if name == FIXED_5:
        return lambda job_id: poll_loop(url, job_id, lambda n: 5.0 * scale)
    if name == BACKOFF:
        return lambda job_id: poll_loop(url, job_id, lambda n: min(30.0, 1.0 * 2.0**n) * scale)

    def with_client(job_id: str) -> Outcome:
        trace: list[tuple[float, float, float | None]] = []  # (answered at, request took, eta_seconds)

        def note(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            eta = response.json().get("eta_seconds") if response.ok else None
            trace.append((time.time(), response.elapsed.total_seconds(), eta))

        with requests.Session() as session:
            session.hooks["response"].append(note)
            with TranslationClient(url, long_poll=(name == LONG_POLL), session=session) as tc:
                job = tc.wait_for_completion(job_id, timeout=300)
                known_at = time.time()
        return {"job_id": job_id, "requests": tc.status_requests, "known_at": known_at, "first_at": trace[0][0],
                "trace": trace, "job": job.raw}

    return with_client


def worker(name: str, url: str, scale: float, conn: Connection) -> None:
    """Run one strategy in its own process: wait for each job id as it arrives; at None, send the outcomes back."""
    conn.send("ready")
    wait_one = waiter(name, url, scale)
    outcomes: list[Outcome] = []

    def run(job_id: str) -> None:
        try:
            outcome = wait_one(job_id)
        except Exception as e:
            outcome = {"job_id": job_id, "error": repr(e)}
        outcomes.append(outcome)

    threads = []
    for job_id in iter(conn.recv, None):
        threads.append(threading.Thread(target=run, args=(job_id,), daemon=True))
        threads[-1].start()
    for t in threads:
        t.join()
    conn.send(outcomes)


# ----------------------------------------------------------------------------------------------- the run


def submit_jobs(server: Server, durations: list[float], per_duration: int, rate: float,
                pipes: list[Connection]) -> dict[str, float]:
    """Submit `per_duration` jobs of each duration, interleaved, `rate` a second; hand each to every strategy.

    Each strategy starts waiting for a job as soon as it is submitted, as a caller would: spreading
    the submissions keeps the strategies' first requests from arriving all at once.
    """
    kinds: dict[str, float] = {}
    started = time.monotonic()
    with requests.Session() as session:
        for n in range(per_duration * len(durations)):
            if rate > 0:
                time.sleep(max(0.0, started + n / rate - time.monotonic()))
            duration = durations[n % len(durations)]
            server.configure(TRANSLATION_DELAY=duration)  # applies to attempts that start from now on
            response = session.post(f"{server.url}/translate", json={"role": "premium"}, timeout=10)
            response.raise_for_status()
            job_id = response.json()["job_id"]
            kinds[job_id] = duration
            for conn in pipes:
                conn.send(job_id)
    for conn in pipes:
        conn.send(None)
    return kinds


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Return requests per job (mean, max) and lag percentiles (seconds) of one strategy's outcomes."""
    good = [o for o in outcomes if "error" not in o]
    lags = [o["known_at"] - epoch(o["job"]["finished_at"]) for o in good]
    counts = [o["requests"] for o in good]
    return {
        "n": len(good),
        "errors": len(outcomes) - len(good),
        "req_mean": statistics.fmean(counts) if counts else float("nan"),
        "req_max": max(counts, default=0),
        "p50": percentile(lags, 50),
        "p95": percentile(lags, 95),
        "max": max(lags, default=float("nan")),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: durations and intervals ×0.1, 2 jobs each")
    parser.add_argument("--jobs-per-duration", type=int, help="jobs of each duration (default 50; quick 2)")
    parser.add_argument("--durations", default="1,3,10", help="nominal job durations, s (default %(default)s)")
    parser.add_argument("--jitter", type=float, default=0.3, help="DELAY_JITTER (default %(default)s)")
    parser.add_argument("--rate", type=float, help="jobs submitted per second (default 20; quick: no limit)")
    parser.add_argument("--dump", metavar="FILE", help="also write every waiter's outcome to FILE as JSON")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    per_duration = args.jobs_per_duration or (2 if args.quick else 50)
    if args.rate is None:
        args.rate = 0.0 if args.quick else 20.0
    durations = [float(d) * scale for d in args.durations.split(",")]
    settings = {
        "TRANSLATION_DELAY": durations[0],
        "PREMIUM_DELAY_FACTOR": 1.0,
        "DELAY_JITTER": args.jitter,
        "ERROR_RATE": 0,
        "WORKERS": 10_000,  # every job starts at once: its duration is its own
        "MAX_WAIT": 25,
        "MAX_LONG_POLLS": 400,
    }
    started = time.monotonic()
    context = mp.get_context("spawn")
    with Server(settings, name="polling") as server:
        pipes, processes = [], []
        for name in STRATEGIES:
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(name, server.url, scale, child), daemon=True)
            process.start()
            pipes.append(parent)
            processes.append(process)
        for conn in pipes:
            if not conn.poll(60) or conn.recv() != "ready":
                raise RuntimeError("a strategy process did not start")
        dispatched_at = time.time()
        kinds = submit_jobs(server, durations, per_duration, args.rate, pipes)
        ids = list(kinds)
        results = {name: conn.recv() for name, conn in zip(STRATEGIES, pipes, strict=True)}
        for process in processes:
            process.join(10)
    wall = time.monotonic() - started
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            json.dump({"dispatched_at": dispatched_at, "kinds": kinds, "results": results}, f)

    summaries = {name: summarise(outcomes) for name, outcomes in results.items()}
    by_kind = {
        name: {d: summarise([o for o in outcomes if kinds[o["job_id"]] == d]) for d in durations}
        for name, outcomes in results.items()
    }
    print(f"# bench/polling.py{' --quick' if args.quick else ''}\n")
    print(f"Machine: {machine()}; {revision()}. Wall time: {wall:.1f} s.")
    print(f"Jobs: {len(ids)} ({per_duration} each of {', '.join(f'{d:g} s' for d in durations)}, "
          f"DELAY_JITTER {args.jitter}), submitted {f'{args.rate:g} a second' if args.rate else 'at once'}, "
          f"interleaved; each waited for by all {len(STRATEGIES)} strategies from its submission on; "
          f"strategy intervals ×{scale:g}.\n")
    rows = [
        [name, s["n"], f"{s['req_mean']:.2f}", s["req_max"], ms(s["p50"]), ms(s["p95"]), ms(s["max"])]
        for name, s in summaries.items()
    ]
    print(table(["strategy", "jobs", "requests/job mean", "requests/job max", "lag p50 ms", "lag p95 ms",
                 "lag max ms"], rows))
    print()
    header = ["strategy"] + [f"{d:g} s jobs: requests mean / lag p95 ms" for d in durations]
    rows = [
        [name, *(f"{k['req_mean']:.2f} / {ms(k['p95'])}" for k in by_kind[name].values())]
        for name in STRATEGIES
    ]
    print(table(header, rows))
    print()

    verdicts = check_targets(summaries)
    print(table(["target", "figure", "met"], verdicts, "llr"))
    errors = sum(s["errors"] for s in summaries.values())
    if errors:
        for name, outcomes in results.items():
            for o in outcomes:
                if "error" in o:
                    print(f"error in {name}: {o['job_id']}: {o['error']}", file=sys.stderr)
        return 1
    return 0


def check_targets(s: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Return [target, figure, met] rows for the issue's targets."""
    rows = []
    lp, hp = s[LONG_POLL], s[HINTED]
    rows.append(["long-poll: lag p95 ≤ 50 ms", f"{ms(lp['p95'])} ms", _yes(lp["p95"] <= 0.050)])
    rows.append(["long-poll: ≤ 2 status requests per job", f"max {lp['req_max']}", _yes(lp["req_max"] <= 2)])
    rows.append(["hint-paced: lag p95 ≤ 250 ms", f"{ms(hp['p95'])} ms", _yes(hp["p95"] <= 0.250)])
    rows.append(["hint-paced: ≤ 6 status requests per job", f"max {hp['req_max']}", _yes(hp["req_max"] <= 6)])
    for ours in OURS:
        for other in BASELINES:
            a, b = s[ours], s[other]
            faster = a["p50"] < b["p50"] and a["p95"] < b["p95"] and a["max"] < b["max"]
            fewer = a["req_mean"] <= b["req_mean"]
            figure = (f"p95 {ms(a['p95'])} vs {ms(b['p95'])} ms; requests {a['req_mean']:.2f} vs "
                      f"{b['req_mean']:.2f}")
            rows.append([f"{ours} beats {other}", figure, _yes(faster and fewer)])
    return rows


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


if __name__ == "__main__":
    sys.exit(main())
