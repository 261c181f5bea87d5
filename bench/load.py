"""The server under load: throughput and latency, memory per job, big answers at 100 000 jobs, held long-polls.

Against `python server.py` as users run it (a subprocess, settings in the environment, a temporary
working directory so no `.env` interferes; the request log goes to a file). Load comes from `wrk`
when it is installed (`apt-get install wrk`), else from a Python load generator running in separate
processes; the output says which.

Three servers run side by side: `python server.py` with 1 job, the same app on the Werkzeug development server
(`create_app()` under `run_simple(threaded=True)`) with 1 job, and `python server.py` filled up to 100 000 jobs.

1. `POST /translate` (premium: not rate limited) while the third server fills up: half of its jobs
   completed (TRANSLATION_DELAY 0 while they are submitted), half queued behind two workers that are
   busy for a day, as happens when many users submit to a server with default settings. Resident
   memory per stored job, from VmRSS before and after.
2. In rounds, one row after another: `GET /healthz` and `GET /status/<id>` on each server; the
   ratios compare rows of the same round, and the tables give medians over the rounds.
3. The time of `GET /jobs` and `GET /queue` with 100 000 jobs stored, in full (the default answers)
   and paged (`?limit=1000`: the first page and the last), then `POST /process_jobs` (count 100,
   manual mode) and `POST /cleanup` (the completed half).
4. A fourth server holding 500 long-polls at once: `/healthz` latency while they wait, then the lag
   from each job's end (`finished_at`) to its waiter's answer.

    python bench/load.py                 # the full run (about three minutes)
    python bench/load.py --quick         # a smoke run: 1 s loads (0.3 s in Python), 1 000 jobs, 20 long-polls
    python bench/load.py --loadgen python  # force the Python load generator
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import math
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench._common import ADMIN_TOKEN, Server, epoch, machine, ms, percentile, revision, table  # noqa: E402

PREMIUM_BODY = '{"role":"premium"}'
JSON_HEADERS = {"Content-Type": "application/json", "X-User-Id": "bench"}


# ------------------------------------------------------------------------------------- load generators


@dataclass
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    p50: float  # seconds
    p99: float  # seconds
    errors: int  # non-2xx answers and socket errors

    @property
    def rate(self) -> float:
        """Return requests per second."""
        return self.requests / self.seconds if self.seconds else math.nan


class Wrk:
    """Load from wrk: one thread, `connections` keep-alive connections; a Lua script reports the figures."""

    def __init__(self, connections: int = 8) -> None:
        self.connections = connections
        self.workdir = tempfile.mkdtemp(prefix="bench-wrk-")
        version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        self.version = (version.stdout or version.stderr).split("Copyright")[0].strip()

    def describe(self) -> str:
        """Say what generates the load."""
        return f"{self.version}, 1 thread, {self.connections} connections"

    def seconds(self, seconds: float) -> float:
        """Return how long a run asked to last `seconds` lasts (wrk counts whole seconds)."""
        return max(1, round(seconds))

    def close(self) -> None:
        """Remove the script's directory."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, url: str, path: str, seconds: float, *, method: str = "GET", body: str | None = None,
            headers: dict[str, str] | None = None, quota: int | None = None) -> Load:
        """Send `method path` for `seconds` (whole seconds, at least 1); after `quota` of them, GET /healthz."""
        lua = f"""
local quota = {-1 if quota is None else quota}
local sent = 0
local main = wrk.format({json.dumps(method)}, {json.dumps(path)}, {_lua_table(headers or {})},
                        {json.dumps(body) if body is not None else "nil"})
local filler = wrk.format("GET", "/healthz")
request = function()
  if quota >= 0 and sent >= quota then return filler end
  sent = sent + 1
  return main
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""
        script = os.path.join(self.workdir, "run.lua")
        with open(script, "w", encoding="utf-8") as f:
            f.write(lua)
        duration = self.seconds(seconds)
        command = ["wrk", "-t1", f"-c{self.connections}", f"-d{duration}s", "--timeout", "30s", "-s", script, url]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
        match = re.search(r"WRKJSON (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
        if match is None:
            raise RuntimeError(f"unexpected wrk output:\n{out}")
        n, duration_us, p50, p99, status_errors, socket_errors = map(int, match.groups())
        return Load(n, duration_us / 1e6, p50 / 1e6, p99 / 1e6, status_errors + socket_errors)


def _lua_table(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()) + "}"


def _python_load_worker(conn: Connection) -> None:
    """Serve load runs: for each, send one request after another on one keep-alive connection; report latencies."""
    conn.send("ready")
    while (task := conn.recv()) is not None:
        host, port, (method, path, body, headers), quota, deadline = task
        connection = http.client.HTTPConnection(host, port, timeout=30)
        latencies: list[float] = []
        errors = sent = 0
        while time.time() < deadline:
            m, p, b = (method, path, body) if quota < 0 or sent < quota else ("GET", "/healthz", None)
            sent += 1
            started = time.perf_counter()
            try:
                connection.request(m, p, body=b, headers=headers if b is not None else {})
                response = connection.getresponse()
                response.read()
                if response.status >= 400:
                    errors += 1
            except (OSError, http.client.HTTPException):
                errors += 1
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=30)
            latencies.append(time.perf_counter() - started)
        connection.close()
        conn.send((latencies, errors))


class PythonLoad:
    """Load from `processes` Python processes, each one keep-alive connection sending requests back to back."""

    def __init__(self, processes: int = 4) -> None:
        self.processes = processes
        self._pipes: list[Connection] = []

    def describe(self) -> str:
        """Say what generates the load."""
        return f"Python load generator (http.client), {self.processes} processes × 1 keep-alive connection"

    def seconds(self, seconds: float) -> float:
        """Return how long a run asked to last `seconds` lasts."""
        return seconds

    def _start(self) -> None:
        context = mp.get_context("spawn")
        for _ in range(self.processes):
            parent, child = context.Pipe()
            context.Process(target=_python_load_worker, args=(child,), daemon=True).start()
            self._pipes.append(parent)
        for conn in self._pipes:
            conn.recv()

    def close(self) -> None:
        """Stop the worker processes."""
        for conn in self._pipes:
            conn.send(None)
        self._pipes = []

    def run(self, url: str, path: str, seconds: float, *, method: str = "GET", body: str | None = None,
            headers: dict[str, str] | None = None, quota: int | None = None) -> Load:
        """Send `method path` for `seconds`; after `quota` of them (split between processes), GET /healthz."""
        if not self._pipes:
            self._start()
        host, port = url.removeprefix("http://").split(":")
        started = time.time()
        for i, conn in enumerate(self._pipes):
            share = -1 if quota is None else quota // self.processes + (1 if i < quota % self.processes else 0)
            conn.send((host, int(port), (method, path, body, headers or {}), share, started + seconds))
        results = [conn.recv() for conn in self._pipes]
        elapsed = time.time() - started
        latencies = [x for lat, _ in results for x in lat]
        return Load(len(latencies), elapsed, percentile(latencies, 50), percentile(latencies, 99),
                    sum(e for _, e in results))


# ------------------------------------------------------------------------------------------ the server


def serve_werkzeug() -> None:
    """Serve `create_app()` (settings from the environment) on Werkzeug's development server, threaded."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from werkzeug.serving import run_simple

    import config
    from server import create_app

    settings = config.load()
    run_simple(settings.HOST, settings.PORT, create_app(settings), threaded=True)


