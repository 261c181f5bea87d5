"""The media flow over HTTP (issue 15): a 200 MB upload's memory, a 10-minute 720p result, download speed, resuming.

    python bench/media_http.py            # the 10-minute 1280x720 input of bench/media.py (made once, reused)
    python bench/media_http.py --quick    # smoke run: a 16 s input, 1 round

Every figure is taken against `python server.py` in a subprocess (waitress, as users run it), with DATA_DIR in a
temporary folder and the result worker running:

1. **Upload**: the input is sent to a fresh server, as a raw body by `TranslationClient.upload` (streamed from
   the file) and as multipart/form-data by `curl -F file=@…` when curl is installed. Server memory: VmRSS before,
   VmHWM (the peak) after, from /proc.
2. **Result**: a premium job of that upload (TRANSLATION_DELAY 0.2 s); from the job's `finished_at` to the moment
   the result file appears in DATA_DIR (the worker writes it under a temporary name and renames it), polled every
   2 ms: the remux plus the worker's latency, end to end. Each round first flushes the page cache's dirty pages
   (`os.sync()`), so that it does not wait behind the writeback of the rounds before it.
3. **Download**: `GET /results/<id>` of that result on loopback, read as it arrives (urllib3 `read1`, 1 MiB, bytes
   counted and dropped), by `TranslationClient.download_result` into a file, and by curl into /dev/null.
4. **Resume**: through `simulator.testing.DroppingProxy`, which cuts the first answer halfway; the client resumes
   with `Range: bytes=<received>-`. Figures: the bytes the proxy passed for both tries, against the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench._common import Server, machine, revision, table
from bench.media import input_video
from client import TranslationClient, TranslationError
from simulator.media import make_result, probe
from simulator.testing import DroppingProxy

MB = 1_000_000
SETTINGS = {"TRANSLATION_DELAY": 0.2, "PREMIUM_DELAY_FACTOR": 1.0, "DELAY_JITTER": 0, "ERROR_RATE": 0,
            "MAX_UPLOAD_BYTES": 4 << 30, "MAX_DATA_BYTES": 64 << 30, "MAX_MEDIA_SECONDS": 86400}


def memory_kib(pid: int, field: str) -> int:
    """Return VmRSS or VmHWM of a process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def server_on(data_dir: Path) -> Server:
    """Return a fresh server whose DATA_DIR is `data_dir` (it starts when its `with` block is entered)."""
    return Server({**SETTINGS, "DATA_DIR": str(data_dir)}, name="media-http")


def measure_upload(source: Path, how: str, work: Path) -> dict[str, Any]:
    """Upload `source` to a fresh server (`client` raw body, or `curl` multipart); return time and memory."""
    with server_on(work / f"data-{how}") as server:
        requests.get(server.url + "/healthz", timeout=5)
        rss_before = memory_kib(server.pid, "VmRSS")
        started = time.perf_counter()
        if how == "client":
            with TranslationClient(server.url, timeout=120) as tc:
                upload_id = tc.upload(source).upload_id
        else:
            out = subprocess.run(["curl", "-sS", "-F", f"file=@{source}", server.url + "/uploads"],
                                 capture_output=True, text=True, check=True, timeout=600)
            upload_id = json.loads(out.stdout)["upload_id"]
        seconds = time.perf_counter() - started
        peak = memory_kib(server.pid, "VmHWM")
        kept = (work / f"data-{how}" / "uploads").glob(f"{upload_id}.*")
    assert any(p.suffix != ".json" for p in kept)
    return {"seconds": seconds, "growth_mb": (peak - rss_before) * 1024 / MB, "rss_before_mb": rss_before * 1024 / MB}


