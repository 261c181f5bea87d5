"""How `python server.py` should serve the app: every candidate server side by side, then the load targets.

1. `GET /status/<id>` req/s (wrk, one thread, 16 connections), in rounds, one row after another, for
   seed 003's stand-in (`bench/seed003_standin.py`, Werkzeug's threaded development server), a bare Flask
   `jsonify` view under each candidate server, and our app (`server:create_app`) under each. Ratios are
   taken within a round. The load generator's ceiling is measured the same way against a trivial answer.
2. The request path's cost, part by part, in-process (`bench/request_path.py`).
3. The load targets, against `python server.py` (the chosen design): 10 000 idle TCP connections held,
   5 000 long-polls held (one job each, ended one by one; then all on one job, ended at once), and 50
   concurrent full `GET /jobs` at 36 000 jobs, half of the clients never reading.

    python bench/serving.py            # the full run (about five minutes; needs wrk)
    python bench/serving.py --quick    # a smoke run (about 20 s): seed and hybrid only, 1 s loads, small numbers

Candidates (each in its own process, settings in the environment, a temporary working directory; the
other servers come from bench/requirements.txt): `python server.py` as it is on BASE_COMMIT (waitress
with its patched channel, THREADS 512), and the current app under waitress (8 threads), gevent.pywsgi
(monkey-patched, TCP_NODELAY), granian WSGI (`--blocking-threads 8`, one worker), uvicorn + a2wsgi
(httptools, uvloop, 8 threads) and the hybrid now in `python server.py` (granian embedded, RSGI, Flask
in 8 threads, long-polls in the event loop); each beside a bare Flask `jsonify` view under the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import ADMIN_TOKEN, Server, epoch, machine, ms, percentile, revision, table  # noqa: E402

BASE_COMMIT = "addecb9"  # main before issue 11: python server.py on waitress with the patched channel
APP_SETTINGS = {"TRANSLATION_DELAY": 86_400, "DELAY_JITTER": 0, "ERROR_RATE": 0, "WORKERS": 2}
SERVERS = ("waitress", "gevent", "granian-wsgi", "uvicorn-a2wsgi", "hybrid")
QUICK_SERVERS = ("hybrid",)
SETTLE = 1.0  # the pauses that let a server take in a load or give memory back (quick: shorter)


# ------------------------------------------------------------------------------------ apps and launchers


def bare_app() -> Any:
    """Return the bare Flask `jsonify` app (the comparison the issue names)."""
    from bench.request_path import bare_app as make

    return make()


def ours_app() -> Any:
    """Return our app, logging its access line at INFO to stderr as `python server.py` does, with its ticker."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from simulator.http import create_app
    from simulator.ticker import Ticker

    app = create_app()
    Ticker(app.extensions["simulator"].engine).start()
    return app


def launch(kind: str, which: str, port: int) -> None:
    """Serve `which` (bare or ours) with server `kind` on 127.0.0.1:port until killed (runs in the subprocess)."""
    from simulator.serve import raise_open_files_limit

    raise_open_files_limit()
    factory = {"bare": bare_app, "ours": ours_app}[which]
    if kind == "gevent":
        from gevent import monkey

        monkey.patch_all()
        from gevent.pywsgi import WSGIServer

        class NoDelayServer(WSGIServer):
            def handle(self, sock: Any, address: Any) -> Any:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else 40 ms per keep-alive answer
                return super().handle(sock, address)

        NoDelayServer(("127.0.0.1", port), factory(), log=None).serve_forever()
    elif kind == "waitress":
        import waitress

        waitress.serve(factory(), host="127.0.0.1", port=port, threads=8, _quiet=True)
    elif kind == "waitress-512":
        import waitress

        waitress.serve(factory(), host="127.0.0.1", port=port, threads=512, _quiet=True)
    elif kind == "granian-wsgi":
        from granian import Granian

        Granian(f"bench.serving:{which}_app", factory=True, address="127.0.0.1", port=port, interface="wsgi",
                blocking_threads=8, working_dir=ROOT, log_enabled=False).serve()
    elif kind == "uvicorn-a2wsgi":
        import uvicorn
        from a2wsgi import WSGIMiddleware

        uvicorn.run(WSGIMiddleware(factory(), workers=8), host="127.0.0.1", port=port, log_level="warning",
                    access_log=False, http="httptools", loop="uvloop", lifespan="off")
    elif kind == "hybrid":
        from simulator.serve import serve
        from simulator.settings import Settings

        serve(factory(), Settings(PORT=port), lambda: None)
    elif kind == "ceiling":
        from granian.server.embed import Server as Embedded

        class Trivial:
            async def __rsgi__(self, scope: Any, proto: Any) -> None:
                proto.response_bytes(200, [("content-type", "application/json")], b'{"status":"ok"}')

        asyncio.run(Embedded(Trivial(), address="127.0.0.1", port=port, interface="rsgi", log_enabled=False).serve())
    else:
        raise SystemExit(f"unknown server {kind}")


