"""The SQLite store against the memory store: submissions/s, status reads/s and bytes per job, side by side.

    python bench/store.py            # about a minute
    python bench/store.py --quick    # smoke run

1. In process: the engine alone on each store (one transaction per call, as a request makes), so the
   figure is the store's own cost: submissions/s and status reads/s.
2. Through HTTP: one `python server.py` per store, measured in alternating rounds (wrk where it is
   installed, a Python keep-alive load generator otherwise): `POST /translate` and `GET /status/<id>`.
3. Size: the database's bytes per stored job (jobs with a URL and a language, WAL checkpointed).

Ratios are SQLite ÷ memory within the same round; the targets are status reads ≥ 0.8× and submissions ≥ 0.3×.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import machine, revision, table  # noqa: E402
from simulator.settings import from_mapping  # noqa: E402
from simulator.store import open_store  # noqa: E402
from simulator.testing import ServerProcess  # noqa: E402

SETTINGS = {"TRANSLATION_DELAY": 86_400, "DELAY_JITTER": 0, "ERROR_RATE": 0, "WORKERS": 2, "MAX_JOBS": 10_000_000,
            "RATE_LIMIT": 1_000_000, "ADMIN_TOKEN": "bench"}
BODY = {"role": "premium", "video_url": "https://example.com/videos/talk-2026-12-01.mp4", "target_language": "de"}


def stores(tmp: str) -> dict[str, str]:
    """Return the stores compared: label -> STORE url."""
    return {
        "memory": "memory",
        "sqlite (synchronous=normal)": f"sqlite:///{tmp}/normal.db",
        "sqlite (synchronous=full)": f"sqlite:///{tmp}/full.db?synchronous=full",
    }


# ------------------------------------------------------------------------------------------- in process


def in_process(url: str, n: int) -> tuple[float, float]:
    """Return (submissions/s, status reads/s) of the engine alone on the store at `url`."""
    from simulator.domain import JobEngine

    store = open_store(url)
    engine = JobEngine(from_mapping(SETTINGS), store=store)
    started = time.perf_counter()
    ids = [engine.submit("premium", f"user{i % 50}", video_url=BODY["video_url"], target_language="de")[0]["job_id"]
           for i in range(n)]
    submit_rate = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for job_id in ids:
        engine.get(job_id)
    read_rate = n / (time.perf_counter() - started)
    store.close()
    return submit_rate, read_rate


def bytes_per_job(url: str, n: int) -> float:
    """Return the database size per stored job after `n` submissions (the WAL checkpointed on close)."""
    from simulator.domain import JobEngine

    store = open_store(url)
    engine = JobEngine(from_mapping(SETTINGS), store=store)
    with store.transaction():
        for i in range(n):
            engine.submit("free" if i % 3 else "premium", f"user{i % 50}", video_url=BODY["video_url"],
                          target_language="de", idempotency_key=f"key-{i}")
    path = store.path  # type: ignore[attr-defined]
    store.close()
    return os.path.getsize(path) / n


# ------------------------------------------------------------------------------------------- over HTTP


def python_load(url: str, method: str, path: str, body: bytes | None, seconds: float, connections: int) -> float:
    """Send requests on `connections` keep-alive connections for `seconds`; return requests/s."""
    parts = urlsplit(url)
    counts = [0] * connections
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"} if body else {}

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.perf_counter() < stop:
            conn.request(method, path, body=body, headers=headers)
            conn.getresponse().read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def wrk_load(url: str, method: str, path: str, body: bytes | None, seconds: float, connections: int) -> float:
    """Run wrk for `seconds` with `connections`; return requests/s."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
        if body:
            script.write(f"wrk.body = {json.dumps(body.decode())}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, url + path],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


def over_http(urls: dict[str, str], rounds: int, seconds: float, loadgen: str) -> dict[tuple[str, str], list[float]]:
    """Measure submissions/s and status reads/s of a server per store, alternating, `rounds` times."""
    load = wrk_load if loadgen == "wrk" else python_load
    body = json.dumps(BODY).encode()
    results: dict[tuple[str, str], list[float]] = {}
    servers = {label: ServerProcess({**SETTINGS, "STORE": url}, cwd=tempfile.mkdtemp(prefix="bench-store-")).start()
               for label, url in urls.items()}
    try:
        job_ids = {}
        for label, server in servers.items():
            conn = http.client.HTTPConnection(urlsplit(server.url).hostname, server.port, timeout=10)
            conn.request("POST", "/translate", body=body, headers={"Content-Type": "application/json"})
            job_ids[label] = json.loads(conn.getresponse().read())["job_id"]
            conn.close()
        for _ in range(rounds):
            for label, server in servers.items():
                results.setdefault((label, "POST /translate"), []).append(
                    load(server.url, "POST", "/translate", body, seconds, 8))
                results.setdefault((label, "GET /status/<id>"), []).append(
                    load(server.url, "GET", f"/status/{job_ids[label]}", None, seconds, 16))
    finally:
        for server in servers.values():
            server.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else 20_000
    rounds, seconds = (1, 1) if args.quick else (3, 3)
    loadgen = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    print(f"# The SQLite store against the memory store\n\n{machine()}; {revision()}; load generator {loadgen}\n")
    tmp = tempfile.mkdtemp(prefix="bench-store-")
    try:
        urls = stores(tmp)
        rows, base = [], None
        for label, url in urls.items():
            submits, reads = in_process(url, n)
            base = base or (submits, reads)
            rows.append([label, f"{submits:,.0f}", f"{submits / base[0]:.2f}",
                         f"{reads:,.0f}", f"{reads / base[1]:.2f}"])
        print(f"## In process: the engine alone, {n:,} jobs, one transaction per call\n")
        print(table(["store", "submissions/s", "× memory", "status reads/s", "× memory"], rows) + "\n")

        shutil.rmtree(tmp)
        os.makedirs(tmp)
        results = over_http(urls, rounds, seconds, loadgen)
        rows = []
        for label in urls:
            row = [label]
            for what in ("POST /translate", "GET /status/<id>"):
                rate = statistics.median(results[label, what])
                ratios = [a / b for a, b in zip(results[label, what], results["memory", what], strict=True)]
                row += [f"{rate:,.0f}", f"{statistics.median(ratios):.2f}"]
            rows.append(row)
        print(f"## Through HTTP: `python server.py` per store, {rounds} alternating rounds of {seconds:g} s\n")
        print(table(["store", "submissions/s", "× memory", "status reads/s", "× memory"], rows) + "\n")

        size = bytes_per_job(f"sqlite:///{tmp}/size.db", n)
        print(f"## Size\n\nSQLite database: {size:,.0f} bytes per stored job ({n:,} jobs with a URL and a language)\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
