"""A stand-in for seed 003's server, the baseline of `bench/serving.py` (its repository has no licence to copy).

What it keeps from the original, because that is what the comparison is about: a Flask app on Werkzeug's
threaded development server (`app.run(threaded=True)`), jobs in a plain dict, and a `GET /status/<id>` that
recomputes the job's status from the time elapsed since submission and answers `jsonify` of the job's fields.
`POST /translate` makes a job. Nothing else of the product (no queue, no limiter, no long-polls).

    python bench/seed003_standin.py [--port N]    # PORT from the environment otherwise; 0: any free port
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from typing import Any

from flask import Flask, jsonify, request

TRANSLATION_DELAY = float(os.environ.get("TRANSLATION_DELAY", "15"))
ERROR_RATE = float(os.environ.get("ERROR_RATE", "0.2"))


def create_app() -> Flask:
    """Build the stand-in: jobs in a dict, status computed from the elapsed time."""
    app = Flask(__name__)
    jobs: dict[str, dict[str, Any]] = {}

    @app.post("/translate")
    def translate() -> Any:
        body = request.get_json(silent=True) or {}
        role = body.get("role", "free")
        delay = TRANSLATION_DELAY * (0.5 if role == "premium" else 1.0) * random.uniform(0.8, 1.2)
        job_id = str(uuid.uuid4())
        jobs[job_id] = {
            "job_id": job_id,
            "role": role,
            "user_id": request.headers.get("X-User-Id", request.remote_addr),
            "created_at": time.time(),
            "delay": delay,
            "will_fail": random.random() < ERROR_RATE,
        }
        return jsonify({"job_id": job_id, "status": "pending"}), 202

    @app.get("/status/<job_id>")
    def status(job_id: str) -> Any:
        job = jobs.get(job_id)
        if job is None:
            return jsonify({"error": "job not found"}), 404
        elapsed = time.time() - job["created_at"]
        if elapsed < job["delay"]:
            state, progress = "pending", int(100 * elapsed / job["delay"]) if job["delay"] else 100
        else:
            state, progress = ("error" if job["will_fail"] else "completed"), 100
        return jsonify({
            "job_id": job_id,
            "status": state,
            "result": state,
            "role": job["role"],
            "user_id": job["user_id"],
            "progress": progress,
            "elapsed": round(elapsed, 3),
            "created_at": job["created_at"],
        })

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok", "jobs": len(jobs)})

    return app


def main() -> None:
    """Serve the stand-in on Werkzeug's threaded development server, as seed 003 did."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    args = parser.parse_args()
    # Werkzeug's request log stays on, as in seed 003 (the benchmark sends it to a file).
    create_app().run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