def submit(url: str, session: requests.Session | None = None) -> dict[str, Any]:
    """Submit one premium job and return it."""
    sender = session or requests
    response = sender.post(f"{url}/translate", data=PREMIUM_BODY, headers=JSON_HEADERS, timeout=30)
    response.raise_for_status()
    return response.json()


def stored(server: Server) -> int:
    """Return how many jobs the server holds."""
    return requests.get(f"{server.url}/healthz", timeout=30).json()["jobs"]


def fill(server: Server, gen: Wrk | PythonLoad, target: int, rate: float | None = None) -> None:
    """Submit premium jobs until the server holds `target`; `rate` (jobs/s) is measured on the way if not given."""
    for _ in range(30):
        have = stored(server)
        missing = target - have
        if missing <= 0:
            return
        if missing < 50:
            for _ in range(missing):
                submit(server.url)
            continue
        seconds = 2.0 if rate is None else missing / rate * 1.05 + 0.5
        gen.run(server.url, "/translate", seconds, method="POST", body=PREMIUM_BODY, headers=JSON_HEADERS,
                quota=missing)
        added = stored(server) - have
        if added < missing:  # the run ended before its quota did: it tells the rate
            rate = max(10.0, added / gen.seconds(seconds))
    raise RuntimeError(f"could not fill the server to {target} jobs")