def base_checkout(workdir: str) -> Path | None:
    """Unpack the tree of BASE_COMMIT (main before issue 11) into `workdir`; return its path, or None without git."""
    target = Path(workdir) / "base"
    if (target / "server.py").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    try:
        archive = subprocess.run(["git", "archive", BASE_COMMIT], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return target


def candidate(kind: str, which: str, settings: dict[str, Any], workdir: str) -> Server:
    """Return a (not yet started) Server for `which` under `kind`."""
    me = [sys.executable, str(Path(__file__).resolve())]
    if which == "seed":
        return Server(settings, [sys.executable, str(ROOT / "bench" / "seed003_standin.py")], name="seed003")
    if which == "ours" and kind == "hybrid":
        return Server(settings, name="ours-hybrid")  # python server.py as users run it
    if which == "base":
        base = base_checkout(workdir)
        if base is None:
            raise SystemExit("bench/serving.py needs git to unpack BASE_COMMIT")
        return Server({**settings, "THREADS": 512}, [sys.executable, str(base / "server.py")], name="base-waitress")
    server = Server(settings, [*me, "--serve", kind, "--app", which], name=f"{which}-{kind}")
    server.command.extend(["--port", str(server.port)])
    return server


# ------------------------------------------------------------------------------------- wrk


def wrk(url: str, seconds: int, connections: int = 16) -> tuple[float, float, int]:
    """Return (req/s, p99 latency s, errors) of `wrk -t1 -c{connections}` on `url` for `seconds`."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Requests/sec" not in out:
        raise subprocess.CalledProcessError(0, "wrk", out)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    latency = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(errors.group(1)) if errors else 0
    count += sum(map(int, sockets.groups())) if sockets else 0
    return rate, latency, count


# ------------------------------------------------------------------------------------- small clients


def http_call(port: int, method: str, path: str, body: Any = None, admin: bool = False,
              connection: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
    """Send one request; return (status, parsed JSON body)."""
    own = connection is None
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if admin:
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    if own:
        conn.close()
    return response.status, json.loads(data) if data else None


def healthz_sample(port: int, count: int, pause: float = 0.005) -> list[float]:
    """Return the latencies (s) of `count` sequential GET /healthz on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        time.sleep(pause)
    conn.close()
    return latencies


class RssPeak:
    """Sample a process's resident memory every 50 ms in a thread; keep the peak."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = server.rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.server.rss_bytes())
            except (OSError, RuntimeError):
                return

    def stop(self) -> int:
        """Stop sampling; return the peak (bytes)."""
        self._stop.set()
        self._thread.join()
        return self.peak


def mib(n: float) -> str:
    """Format bytes as MiB."""
    return f"{n / 2**20:,.0f}"


# ------------------------------------------------------------------------------------- load targets


def run(coroutine: Any) -> Any:
    """Run a load generator's coroutine on uvloop where installed (less of its own CPU in the figures)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


async def open_idle(port: int, count: int) -> list[socket.socket]:
    """Open `count` plain TCP connections that send nothing; return them."""
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []
    for start in range(0, count, 500):
        batch = []
        for _ in range(min(500, count - start)):
            s = socket.socket()
            s.setblocking(False)
            batch.append(s)
        await asyncio.gather(*(loop.sock_connect(s, ("127.0.0.1", port)) for s in batch))
        sockets.extend(batch)
    return sockets


def idle_connections(n: int, samples: int) -> dict[str, Any]:
    """Hold `n` idle connections to `python server.py`; measure /healthz while held and that it survives."""
    with tempfile.TemporaryDirectory() as workdir, candidate("hybrid", "ours", APP_SETTINGS, workdir) as server:
        before = healthz_sample(server.port, samples)
        started = time.perf_counter()
        held = run(open_idle(server.port, n))
        opened = time.perf_counter() - started
        time.sleep(1.0 * SETTLE)
        during = healthz_sample(server.port, samples)
        rss = server.rss_bytes()
        alive = server.process is not None and server.process.poll() is None
        for s in held:
            s.close()
        time.sleep(0.5 * SETTLE)
        after_ok = http_call(server.port, "GET", "/healthz")[0] == 200
        code = server.stop()
    return {"n": len(held), "opened_s": opened, "before": before, "during": during, "rss": rss,
            "alive": alive and after_ok, "exit": code}


class PollClient(asyncio.Protocol):
    """One long-poll on one connection: when its answer's first byte arrived, and the answer (parsed later)."""

    def __init__(self, request: bytes, done: Callable[[PollClient], None]) -> None:
        self.request = request
        self.done = done
        self.buffer = bytearray()
        self.received = 0.0
        self.complete = False

    def connection_made(self, transport: Any) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.buffer:
            self.received = time.time()  # first: the lag is measured to here; parsing waits until all answered
        self.buffer += data
        if not self.complete and b"\r\n\r\n" in self.buffer:
            head, _, body = bytes(self.buffer).partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            if length is not None and len(body) >= int(length.group(1)):
                self.complete = True
                self.done(self)

    @property
    def applied(self) -> bool:
        """Tell whether the answer said Preference-Applied."""
        return b"preference-applied" in bytes(self.buffer).partition(b"\r\n\r\n")[0].lower()

    @property
    def job(self) -> dict[str, Any] | None:
        """Return the answer's job (None before it is complete)."""
        return json.loads(bytes(self.buffer).partition(b"\r\n\r\n")[2]) if self.complete else None


async def hold_polls(port: int, paths: list[str]) -> tuple[list[PollClient], asyncio.Future[None], float]:
    """Open one long-poll per path; return the clients, a future done when all answered, and the CPU meter."""
    loop = asyncio.get_running_loop()
    all_done: asyncio.Future[None] = loop.create_future()
    remaining = [len(paths)]

    def done(_: PollClient) -> None:
        remaining[0] -= 1
        if remaining[0] == 0 and not all_done.done():
            all_done.set_result(None)

    clients = []
    for start in range(0, len(paths), 500):
        batch = [PollClient(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), done)
                 for p in paths[start:start + 500]]
        await asyncio.gather(*(loop.create_connection(lambda c=c: c, "127.0.0.1", port) for c in batch))
        clients.extend(batch)
    return clients, all_done, time.process_time()


