"""The full listings at 100 000 jobs: what streaming and orjson each bring, side by side in one run.

    python bench/listing.py            # 100 000 jobs, 10 rounds (about 80 s)
    python bench/listing.py --quick    # smoke run: 3 000 jobs, 1 round

The same saved state (half completed, two running, the rest queued: the shape `bench/load.py` fills)
is written to a SQLite store, copied once per server, and opened (`STORE=sqlite:///…`) by four
`python server.py` processes that differ only in how they
answer a listing:

- "orjson, streamed": the server as it is;
- "orjson, one piece": `STREAM_BATCH` set out of reach, so every answer is encoded whole first;
- "json.dumps, streamed" and "json.dumps, one piece": the same two with the standard library encoder
  (`json.dumps(separators=(",", ":"))`, the encoder before orjson).

In each round every server answers `GET /jobs` and `GET /queue` in turn, one request at a time, timed
with `requests` until the whole answer has arrived (and until its headers had). The figures are medians
over the rounds, and each row's ratio is to "json.dumps, one piece" in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Server, machine, revision, table

VARIANTS = {
    "orjson, streamed": "server",
    "orjson, one piece": "orjson-whole",
    "json.dumps, streamed": "json-streamed",
    "json.dumps, one piece": "json-whole",
}
BASELINE = "json.dumps, one piece"
SETTINGS = {"TRANSLATION_DELAY": 86_400, "DELAY_JITTER": 0, "ERROR_RATE": 0, "WORKERS": 2, "PROCESSING_MODE": "auto"}


def serve(variant: str) -> int:
    """Run `server.main()` with one variant's encoder and streaming threshold (a child process)."""
    import server
    from simulator.http import encoding

    if variant in ("json-streamed", "json-whole"):
        encoding.dumps = lambda value: json.dumps(value, separators=(",", ":")).encode()
    if variant in ("orjson-whole", "json-whole"):
        encoding.STREAM_BATCH = 10**12
    return server.main([])


def saved_state(n_jobs: int, path: Path) -> None:
    """Write a SQLite store of `n_jobs`: half completed, the other half queued behind two running for a day."""
    import config
    from jobs import JobEngine, system_clock
    from simulator.store.sqlite import SqliteStore

    store = SqliteStore(str(path))
    engine = JobEngine(config.from_mapping({**SETTINGS, "TRANSLATION_DELAY": 0, "MAX_JOBS": n_jobs}),
                       store=store, clock=system_clock())
    with store.transaction():  # one write at the end, not one per job
        for i in range(n_jobs // 2):
            engine.submit("premium", f"user{i % 50}")
        engine.configure({"TRANSLATION_DELAY": 86_400})
        for i in range(n_jobs - n_jobs // 2):
            engine.submit("premium", f"user{i % 50}")
    store.close()


def timed_get(url: str) -> tuple[float, float, int, requests.Response]:
    """GET `url`; return (seconds until the headers arrived, until the whole answer had, its size, the response).

    waitress sends the headers with the first piece of the body, so the first figure is when the
    server began to send: after the views and, unstreamed, the whole encoding.
    """
    started = time.perf_counter()
    response = requests.get(url, stream=True, timeout=120)
    headers_at = time.perf_counter() - started
    size = sum(len(chunk) for chunk in response.iter_content(chunk_size=1 << 20))
    response.raise_for_status()
    return headers_at, time.perf_counter() - started, size, response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 000 jobs, 1 round")
    parser.add_argument("--jobs", type=int, help="jobs stored (default 100000)")
    parser.add_argument("--rounds", type=int, help="rounds of every request on every server (default 10)")
    parser.add_argument("--serve", choices=sorted(set(VARIANTS.values())), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve)
    n_jobs = args.jobs or (3_000 if args.quick else 100_000)
    rounds = args.rounds or (1 if args.quick else 10)
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-listing-") as tmp:
        state = Path(tmp) / "jobs.db"
        saved_state(n_jobs, state)
        servers = {}
        for label, variant in VARIANTS.items():
            copy = Path(tmp) / f"{variant}.db"  # one database per server: a store is held by one process
            shutil.copyfile(state, copy)
            settings = {**SETTINGS, "MAX_JOBS": n_jobs, "STORE": f"sqlite:///{copy}"}
            command = [sys.executable, str(Path(__file__).resolve()), "--serve", variant]
            servers[label] = Server(settings, command, name=variant, reports_port=True)  # it runs server.main
        for server in servers.values():
            server.launch()
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        sizes: dict[tuple[str, str], int] = {}
        streamed: dict[tuple[str, str], bool] = {}
        try:
            for server in servers.values():
                server.wait_ready(timeout=120)
            for _ in range(rounds):
                for path in ("/jobs", "/queue"):
                    for label, server in servers.items():
                        first, whole, size, response = timed_get(server.url + path)
                        times.setdefault((label, path), []).append((first, whole))
                        sizes[label, path] = size
                        streamed[label, path] = response.headers.get("Transfer-Encoding") == "chunked"
                        expected = n_jobs if path == "/jobs" else n_jobs - n_jobs // 2 - 2
                        if response.headers["X-Total-Count"] != str(expected):
                            print(f"{label} {path}: X-Total-Count {response.headers['X-Total-Count']}, not {expected}",
                                  file=sys.stderr)
                            return 1
        finally:
            for server in servers.values():
                server.stop()

    print("# bench/listing.py\n")
    print(f"Machine: {machine()}; {revision()}. Wall time: {time.perf_counter() - began:.0f} s.")
    print(f"{n_jobs:,} jobs stored ({n_jobs // 2:,} completed, 2 running, {n_jobs - n_jobs // 2 - 2:,} queued); "
          f"{rounds} round(s); `requests`, one request at a time; medians over the rounds.\n")
    rows = []
    for path in ("/jobs", "/queue"):
        base = statistics.median(whole for _, whole in times[BASELINE, path])
        for label in VARIANTS:
            firsts, wholes = zip(*times[label, path], strict=True)
            whole = statistics.median(wholes)
            rows.append([f"GET {path}", label, "chunked" if streamed[label, path] else "Content-Length",
                         f"{sizes[label, path] / 1e6:.1f}", f"{statistics.median(firsts):.3f}", f"{whole:.3f}",
                         f"{max(wholes):.3f}", f"{whole / base:.2f}"])
    print(table(["request", "encoder, delivery", "framing", "MB", "headers s", "whole s", "max s",
                 f"÷ {BASELINE}"], rows, "lllrrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