def timed(method: str, url: str, body: Any = None, admin: bool = False) -> tuple[float, int, Any, Any]:
    """Send one request; return (seconds until the whole answer arrived, its size in bytes, its JSON, headers)."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
    started = time.perf_counter()
    response = requests.request(method, url, json=body, headers=headers, timeout=600)
    content = response.content
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, len(content), json.loads(content), response.headers


def listed(path: str, answer: dict[str, Any], headers: Any, expected: int, total: int) -> tuple[str, bool]:
    """Describe a /jobs or /queue answer (jobs listed, total, next link); say whether it is what was asked for."""
    if path.startswith("/queue"):
        n, said_total = len(answer["queued"]), answer["queued_total"]
    else:
        n = sum(len(jobs) for roles in answer.values() for jobs in roles.values())
        said_total = int(headers["X-Total-Count"])
    ok = n == expected and said_total == total and int(headers["X-Total-Count"]) == total
    if "limit=" not in path:
        return f"{n:,} jobs", ok
    has_next = 'rel="next"' in headers.get("Link", "")
    last = "offset=" in path  # the last page has no next link; the first one has
    return f"{n:,} of {total:,}; " + ("next link" if has_next else "last page"), ok and has_next != last


# ------------------------------------------------------------------------------------------ long-polls


async def hold_long_poll(host: str, port: int, job_id: str, wait: float, opened: list[int]) -> dict[str, Any]:
    """Long-poll one job on its own connection; return when the whole answer arrived, with the job."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /status/{job_id}?wait={wait:g} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    opened.append(1)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    body = await reader.readexactly(length)
    received = time.time()
    writer.close()
    return {"received": received, "applied": b"preference-applied" in head.lower(), "job": json.loads(body)}