def long_polls(n: int, samples: int) -> dict[str, Any]:
    """Hold `n` long-polls on queued jobs (manual mode): end the jobs one by one, then `n` on one job at once."""
    settings = {**APP_SETTINGS, "PROCESSING_MODE": "manual", "MAX_LONG_POLLS": 2 * n, "MAX_WAIT": 60,
                "MAX_JOBS": 2 * n + 10, "RATE_LIMIT": 0}
    out: dict[str, Any] = {"n": n}
    with tempfile.TemporaryDirectory() as workdir, candidate("hybrid", "ours", settings, workdir) as server:
        port = server.port
        idle = healthz_sample(port, samples)
        rss_idle = server.rss_bytes()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        ids = [http_call(port, "POST", "/translate", {"role": "premium"}, connection=conn)[1]["job_id"]
               for _ in range(n)]
        herd_id = http_call(port, "POST", "/translate", {"role": "premium"}, connection=conn)[1]["job_id"]

        async def spread() -> None:
            clients, all_done, _ = await hold_polls(port, [f"/status/{i}?wait=50" for i in ids])
            await asyncio.sleep(1.0 * SETTLE)
            out["healthz_held"] = await asyncio.to_thread(healthz_sample, port, samples)
            out["rss_held"] = server.rss_bytes()
            cpu = time.process_time()

            def cancel_all() -> None:
                admin = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                for job_id in ids:
                    http_call(port, "POST", f"/cancel/{job_id}", {}, admin=True, connection=admin)
                admin.close()

            started = time.perf_counter()
            await asyncio.gather(asyncio.to_thread(cancel_all), asyncio.wait_for(all_done, 120))
            out["spread_seconds"] = time.perf_counter() - started
            out["spread_client_cpu"] = time.process_time() - cpu
            out["spread"] = clients

        async def herd() -> None:
            clients, all_done, _ = await hold_polls(port, [f"/status/{herd_id}?wait=50"] * n)
            await asyncio.sleep(1.0 * SETTLE)
            out["rss_herd"] = server.rss_bytes()
            cpu = time.process_time()
            await asyncio.to_thread(http_call, port, "POST", f"/cancel/{herd_id}", {}, True)
            await asyncio.wait_for(all_done, 120)
            out["herd_client_cpu"] = time.process_time() - cpu
            out["herd"] = clients

        run(herd())
        run(spread())
        out["idle"], out["rss_idle"] = idle, rss_idle
        conn.close()
        with open(server.log_path, encoding="utf-8") as f:  # the server says how long the herd's wake took
            wakes = re.findall(r"woke (\d+) long-polls of one job in ([\d.]+) ms \(([\d.]+) ms of", f.read())
        out["wake"] = max(((int(n), float(w), float(c)) for n, w, c in wakes), default=None)
        out["exit"] = server.stop()
    return out