def measure_refusal(source: Path, work: Path, limit: int) -> dict[str, Any]:
    """Upload `source` to a server whose MAX_UPLOAD_BYTES is `limit`; return how the refusal went."""
    data_dir = work / "data-refused"
    server = Server({**SETTINGS, "DATA_DIR": str(data_dir), "MAX_UPLOAD_BYTES": limit}, name="media-http")
    with server, TranslationClient(server.url, timeout=120) as tc:
        started = time.perf_counter()
        try:
            tc.upload(source)
            outcome = "accepted (!)"
        except TranslationError as e:
            outcome = f"{getattr(e, 'status', '')} {getattr(e, 'code', type(e).__name__)}".strip()
        seconds = time.perf_counter() - started
        left = [p for p in data_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    return {"outcome": outcome, "seconds": seconds, "files_left": len(left)}


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.002) -> float:
    """Poll `check` until true; return the wall-clock time (epoch s) it was first seen true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(interval)
    return time.time()


def read_all(url: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """GET `url`, read the body as it arrives and drop it; return (bytes, seconds)."""
    with requests.Session() as session:
        started = time.perf_counter()
        with session.get(url, headers=headers, stream=True, timeout=60) as response:
            response.raise_for_status()
            received = 0
            while piece := response.raw.read1(1 << 20):
                received += len(piece)
        return received, time.perf_counter() - started


def main() -> int:
    """Measure and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a 16 s input, 1 round")
    parser.add_argument("--seconds", type=int, default=600, help="input duration, a multiple of 8 (default 600)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    seconds, rounds = (16, 1) if args.quick else (args.seconds, args.rounds)
    began = time.perf_counter()
    source, _ = input_video(seconds)
    size = source.stat().st_size
    print(f"Input: {source} ({size / MB:.1f} MB, {probe(source).duration_seconds:.0f} s, 1280x720 H.264 + AAC).\n")
    curl = shutil.which("curl")

    with tempfile.TemporaryDirectory(prefix="bench-media-http-") as tmp:
        work = Path(tmp)
        uploads: dict[str, list[dict[str, Any]]] = {"client": [], "curl": []}
        for r in range(rounds):
            for how in ("client", "curl") if curl else ("client",):
                uploads[how].append(measure_upload(source, how, work / f"round{r}"))
                shutil.rmtree(work / f"round{r}", ignore_errors=True)

        refusal_limit = size // 4
        refusal = measure_refusal(source, work, refusal_limit)
        core = []  # the same remux in this process, in the same run: what the worker's part costs alone
        for r in range(rounds):
            os.sync()
            started = time.perf_counter()
            make_result(source, work / f"core-{r}", job_id="bench-core", language="de")
            core.append(time.perf_counter() - started)
            (work / f"core-{r}.mp4").unlink()

        data_dir = work / "data"
        with server_on(data_dir) as server, TranslationClient(server.url, timeout=120) as tc:
            upload = tc.upload(source)
            result_delays, result_path = [], None
            for _ in range(rounds):
                os.sync()  # each round starts with no dirty pages queued: the earlier rounds' 400 MB of writes
                job = tc.submit("premium", upload_id=upload.upload_id, target_language="de", deduplicate=False)
                final = tc.wait_for_completion(job.job_id, timeout=120)
                result_path = data_dir / "results" / f"{final.job_id}.mp4"
                seen_at = wait_for(result_path.exists, timeout=60)
                result_delays.append(seen_at - final.finished_at.timestamp())
            assert result_path is not None
            result_size = result_path.stat().st_size
            url = server.url + final.result_url  # type: ignore[operator]

            reads = [read_all(url) for _ in range(rounds)]
            into_file = []
            for r in range(rounds):
                started = time.perf_counter()
                saved = tc.download_result(final, work / f"download-{r}.mp4")
                into_file.append(time.perf_counter() - started)
                assert saved.stat().st_size == result_size
                saved.unlink()
            curl_speeds = []
            if curl:
                for _ in range(rounds):
                    out = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                                          url], capture_output=True, text=True, check=True, timeout=120)
                    got, took = out.stdout.split()
                    assert int(got) == result_size
                    curl_speeds.append(int(got) / float(took))
            half = result_size // 2
            ranged, ranged_seconds = read_all(url, {"Range": f"bytes={half}-"})
            with DroppingProxy(server.url, drop_after_bytes=half) as proxy, \
                    TranslationClient(proxy.url, timeout=120) as through:
                started = time.perf_counter()
                resumed = through.download_result(final, work / "resumed.mp4")
                resume_seconds = time.perf_counter() - started
                passed, resume_requests = proxy.sent_bytes, list(proxy.requests)
            assert resumed.read_bytes() == result_path.read_bytes()
            rss_after = memory_kib(server.pid, "VmRSS") * 1024 / MB

    print(table(["upload (fresh server each)", "rounds", "MB", "median s", "MB/s", "RSS before MB",
                 "RSS growth MB median", "max"],
                [(f"{'TranslationClient.upload (raw body)' if how == 'client' else 'curl -F file=@… (multipart)'}",
                  len(runs), f"{size / MB:.1f}", f"{statistics.median(r['seconds'] for r in runs):.2f}",
                  f"{size / MB / statistics.median(r['seconds'] for r in runs):.0f}",
                  f"{statistics.median(r['rss_before_mb'] for r in runs):.1f}",
                  f"{statistics.median(r['growth_mb'] for r in runs):.1f}", f"{max(r['growth_mb'] for r in runs):.1f}")
                 for how, runs in uploads.items() if runs]))
    print(f"\nAn upload over MAX_UPLOAD_BYTES ({refusal_limit / MB:.1f} MB limit, the {size / MB:.1f} MB input as "
          f"a raw body): answered {refusal['outcome']} after {refusal['seconds']:.2f} s; files left in DATA_DIR: "
          f"{refusal['files_left']}.")
    print()
    read_speeds = [n / s for n, s in reads]
    file_speeds = [result_size / s for s in into_file]
    rows = [("GET /results/<id>, read as it arrives (requests, read1 1 MiB)", rounds,
             f"{statistics.median(read_speeds) / MB:.0f}", f"{min(read_speeds) / MB:.0f}"),
            ("TranslationClient.download_result into a file", rounds,
             f"{statistics.median(file_speeds) / MB:.0f}", f"{min(file_speeds) / MB:.0f}")]
    if curl_speeds:
        rows.append(("curl -o /dev/null", rounds, f"{statistics.median(curl_speeds) / MB:.0f}",
                     f"{min(curl_speeds) / MB:.0f}"))
    print(table(["download of the result (" + f"{result_size / MB:.1f} MB, loopback)", "rounds", "median MB/s",
                 "slowest MB/s"], rows))
    print()
    print(table(["resume", "file MB", "bytes asked", "bytes sent", "s"],
                [("Range: bytes=<half>- (one request)", f"{result_size / MB:.1f}", f"{result_size - half:,}",
                  f"{ranged:,}", f"{ranged_seconds:.2f}"),
                 ("download_result through a proxy that cuts the first answer at half", f"{result_size / MB:.1f}",
                  f"{result_size:,} once", f"{passed:,} (both tries, headers included)", f"{resume_seconds:.2f}")]))
    print(f"\nResumed try: {resume_requests[-1][0]!r} with Range {resume_requests[-1][1]!r}; "
          f"server RSS after the downloads: {rss_after:.1f} MB.\n")

    growth = max(r["growth_mb"] for runs in uploads.values() for r in runs)
    length_text = f"{seconds // 60}-minute" if seconds >= 60 else f"{seconds} s"
    targets = [
        (f"upload of {size / MB:.0f} MB: server RSS growth (worst of {sum(map(len, uploads.values()))})",
         f"{growth:.1f} MB", "≤ 30 MB", growth <= 30),
        (f"result of the {length_text} 720p upload, completion → file ready (slowest)",
         f"{max(result_delays):.3f} s", "≤ 2 s", max(result_delays) <= 2),
        ("download throughput on loopback (median, read as it arrives)",
         f"{statistics.median(read_speeds) / MB:.0f} MB/s", "≥ 200 MB/s", statistics.median(read_speeds) >= 200 * MB),
        ("resuming from the middle transfers only the rest", f"{ranged:,} of {result_size:,} B; proxied tries "
         f"{passed / result_size:.4f}× the file", "the rest only", ranged == result_size - half
         and passed < result_size * 1.001),
    ]
    print(table(["target", "figure", "target", "met"], [(a, b, c, "yes" if ok else "NO") for a, b, c, ok in targets],
                align="llll"))
    print(f"\nResult, completion → file ready over HTTP (s): {', '.join(f'{d:.3f}' for d in result_delays)}; "
          f"median {statistics.median(result_delays):.3f}. The same remux in-process, same run (s): "
          f"{', '.join(f'{d:.3f}' for d in core)}; median {statistics.median(core):.3f}.")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Machine: {machine()}; {revision()}. Load average at the end: {load}. "
          f"Wall time: {time.perf_counter() - began:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
