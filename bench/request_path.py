"""What our `GET /status/<id>` costs in the app itself, in-process (no server, no sockets), against a bare view.

The app is called as a WSGI callable in a loop with a prepared environ, as a server would call it,
and the CPU time per request (`time.process_time`, less disturbed by
other work on a shared machine) is compared with a bare Flask `jsonify` view called the same way. The parts
inside the view (the engine's view, the encoding, the headers) are timed directly, and `--profile`
prints cProfile's top functions. The access log goes to a handler on /dev/null at INFO, as `python
server.py` logs, so formatting and writing the line are counted.

    python bench/request_path.py            # the table
    python bench/request_path.py --profile  # and cProfile's top functions (by own time)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from flask import Flask, jsonify  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from bench._common import table  # noqa: E402

APP_SETTINGS = {"TRANSLATION_DELAY": 86_400, "ERROR_RATE": 0, "ADMIN_TOKEN": "bench-admin-token"}


def bare_app() -> Flask:
    """Return the bare Flask app the targets compare with: one `jsonify` view, nothing else."""
    app = Flask("bare")

    @app.get("/status/<job_id>")
    def status(job_id: str) -> Any:
        return jsonify({"job_id": job_id, "status": "pending", "progress": 41, "eta_seconds": 4.37})

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    return app


def quiet_info_logging() -> None:
    """Log at INFO as `python server.py` does, into /dev/null (the cost of the line counts, not the disk)."""
    root = logging.getLogger()
    root.handlers[:] = [logging.StreamHandler(open(os.devnull, "w"))]
    root.handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.setLevel(logging.INFO)


def per_request(app: Callable[..., Any], path: str, n: int) -> float:
    """Return the seconds per request of calling the WSGI `app` on `GET path` n times."""
    base = EnvironBuilder(path=path, headers={"Host": "127.0.0.1", "User-Agent": "bench"}).get_environ()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        pass

    started = time.process_time()  # this process's CPU time: other work on a shared machine counts less
    for _ in range(n):
        body = app(dict(base), start_response)
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.process_time() - started) / n


def ours() -> tuple[Flask, str]:
    """Return our app with one running premium job, and the path of its status."""
    from simulator.http import create_app

    app = create_app(dict(APP_SETTINGS))
    job = app.test_client().post("/translate", json={"role": "premium"}).get_json()
    return app, f"/status/{job['job_id']}"


def measure(n: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    """Measure the bare view, ours, ours without the access log, and the parts of the view; return the figures."""
    quiet_info_logging()

    def timed(app: Flask, path: str) -> float:
        per_request(app, path, max(100, n // 5))  # warm up
        return statistics.median(per_request(app, path, n) for _ in range(rounds))

    figures: dict[str, Any] = {"bare": timed(bare_app(), "/status/0b5e")}
    app, path = ours()
    figures["ours"] = timed(app, path)
    logging.getLogger("server").disabled = True
    figures["ours, access log off"] = timed(app, path)
    logging.getLogger("server").disabled = False

    engine = app.extensions["simulator"].engine
    job_id = path.rsplit("/", 1)[1]
    view = engine.get(job_id)

    def loop(fn: Callable[[], Any]) -> float:
        started = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - started) / n

    from simulator.http.encoding import job_headers, json_response

    with app.test_request_context(path):
        figures["parts"] = {
            "engine.get (the job's view, under the engine's lock)": statistics.median(
                loop(lambda: engine.get(job_id)) for _ in range(rounds)),
            "json_response (Response object + orjson)": statistics.median(
                loop(lambda: json_response(view)) for _ in range(rounds)),
            "orjson.dumps of the view": statistics.median(loop(lambda: orjson.dumps(view)) for _ in range(rounds)),
            "job_headers (ETag, Retry-After)": statistics.median(
                loop(lambda: job_headers(view)) for _ in range(rounds)),
        }
    return figures


def report(figures: dict[str, Any]) -> str:
    """Return the table: each whole request and each part, in µs, with the bare/ours ratio in-process."""
    bare, ours_ = figures["bare"], figures["ours"]
    rows = [
        ["bare Flask `jsonify` view (whole request)", f"{bare * 1e6:.1f}", ""],
        ["our app (whole request, access log at INFO)", f"{ours_ * 1e6:.1f}", f"{bare / ours_:.2f}"],
        ["our app, access log off", f"{figures['ours, access log off'] * 1e6:.1f}",
         f"{bare / figures['ours, access log off']:.2f}"],
    ]
    rows += [[f"inside the view: {label}", f"{cost * 1e6:.1f}", ""] for label, cost in figures["parts"].items()]
    return table(["part of GET /status/<id>", "µs per request", "bare / ours in-process"], rows, "lrr")


def profile(n: int = 20_000, top: int = 25) -> str:
    """Return cProfile's top functions (by own time) over n calls of our GET /status/<id>."""
    quiet_info_logging()
    app, path = ours()
    per_request(app, path, 1000)
    profiler = cProfile.Profile()
    profiler.enable()
    per_request(app, path, n)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Print the table (and the profile with --profile)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    parser.add_argument("-n", type=int, default=10_000, help="requests per timing (default 10000)")
    args = parser.parse_args(argv)
    print(report(measure(args.n)))
    if args.profile:
        print(profile())
    return 0


if __name__ == "__main__":
    sys.exit(main())