def job_store(path: str, jobs: int) -> None:
    """Write a SQLite store holding `jobs` jobs (half completed, half queued), made by the engine itself."""
    import config
    from jobs import JobEngine, system_clock
    from simulator.store.sqlite import SqliteStore

    store = SqliteStore(path)
    engine = JobEngine(config.from_mapping({**APP_SETTINGS, "MAX_JOBS": jobs, "TRANSLATION_DELAY": 0}),
                       store=store, clock=system_clock())
    with store.transaction():  # one write at the end, not one per job
        for i in range(jobs // 2):
            engine.submit("premium", f"user{i % 100}", video_url=f"https://example.com/v{i}.mp4",
                          target_language="de")
        engine.configure({"TRANSLATION_DELAY": 86_400})
        for i in range(jobs - jobs // 2):
            engine.submit("free" if i % 2 else "premium", f"user{i % 100}", video_url=f"https://example.com/w{i}.mp4",
                          target_language="fr")
    store.close()


async def listing_clients(port: int, readers: int, non_readers: int, hold: float) -> list[dict[str, Any]]:
    """Send full GET /jobs from `readers` clients that read all and `non_readers` that read nothing for `hold` s."""

    async def one(reads: bool) -> dict[str, Any]:
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        if not reads:
            await asyncio.sleep(hold)
            status_line = await reader.readline()
            writer.close()
            return {"reads": False, "status": int(status_line.split()[1] or 0), "seconds": None, "bytes": None}
        data = await reader.read()
        writer.close()
        return {"reads": True, "status": int(data.split(b" ", 2)[1]), "seconds": time.perf_counter() - started,
                "bytes": len(data)}

    return await asyncio.gather(*(one(i % 2 == 0) for i in range(readers + non_readers)))


def full_listings(jobs: int, clients: int, samples: int, hold: float) -> dict[str, Any]:
    """`clients` concurrent full GET /jobs at `jobs` jobs, half never reading: RSS growth, /healthz while they run."""
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "jobs.db")
        job_store(path, jobs)
        settings = {**APP_SETTINGS, "MAX_JOBS": jobs, "STORE": f"sqlite:///{path}", "JOB_TTL": 86_400,
                    "RATE_LIMIT": 1000}
        with candidate("hybrid", "ours", settings, workdir) as server:
            time.sleep(0.5 * SETTLE)
            stored = http_call(server.port, "GET", "/healthz")[1]["jobs"]
            rss_before = server.rss_bytes()
            meter = RssPeak(server)
            result: dict[str, Any] = {}

            def load() -> None:
                result["answers"] = run(listing_clients(server.port, clients // 2, clients - clients // 2,
                                                                hold))

            thread = threading.Thread(target=load)
            thread.start()
            time.sleep(0.2)
            during = healthz_sample(server.port, samples, pause=0.01)
            thread.join()
            peak = meter.stop()
            time.sleep(2.0 * SETTLE)
            rss_after = server.rss_bytes()
            code = server.stop()
    return {"jobs": stored, "answers": result["answers"], "during": during, "rss_before": rss_before,
            "peak": peak, "rss_after": rss_after, "exit": code}


# ------------------------------------------------------------------------------------------------- main


Rates = dict[str, list[float]]


def throughput(servers: tuple[str, ...], seconds: int, rounds: int, progress: Callable[[str], None],
               warm_up: bool = True, base: bool = True) -> tuple[Rates, dict[str, str], float, list[str]]:
    """Run every candidate side by side in rounds; return req/s per row, the row labels, the ceiling, notes."""
    notes: list[str] = []
    workdir = tempfile.mkdtemp(prefix="bench-serving-")
    rows: dict[str, Server] = {"seed003": candidate("", "seed", APP_SETTINGS, workdir)}
    if base:
        rows["base"] = candidate("", "base", APP_SETTINGS, workdir)
    for kind in servers:
        rows[f"bare/{kind}"] = candidate(kind, "bare", APP_SETTINGS, workdir)
        rows[f"ours/{kind}"] = candidate(kind, "ours", APP_SETTINGS, workdir)
    ceiling_server = Server({}, [sys.executable, str(Path(__file__).resolve()), "--serve", "ceiling", "--app", "bare"],
                            name="ceiling")
    ceiling_server.command.extend(["--port", str(ceiling_server.port)])
    everyone = [*rows.values(), ceiling_server]
    try:
        for server in everyone:
            server.launch()
        for server in everyone:
            server.wait_ready(60)
        progress(f"{len(everyone)} servers ready")
        paths = {}
        for key, server in rows.items():
            if key.startswith("bare"):
                paths[key] = "/status/0b5e"
            else:
                _, job = http_call(server.port, "POST", "/translate", {"role": "premium"})
                paths[key] = f"/status/{job['job_id']}"
        for key, server in rows.items() if warm_up else ():
            wrk(server.url + paths[key], 1)
        rates: dict[str, list[float]] = {key: [] for key in rows}
        ceiling = []
        for r in range(rounds):
            for key, server in rows.items():
                try:
                    rate, _, errors = wrk(server.url + paths[key], seconds)
                except subprocess.CalledProcessError as failed:
                    alive = server.process is not None and server.process.poll() is None
                    rate, errors = float("nan"), 0
                    notes.append(f"{key}: wrk failed in round {r + 1} (server {'up' if alive else 'exited'}): "
                                 f"{(failed.stdout or failed.stderr or '').strip()[:200]}")
                rates[key].append(rate)
                if errors:
                    notes.append(f"{key}: {errors} errors in round {r + 1}")
            ceiling.append(wrk(ceiling_server.url + "/", seconds)[0])
            progress(f"round {r + 1} of {rounds} done")
    finally:
        for server in everyone:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    labels = {"seed003": "seed 003 stand-in: Werkzeug threaded dev server"}
    return rates, labels, statistics.median(ceiling), notes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: the hybrid only, 1 s loads, small numbers")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 3; quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds of the side-by-side runs (default 3; quick 1)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--app", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        launch(args.serve, args.app, args.port)
        return 0
    if shutil.which("wrk") is None:
        print("bench/serving.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    quick = args.quick
    global SETTLE
    SETTLE = 0.3 if quick else 1.0
    seconds = args.seconds or (1 if quick else 3)
    rounds = args.rounds or (1 if quick else 3)
    n_idle, n_polls, n_jobs, n_listings = (300, 100, 2_000, 10) if quick else (10_000, 5_000, 36_000, 50)
    samples = 30 if quick else 200
    soft = __import__("simulator.serve", fromlist=["raise_open_files_limit"]).raise_open_files_limit()
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    servers = QUICK_SERVERS if quick else SERVERS
    rates, labels, ceiling, notes = throughput(servers, seconds, rounds, progress, warm_up=not quick, base=not quick)
    from bench import request_path

    parts = request_path.measure(1_000 if quick else 10_000, 1 if quick else 5)
    progress("request path measured")
    idle = idle_connections(n_idle, samples)
    progress("idle connections done")
    polls = long_polls(n_polls, samples)
    progress("long-polls done")
    listings = full_listings(n_jobs, n_listings, samples, 1.0 if quick else 5.0)
    progress("full listings done")

    # -------------------------------------------------------------------------------- report
    def med(key: str) -> float:
        return statistics.median(r for r in rates[key] if not math.isnan(r))

    def ratio(a: str, b: str) -> float:
        pairs = [x / y for x, y in zip(rates[a], rates[b], strict=True) if not (math.isnan(x) or math.isnan(y))]
        return statistics.median(pairs) if pairs else float("nan")

    load = os.getloadavg()[0]
    print(f"# bench/serving.py{' --quick' if quick else ''}\n")
    print(f"Machine: {machine()}; {revision()}. Wall time: {time.monotonic() - began:.0f} s. Open-files limit "
          f"{soft:,}. Load average at the end: {load:.1f} (2 cores: other work was running beside the benchmark "
          "if it is far above 2).")
    print(f"`GET /status/<id>`: wrk -t1 -c16, {seconds} s per run, {rounds} round(s) of every row in turn; "
          f"medians. Load generator ceiling (wrk against a trivial answer from granian): {ceiling:,.0f} req/s.\n")
    descriptions = {
        "waitress": "waitress 3.0.2, 8 threads",
        "gevent": "gevent.pywsgi (monkey-patched, TCP_NODELAY)",
        "granian-wsgi": "granian WSGI, 1 worker, --blocking-threads 8",
        "uvicorn-a2wsgi": "uvicorn (httptools, uvloop) + a2wsgi, 8 threads",
        "hybrid": "hybrid: granian embedded RSGI, Flask in 8 threads, long-polls async (`python server.py` now)",
    }
    rows = [[labels["seed003"], "", f"{med('seed003'):,.0f}", "", "1.00", ""]]
    if "base" in rates:
        rows.append([f"`python server.py` before issue 11 ({BASE_COMMIT}: waitress, THREADS 512, patched channel)",
                     "", f"{med('base'):,.0f}", "", f"{ratio('base', 'seed003'):.2f}", ""])
    for kind in servers:
        bare, ours = f"bare/{kind}", f"ours/{kind}"
        rows.append([descriptions[kind], f"{med(bare):,.0f}", f"{med(ours):,.0f}", f"{ratio(ours, bare):.2f}",
                     f"{ratio(ours, 'seed003'):.2f}", _yes(ratio(ours, bare) >= 0.5 and ratio(ours, "seed003") >= 3)])
    print(table(["server", "bare Flask req/s", "our app req/s", "ours / bare (≥ 0.5)", "ours / seed 003 (≥ 3)",
                 "both met"], rows, "lrrrrl"))
    print()
    print("Our `GET /status/<id>` in the app itself, in-process (bench/request_path.py; CPU µs per request):\n")
    print(request_path.report(parts))
    print()

    lag_spread = [c.received - epoch(c.job["finished_at"]) for c in polls["spread"] if c.job and c.job["finished_at"]]
    lag_herd = [c.received - epoch(c.job["finished_at"]) for c in polls["herd"] if c.job and c.job["finished_at"]]
    wake = polls["wake"]
    wake_text = (f"; the server wrote all {wake[0]:,} answers in {wake[1]:.0f} ms, {wake[2]:.0f} ms of its event "
                 "loop's CPU" if wake else "")
    honoured = sum(c.applied for c in polls["spread"]) + sum(c.applied for c in polls["herd"])
    answers = listings["answers"]
    read = [a for a in answers if a["reads"]]
    statuses = {s: sum(a["status"] == s for a in answers) for s in sorted({a["status"] for a in answers})}
    slowest = max((a["seconds"] for a in read if a["status"] == 200), default=0.0)
    growth = listings["peak"] - listings["rss_before"]
    returned = listings["rss_after"] - listings["rss_before"]
    targets = [
        [f"{idle['n']:,} idle TCP connections held (opened in {idle['opened_s']:.1f} s)",
         f"server up: {_yes(idle['alive'])}; /healthz p50 {ms(percentile(idle['during'], 50), 2)} ms, p99 "
         f"{ms(percentile(idle['during'], 99), 2)} ms (none held: p99 {ms(percentile(idle['before'], 99), 2)} ms); "
         f"RSS {mib(idle['rss'])} MiB; exit {idle['exit']}",
         "up, p99 ≤ 50 ms", _yes(idle["alive"] and percentile(idle["during"], 99) <= 0.050)],
        [f"{n_polls:,} long-polls held (one queued job each)",
         f"/healthz p50 {ms(percentile(polls['healthz_held'], 50), 2)} ms, p99 "
         f"{ms(percentile(polls['healthz_held'], 99), 2)} ms (none held: p99 {ms(percentile(polls['idle'], 99), 2)} "
         f"ms); RSS {mib(polls['rss_held'])} MiB (idle {mib(polls['rss_idle'])})",
         "p99 ≤ 50 ms, RSS ≤ 300 MB",
         _yes(percentile(polls["healthz_held"], 99) <= 0.050 and polls["rss_held"] <= 300e6)],
        [f"… each job cancelled in turn ({polls['spread_seconds']:.1f} s for all)",
         f"wake lag p50 {ms(percentile(lag_spread, 50))} ms, p99 {ms(percentile(lag_spread, 99))} ms, max "
         f"{ms(max(lag_spread, default=float('nan')))} ms ({len(lag_spread):,} answered; load generator CPU "
         f"{polls['spread_client_cpu']:.2f} s)", "p99 ≤ 100 ms", _yes(percentile(lag_spread, 99) <= 0.100)],
        [f"{n_polls:,} long-polls on one job, cancelled at once",
         f"wake lag p50 {ms(percentile(lag_herd, 50))} ms, p99 {ms(percentile(lag_herd, 99))} ms ({len(lag_herd):,} "
         f"answered; RSS {mib(polls['rss_herd'])} MiB while held; load generator CPU {polls['herd_client_cpu']:.2f} s"
         f"{wake_text})",
         "p99 ≤ 100 ms", _yes(percentile(lag_herd, 99) <= 0.100)],
        [f"{n_listings} concurrent full GET /jobs at {listings['jobs']:,} jobs, half never reading",
         f"answers {statuses}; readers' slowest {slowest:.2f} s; RSS {mib(listings['rss_before'])} → peak "
         f"{mib(listings['peak'])} → after {mib(listings['rss_after'])} "
         f"MiB; /healthz p50 {ms(percentile(listings['during'], 50), 2)} ms, p99 "
         f"{ms(percentile(listings['during'], 99), 2)} ms",
         "growth ≤ 300 MB and returned, p99 ≤ 100 ms",
         _yes(growth <= 300e6 and returned <= 50e6 and percentile(listings["during"], 99) <= 0.100)],
    ]
    print(table(["target (python server.py)", "figure", "target", "met"], targets, "llll"))
    print(f"\nLong-polls honoured (Preference-Applied): {honoured:,} of {2 * n_polls:,}. Exit codes after SIGTERM: "
          f"{idle['exit']}, {polls['exit']}, {listings['exit']}.")
    for note in notes:
        print(f"\nNote: {note}")
    return 0 if all(code == 0 for code in (idle["exit"], polls["exit"], listings["exit"])) else 1


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


if __name__ == "__main__":
    sys.exit(main())