async def long_poll_run(server: Server, gen: Wrk | PythonLoad, ids: list[str], hold_seconds: float,
                        connections_settle: float = 0.5) -> tuple[list[dict[str, Any]], Load, float]:
    """Hold a long-poll per job, measure /healthz while they wait; return (answers, load, end of the window)."""
    host, port = "127.0.0.1", server.port
    opened: list[int] = []
    tasks = [asyncio.create_task(hold_long_poll(host, port, i, 25, opened)) for i in ids]
    while len(opened) < len(ids):
        await asyncio.sleep(0.01)
    await asyncio.sleep(connections_settle)  # let the server's threads take every request in
    load = await asyncio.to_thread(gen.run, server.url, "/healthz", hold_seconds)
    window_end = time.time()
    answers = await asyncio.gather(*tasks)
    return answers, load, window_end


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: short loads, 1 000 jobs, 20 long-polls")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (auto: wrk when installed)")
    parser.add_argument("--jobs", type=int, help="jobs stored for the big measurements (default 100000)")
    parser.add_argument("--long-polls", type=int, help="long-polls held at once (default 500)")
    parser.add_argument("--seconds", type=float, help="seconds per load run (default 3; quick 0.3: wrk makes it 1)")
    parser.add_argument("--rounds", type=int, help="rounds of the side-by-side loads (default 3; quick 1)")
    parser.add_argument("--serve-werkzeug", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_werkzeug:
        serve_werkzeug()
        return 0
    quick = args.quick
    n_jobs = args.jobs or (1_000 if quick else 100_000)
    n_polls = args.long_polls or (20 if quick else 500)
    seconds = args.seconds or (0.3 if quick else 3.0)  # wrk rounds up to whole seconds
    rounds = args.rounds or (1 if quick else 3)
    sends = 1 if quick else 3  # sends of each big GET
    if args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk")):
        gen: Wrk | PythonLoad = Wrk()
    else:
        gen = PythonLoad()
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    notes: list[str] = []

    # Two workers busy for a day: every job submitted after the first two waits in the queue.
    settings = {"TRANSLATION_DELAY": 86_400, "DELAY_JITTER": 0, "ERROR_RATE": 0, "WORKERS": 2,
                "MAX_JOBS": n_jobs, "PROCESSING_MODE": "auto"}
    # For the long-polls: premium jobs take half of `delay`, ±30 %; every one ends after the /healthz window.
    delay = 2.0 if quick else 16.0
    lp_settings = {"TRANSLATION_DELAY": delay, "DELAY_JITTER": 0.3, "ERROR_RATE": 0, "WORKERS": 10_000,
                   "MAX_LONG_POLLS": max(400, n_polls), "MAX_WAIT": 25}
    one = Server(settings, name="server").launch()  # keeps 1 job
    werkzeug = Server(settings, [sys.executable, str(Path(__file__).resolve()), "--serve-werkzeug"],
                      name="werkzeug").launch()  # keeps 1 job
    full = Server(settings, name="server").launch()  # filled up to n_jobs
    lp_server = Server(lp_settings, name="server").launch()
    servers = (one, werkzeug, full, lp_server)
    for server in servers:
        server.wait_ready()
    progress("servers ready")
    try:
        first = {s: submit(s.url)["job_id"] for s in (one, werkzeug, full)}  # running, for a day
        if not quick:
            for s in (one, werkzeug, full):
                gen.run(s.url, "/healthz", 1)  # warm up
                gen.run(s.url, f"/status/{first[s]}", 1)
        rss_one = full.rss_bytes()

        # ---------------------------------------------------------------- fill `full` up to n_jobs
        half = n_jobs // 2
        full.configure(TRANSLATION_DELAY=0)  # its second slot completes each job at once
        fill(full, gen, half)
        full.configure(TRANSLATION_DELAY=86_400)
        progress(f"{half:,} completed jobs stored")
        post_seconds = seconds if quick else 10.0
        before = stored(full)
        post = gen.run(full.url, "/translate", post_seconds, method="POST", body=PREMIUM_BODY, headers=JSON_HEADERS,
                       quota=n_jobs - before)
        after = stored(full)
        fill(full, gen, n_jobs, max(100.0, post.rate * 0.9))
        count = stored(full)
        rss_n = full.rss_bytes()
        per_job = (rss_n - rss_one) / (count - 1)
        progress(f"{count:,} jobs stored")

        # ---------------------------------------------------------------- side by side, in rounds
        newest = requests.get(f"{full.url}/status", headers={"X-User-Id": "bench"}, timeout=30).json()
        cases = [
            ("healthz@1", "GET /healthz", one, 1, "/healthz"),
            ("status@1", "GET /status/<id> (running job)", one, 1, f"/status/{first[one]}"),
            ("w-healthz@1", "GET /healthz", werkzeug, 1, "/healthz"),
            ("w-status@1", "GET /status/<id> (running job)", werkzeug, 1, f"/status/{first[werkzeug]}"),
            ("healthz@n", "GET /healthz", full, count, "/healthz"),
            ("status@n", "GET /status/<id> (running job)", full, count, f"/status/{first[full]}"),
            ("status-deep@n", f"GET /status/<id> (queued job, position {newest['queue_position']:,})", full, count,
             f"/status/{newest['job_id']}"),
        ]
        runs: dict[str, list[Load]] = {key: [] for key, *_ in cases}
        for _ in range(rounds):
            for key, _label, server, _n, path in cases:
                runs[key].append(gen.run(server.url, path, seconds))
        progress("side-by-side loads done")

        # ---------------------------------------------------------------- big requests at n_jobs
        # Each GET is sent `sends` times, one at a time; the slowest is the figure judged against 1 s.
        queued_total = requests.get(f"{full.url}/queue?limit=1", timeout=30).json()["queued_total"]
        page = min(1_000, max(1, count // 10))  # jobs per page of the paged forms (1 000; 100 in the quick run)
        gets = [  # (label, path, jobs expected in the answer, total expected)
            ("GET /jobs (full: the default answer)", "/jobs", count, count),
            ("GET /queue (full: the default answer)", "/queue", queued_total, queued_total),
            (f"GET /jobs?limit={page} (first page)", f"/jobs?limit={page}", page, count),
            (f"GET /jobs?offset={count - page}&limit={page} (last page)", f"/jobs?offset={count - page}&limit={page}",
             page, count),
            (f"GET /queue?limit={page} (first page)", f"/queue?limit={page}", page, queued_total),
            (f"GET /queue?offset={queued_total - page}&limit={page} (last page)",
             f"/queue?offset={queued_total - page}&limit={page}", page, queued_total),
        ]
        big: list[list[Any]] = []
        for label, path, expected, total in gets:
            times = []
            for _ in range(sends):
                elapsed, size, answer, headers = timed("GET", full.url + path)
                times.append(elapsed)
            described, as_asked = listed(path, answer, headers, expected, total)
            if not as_asked:
                notes.append(f"`{label}` did not answer what was asked: {described}")
            big.append([label, f"{count:,}", sends, f"{statistics.median(times):.3f}", f"{max(times):.3f}",
                        f"{size / 1e6:.2f}", described, _yes(max(times) <= 1.0)])
        full.configure(PROCESSING_MODE="manual")  # in auto mode both slots are busy: it would start none
        elapsed, size, answer, _ = timed("POST", full.url + "/process_jobs", {"count": 100}, admin=True)
        big.append(["POST /process_jobs {count: 100} (manual mode)", f"{count:,}", 1, f"{elapsed:.3f}",
                    f"{elapsed:.3f}", f"{size / 1e6:.2f}", f"started {answer['count']}", _yes(elapsed <= 1.0)])
        elapsed, size, answer, _ = timed("POST", full.url + "/cleanup", {}, admin=True)
        big.append(["POST /cleanup {} (completed jobs)", f"{count:,}", 1, f"{elapsed:.3f}", f"{elapsed:.3f}",
                    f"{size / 1e6:.2f}", f"removed {answer['removed']:,}", _yes(elapsed <= 1.0)])
        progress("big requests done")
        werkzeug.stop()  # the development server has no SIGTERM handler: it just dies
        for server in (one, full):
            code = server.stop()  # `python server.py` drains and exits 0 on SIGTERM, even with 100 000 jobs
            if code != 0:
                notes.append(f"`python server.py` exited with {code} after SIGTERM")

        # ---------------------------------------------------------------- held long-polls
        idle = gen.run(lp_server.url, "/healthz", seconds if quick else 2)
        with requests.Session() as session:
            ids = [submit(lp_server.url, session)["job_id"] for _ in range(n_polls)]
        progress(f"{n_polls} jobs submitted for long-polls")
        answers, held, window_end = asyncio.run(
            long_poll_run(lp_server, gen, ids, seconds if quick else 2, 0.2 if quick else 0.5))
        progress("long-polls answered")
    finally:
        gen.close()
        for server in servers:
            server.stop()
    progress("servers stopped")
    lags = [a["received"] - epoch(a["job"]["finished_at"]) for a in answers if a["job"]["finished_at"]]
    honoured = sum(a["applied"] for a in answers)
    done = sum(a["job"]["done"] for a in answers)
    first_end = min(epoch(a["job"]["finished_at"]) for a in answers if a["job"]["finished_at"])
    if first_end < window_end:
        notes.append(f"a job ended {window_end - first_end:.2f} s before the /healthz window closed")

    # -------------------------------------------------------------------- report
    def median(key: str, attribute: str) -> float:
        return statistics.median(getattr(load, attribute) for load in runs[key])

    def ratio(a: str, b: str) -> tuple[float, str]:
        each = [x.rate / y.rate for x, y in zip(runs[a], runs[b], strict=True)]
        return statistics.median(each), ", ".join(f"{r:.2f}" for r in each)

    wall = time.monotonic() - began
    print(f"# bench/load.py{' --quick' if quick else ''}\n")
    print(f"Machine: {machine()}; {revision()}. Wall time: {wall:.0f} s.")
    print(f"Load: {gen.describe()}; {gen.seconds(seconds):g} s per run. Servers: `python server.py` "
          "(granian embedded, THREADS 8) and the same app on Werkzeug's development server (`run_simple`, "
          f"threaded), side by side: {rounds} round(s) of every row in turn; figures are the medians.\n")
    rows = [
        [label, f"{n:,}", "werkzeug" if server is werkzeug else "server.py", f"{median(key, 'rate'):,.0f}",
         ms(median(key, "p50"), 2), ms(median(key, "p99"), 2), sum(load.errors for load in runs[key])]
        for key, label, server, n, _ in cases
    ]
    rows.append(["POST /translate (premium; queued)", f"{before:,}→{after:,}", "server.py", f"{post.rate:,.0f}",
                 ms(post.p50, 2), ms(post.p99, 2), post.errors])
    print(table(["request", "jobs stored", "server", "req/s", "p50 ms", "p99 ms", "errors"], rows, "lrlrrrr"))
    print()
    print(table(["request (one at a time)", "jobs stored", "sends", "median s", "max s", "MB", "answer", "≤ 1 s"],
                big, "lrrrrrlr"))
    print()
    lp_rows = [
        ["/healthz, no long-poll held", f"{idle.rate:,.0f}", ms(idle.p50, 2), ms(idle.p99, 2), idle.errors],
        [f"/healthz, {n_polls} long-polls held", f"{held.rate:,.0f}", ms(held.p50, 2), ms(held.p99, 2), held.errors],
    ]
    print(table(["while", "req/s", "p50 ms", "p99 ms", "errors"], lp_rows))
    print()
    print(f"{n_polls} long-polls (`?wait=25`, one connection each): {honoured} honoured (Preference-Applied), "
          f"{done} answered with the job finished; lag from `finished_at` to the whole answer: "
          f"p50 {ms(percentile(lags, 50))} ms, p95 {ms(percentile(lags, 95))} ms, p99 {ms(percentile(lags, 99))} ms, "
          f"max {ms(max(lags, default=math.nan))} ms.\n")

    ratio_health, each_health = ratio("status@1", "healthz@1")
    ratio_size, each_size = ratio("status@n", "status@1")
    ratio_server, each_server = ratio("status@1", "w-status@1")
    lp_p99 = percentile(lags, 99)
    targets = [
        ["status / healthz req/s (1 job)", f"{ratio_health:.2f} (rounds: {each_health})", "≥ 0.8",
         _yes(ratio_health >= 0.8)],
        [f"status@{count:,} / status@1 req/s", f"{ratio_size:.2f} (rounds: {each_size})", "≥ 0.9",
         _yes(ratio_size >= 0.9)],
        [f"resident memory per stored job at {count:,}", f"{per_job:,.0f} B (RSS {rss_one / 2**20:.0f} → "
         f"{rss_n / 2**20:.0f} MiB)", "≤ 2 KB", _yes(per_job <= 2048)],
        *([row[0], f"{row[4]} s" + (f" (slowest of {row[2]})" if row[2] > 1 else ""), "≤ 1 s", row[7]]
          for row in big),
        [f"long-poll lag p99 ({n_polls} held)", f"{ms(lp_p99)} ms", "≤ 100 ms", _yes(lp_p99 <= 0.100)],
        [f"/healthz p99 with {n_polls} long-polls held", f"{ms(held.p99, 2)} ms (none held: {ms(idle.p99, 2)} ms)",
         "—", ""],
        ["server.py / werkzeug req/s, GET /status (1 job)", f"{ratio_server:.2f} (rounds: {each_server})", "> 1",
         _yes(ratio_server > 1)],
    ]
    print(table(["target", "figure", "target", "met"], targets, "llll"))
    slowest = {row[0]: float(row[4]) for row in big}
    full_jobs = slowest["GET /jobs (full: the default answer)"]
    pages = [v for k, v in slowest.items() if "limit=" in k]
    print(f"\nA user should not wait over a second: with {count:,} jobs stored, a page of {page:,} (`?limit={page}`, "
          f"first or last, /jobs or /queue) takes at most {max(pages):.3f} s"
          f"{' — under the second' if max(pages) <= 1.0 else ' — OVER the second'}; the full default "
          f"`GET /jobs` takes {full_jobs:.3f} s"
          f"{', still over the second: at this size the paged form is the answer' if full_jobs > 1.0 else ''}.")
    for note in notes:
        print(f"\nNote: {note}")
    all_loads = [load for each in runs.values() for load in each] + [post]
    failed = (honoured != n_polls or done != n_polls or any(load.errors for load in all_loads)
              or any("did not answer what was asked" in note for note in notes))
    return 1 if failed else 0


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


if __name__ == "__main__":
    sys.exit(main())
