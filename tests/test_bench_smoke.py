"""The benchmark scripts still run: each one, in its quick form, exits 0 and prints its tables.

Benchmarks measure nothing here (CI does not run them for figures, see BENCHMARKS.md); this only
keeps them from rotting. bench/load.py runs with `--loadgen auto`: wrk where it is installed (a
developer's machine), the Python load generator where it is not (CI).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_script(*args: str) -> str:
    """Run a benchmark script in its quick form; return its standard output after checking it exited 0."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_polling_benchmark_prints_its_tables() -> None:
    """bench/polling.py --quick waits with every strategy and prints the comparison and the targets."""
    out = run_script("bench/polling.py", "--quick")
    assert "| strategy" in out and "| target" in out
    for strategy in ("fixed 1 s polling", "fixed 5 s polling", "backoff", "hint-paced", "long-poll"):
        assert strategy in out


def test_load_benchmark_prints_its_tables() -> None:
    """bench/load.py --quick measures every row and prints the tables and the targets."""
    out = run_script("bench/load.py", "--quick", "--loadgen", "auto")
    assert "| request" in out and "| target" in out
    for row in ("GET /healthz", "GET /status/<id>", "POST /translate", "GET /jobs", "GET /queue",
                "POST /process_jobs", "POST /cleanup", "long-polls held", "werkzeug",
                "GET /jobs?limit=", "GET /queue?limit=", "GET /jobs?offset=", "GET /queue?offset="):
        assert row in out
    assert "resident memory per stored job" in out and "A user should not wait over a second" in out


def test_listing_benchmark_prints_its_table() -> None:
    """bench/listing.py --quick loads one state into four servers and compares their full listings."""
    out = run_script("bench/listing.py", "--quick")
    assert "| request" in out
    for row in ("orjson, streamed", "orjson, one piece", "json.dumps, streamed", "json.dumps, one piece"):
        assert out.count(f"| {row} ") == 2, row
    assert "chunked" in out and "Content-Length" in out


def test_store_benchmark_prints_its_tables() -> None:
    """bench/store.py --quick compares the stores in process and over HTTP and prints the size per job."""
    out = run_script("bench/store.py", "--quick", "--loadgen", "python")
    assert "| store" in out and "sqlite (synchronous=normal)" in out and "bytes per stored job" in out


def test_media_benchmark_prints_its_tables() -> None:
    """bench/media.py --quick makes (or reuses) a short 720p input, measures every operation, prints the targets."""
    out = run_script("bench/media.py", "--quick")
    for row in ("probe (input)", "make_result (remux to MP4", "generate_video (10 s", "MediaStore.save_upload",
                "| target"):
        assert row in out, row


def test_client_robustness_benchmark_prints_its_tables() -> None:
    """bench/client_robustness.py --quick measures the dead, slow and foreign servers and meets its targets."""
    out = run_script("bench/client_robustness.py", "--quick")
    for heading in ("Dead port", "Slow servers", "Foreign server", "| target"):
        assert heading in out
    for server in ("trickle-body", "trickle-headers", "silent"):
        assert out.count(f"| {server} ") == 5
    assert "| NO" not in out and " NO |" not in out


def test_webhooks_benchmark_prints_its_tables() -> None:
    """bench/webhooks.py --quick runs the burst, the outage and the kill -9 scenarios and prints the targets."""
    out = run_script("bench/webhooks.py", "--quick")
    assert "## 1. Burst" in out and "## 2. Receiver down" in out and "## 3. SQLite store, kill -9" in out
    assert "lag p95, job end → receipt" in out and "WEBHOOK_WORKERS" in out


@pytest.mark.skipif(shutil.which("wrk") is None, reason="bench/serving.py measures with wrk (apt-get install wrk)")
def test_serving_benchmark_prints_its_tables() -> None:
    """bench/serving.py --quick measures the seed stand-in and the chosen server, the request path and the targets."""
    out = run_script("bench/serving.py", "--quick")
    assert "| server" in out and "| part of GET /status/<id>" in out and "| target (python server.py)" in out
    for row in ("seed 003 stand-in", "hybrid", "idle TCP connections held", "long-polls held",
                "long-polls on one job", "concurrent full GET /jobs"):
        assert row in out, row
    assert "Exit codes after SIGTERM: 0, 0, 0." in out


def test_media_http_benchmark_prints_its_tables() -> None:
    """bench/media_http.py --quick uploads, makes a result, downloads and resumes over HTTP, and prints the targets."""
    out = run_script("bench/media_http.py", "--quick")
    for row in ("TranslationClient.upload (raw body)", "GET /results/<id>, read as it arrives", "Range: bytes=<half>-",
                "through a proxy that cuts", "| target", "resuming from the middle transfers only the rest"):
        assert row in out, row


def test_scale_benchmark_prints_its_tables() -> None:
    """bench/scale.py --quick runs two processes on a real Redis and prints its targets, round trips and ratio."""
    out = run_script("bench/scale.py", "--quick")
    assert "| measure" in out and "store round trips" in out and "Redis ÷ memory" in out
    for row in ("50 concurrent free submissions", "concurrent submissions", "long-poll on another process",
                "kill -9 of the lease holder", "GET /status/<id> (queued job)", "Redis CPU"):
        assert row in out


def test_events_benchmark_prints_its_tables() -> None:
    """bench/events.py --quick scrapes two servers, holds 50 streams with /healthz beside them, prints the targets."""
    out = run_script("bench/events.py", "--quick", "--loadgen", "auto", "--server", "event-loop")
    for row in ("GET /metrics, empty stored", "GET /metrics, 1,000 jobs stored", "async readers, one loop",
                "blocking reader threads", "changes to every stream", "streams open, idle", "µs per delivery",
                "| target"):
        assert row in out, row
    (delivered,) = [line for line in out.splitlines() if "each event to all 50 streams" in line]
    assert delivered.rstrip(" |").endswith("yes"), delivered  # however busy the machine, nothing is lost
