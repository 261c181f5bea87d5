"""Watching the simulation under load: SSE fan-out to 1,000 streams, /healthz beside them, a scrape at 100,000 jobs.

Against `python server.py` as users run it (subprocesses, settings in the environment; see _common.Server).

1. Scrape. A server filled to 100 000 jobs (half completed, half queued behind two busy workers, as in
   bench/load.py) and an empty one, side by side: `GET /metrics` back to back on one keep-alive
   connection, timed by the client and by the server's own access-log line.
2. The hub alone, in one process: 1 000 async readers on one event loop against 1 000 blocking reader
   threads (what a WSGI server does with the Flask view), no sockets.
3. Fan-out. 1 000 streams from separate processes (asyncio, one connection each, HTTP/1.0 so the stream is
   the raw body) against `python server.py` — granian, /events served on the event loop by
   `simulator.http.eventstream` — and, side by side when waitress is installed (`bench/requirements.txt`),
   the same app under waitress with a thread per stream (the Flask view; `--serve-threads` runs this script
   as that server). `/healthz` is probed as a monitor would (50 a second) and saturated by wrk, with no
   stream open, with the streams idle, and while jobs are submitted at `--rate` per second (1 s attempts:
   submitted, started, progress and completed events). Every subscriber notes when each event arrived;
   delivery latency is that moment less the event's `at` (the server's clock when the change happened), and
   an event counts as delivered to all when every subscriber got it. The server's CPU over the probed phase,
   net of the idle server's and the probe's, gives the cost per delivery.

    python bench/events.py                 # the full run: 100 000 jobs, 1 000 subscribers
    python bench/events.py --quick         # a smoke run: 1 000 jobs, 50 subscribers, 1 s of events
    python bench/events.py --subscribers 500 --rate 10 --seconds 20
    python bench/events.py --part fanout --server both    # only the fan-out: the event loop and threads
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import re
import shutil
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench._common import Server, machine, ms, percentile, revision, table  # noqa: E402
from bench.load import PythonLoad, Wrk, fill  # noqa: E402

SCRAPE_TARGET = 0.050  # seconds
DELIVERY_TARGET = 0.100
HEALTHZ_TARGET = 0.050
_EVENT = re.compile(rb"id: (\d+)\nevent: (\w+)\ndata: [^\n]*?\"at\":\"([^\"]+)\"")
_LOG_MS = re.compile(r'"GET /metrics" 200 ([\d.]+)ms')


# ------------------------------------------------------------------------------------------------ subscribers


async def _subscribe(host: str, port: int, opened: list[int], stop: asyncio.Event) -> list[tuple[int, str, str, float]]:
    """Hold one stream until `stop`; return (event id, kind, at, arrival time) for each event that came."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /events HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        raise RuntimeError(f"the stream was refused: {head[:60]!r}")
    opened.append(1)
    got: list[tuple[int, str, str, float]] = []
    buffer = b""
    stopping = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        reading = asyncio.ensure_future(reader.read(65536))
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not reading.done():
            reading.cancel()
            break
        data = reading.result()
        if not data:
            break
        arrived = time.time()
        buffer += data
        end = buffer.rfind(b"\n\n")
        if end < 0:
            continue
        for match in _EVENT.finditer(buffer, 0, end + 2):
            got.append((int(match.group(1)), match.group(2).decode(), match.group(3).decode(), arrived))
        buffer = buffer[end + 2:]
    writer.close()
    return got


def _subscriber_process(conn: Connection, host: str, port: int, count: int) -> None:
    """Open `count` streams, say when they are open, hold them until told to stop, send back what arrived."""

    async def main() -> None:
        opened: list[int] = []
        stop = asyncio.Event()
        tasks = []
        for i in range(count):
            tasks.append(asyncio.ensure_future(_subscribe(host, port, opened, stop)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # do not flood the listen backlog
        while len(opened) < count:
            if any(t.done() and t.exception() for t in tasks):
                conn.send(("error", str(next(t.exception() for t in tasks if t.done() and t.exception()))))
                return
            await asyncio.sleep(0.01)
        conn.send(("open", count))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        stop.set()
        results = await asyncio.gather(*tasks)
        conn.send(("events", results))

    asyncio.run(main())


class Subscribers:
    """`total` event streams held by `processes` processes."""

    def __init__(self, url: str, total: int, processes: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        context = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        for share in shares:
            parent, child = context.Pipe()
            context.Process(target=_subscriber_process, args=(child, host, int(port), share), daemon=True).start()
            self.pipes.append(parent)

    def wait_open(self) -> None:
        """Return once every stream is open (the server answered 200)."""
        for pipe in self.pipes:
            kind, value = pipe.recv()
            if kind != "open":
                raise RuntimeError(f"a subscriber failed: {value}")

    def collect(self) -> list[list[tuple[int, str, str, float]]]:
        """Close every stream; return, per stream, the events it got."""
        for pipe in self.pipes:
            pipe.send("stop")
        streams = []
        for pipe in self.pipes:
            _, value = pipe.recv()
            streams.extend(value)
        return streams


# ------------------------------------------------------------------------------------------------ measurements


def scrape_times(server: Server, rounds: int) -> tuple[list[float], list[float], int]:
    """Scrape `rounds` times; return client seconds, server seconds (its access log) and the exposition's size."""
    session = requests.Session()
    session.get(f"{server.url}/metrics", timeout=30).raise_for_status()  # warm
    client = []
    size = 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = session.get(f"{server.url}/metrics", timeout=30)
        client.append(time.perf_counter() - started)
        response.raise_for_status()
        size = len(response.content)
    session.close()
    with open(server.log_path, encoding="utf-8") as log:
        logged = [float(m.group(1)) / 1000 for line in log if (m := _LOG_MS.search(line))]
    return client, logged[-rounds:], size


def submit_at_rate(url: str, rate: float, seconds: float) -> int:
    """Submit premium jobs at `rate` per second for `seconds`; return how many."""
    session = requests.Session()
    started = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = sent / rate
        if elapsed < due:
            time.sleep(due - elapsed)
        session.post(f"{url}/translate", data='{"role":"premium"}', timeout=30).raise_for_status()
        sent += 1
    session.close()
    return sent


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process has used, from /proc."""
    import os

    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def epoch(text: str) -> float:
    """Return epoch seconds of the server's ISO timestamps (2026-11-24T10:00:00.123456Z)."""
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def delivery(streams: list[list[tuple[int, str, str, float]]]) -> dict[str, Any]:
    """Summarise what the streams got: changes delivered to all, latencies of changes and of progress."""
    everyone = len(streams)
    seen: dict[int, int] = {}
    change_lat: list[float] = []
    progress_lat: list[float] = []
    first: dict[tuple[int, str], float] = {}
    last: dict[tuple[int, str], float] = {}
    for events in streams:
        for event_id, kind, at, arrived in events:
            latency = arrived - epoch(at)
            key = (event_id, kind)
            first[key] = min(first.get(key, arrived), arrived)
            last[key] = max(last.get(key, arrived), arrived)
            if kind == "progress":
                progress_lat.append(latency)
            else:
                seen[event_id] = seen.get(event_id, 0) + 1
                change_lat.append(latency)
    spread = [last[key] - first[key] for key in first]
    return {
        "changes": len(seen),
        "to_all": sum(1 for n in seen.values() if n == everyone),
        "deliveries": len(change_lat),
        "p50": percentile(change_lat, 50), "p99": percentile(change_lat, 99), "max": max(change_lat, default=0),
        "progress_p99": percentile(progress_lat, 99), "progress": len(progress_lat),
        "spread_p99": percentile(spread, 99),
    }


# ------------------------------------------------------------------------------------------------ in process


def hub_fanout(readers: int, events: int, kind: str) -> tuple[list[float], float]:
    """Time the hub alone: `events` submissions fanned out to `readers` in-process readers, no sockets.

    `kind` is "async" (AsyncSubscription readers on one event loop) or "threads" (a blocking reader per
    thread, as under a WSGI server). Return each (event, reader) latency, from the submission to the moment
    the reader got it, and the process CPU seconds per delivery.
    """
    import threading

    import config
    from jobs import JobEngine
    from simulator.events import EventHub

    engine = JobEngine(config.from_mapping({"PROCESSING_MODE": "manual", "MAX_JOBS": 1_000_000}))
    hub = EventHub(engine)
    latencies: list[float] = []
    submitted: dict[str, float] = {}
    pattern = re.compile(rb"event: submitted\ndata: [^\n]*?\"job_id\":\"([^\"]+)\"")
    lock = threading.Lock()

    def note(chunk: bytes, now: float, got: list[float]) -> int:
        ids = pattern.findall(chunk)
        got.extend(now - submitted[i.decode()] for i in ids)
        return len(ids)

    def submit_all() -> None:
        for _ in range(events):
            with lock:
                started = time.perf_counter()
                job, _ = engine.submit("premium", "bench")
                submitted[job["job_id"]] = started
            time.sleep(0.02)  # 50 events a second, each its own batch

    cpu_before = time.process_time()
    if kind == "async":

        async def main() -> None:
            subscriptions = [hub.subscribe_async() for _ in range(readers)]

            async def read(subscription: Any) -> list[float]:
                got: list[float] = []
                seen = 0
                while seen < events:
                    frames = await subscription.atake()
                    now = time.perf_counter()
                    with lock:
                        seen += note(b"".join(frames or []), now, got)
                subscription.close()
                return got

            tasks = [asyncio.ensure_future(read(s)) for s in subscriptions]
            await asyncio.to_thread(submit_all)
            for got in await asyncio.gather(*tasks):
                latencies.extend(got)

        asyncio.run(main())
    else:
        subscriptions = [hub.subscribe() for _ in range(readers)]
        results: list[list[float]] = [[] for _ in range(readers)]

        def read(index: int) -> None:
            seen = 0
            while seen < events:
                frames = subscriptions[index].take(5.0) or []
                now = time.perf_counter()
                with lock:
                    seen += note(b"".join(frames), now, results[index])
            subscriptions[index].close()

        threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(readers)]
        for thread in threads:
            thread.start()
        submit_all()
        for thread in threads:
            thread.join(timeout=60)
        for got in results:
            latencies.extend(got)
    cpu = time.process_time() - cpu_before
    hub.close()
    return latencies, cpu / max(1, len(latencies))


def measure_hub(readers: int, events: int) -> None:
    """Print the in-process fan-out table: async readers and blocking threads, alternated, twice each."""
    rows = []
    for _ in range(2):
        for kind in ("async", "threads"):
            latencies, cpu = hub_fanout(readers, events, kind)
            rows.append([f"{readers} {'async readers, one loop' if kind == 'async' else 'blocking reader threads'}",
                         f"{len(latencies):,}", ms(percentile(latencies, 50), 2), ms(percentile(latencies, 99), 2),
                         ms(max(latencies), 2), f"{cpu * 1e6:.1f}"])
    print(f"## The hub alone, in one process ({events} submissions at 50/s, no sockets)\n")
    print(table(["readers", "deliveries", "p50 ms", "p99 ms", "max ms", "CPU µs per delivery"], rows))
    print()


# ------------------------------------------------------------------------------------------------ async harness


def serve_threads() -> int:
    """Serve the app under waitress, one thread per request, /events through the Flask view (`--serve-threads`).

    The design before the async serving layer, for comparison only: every open stream holds a thread.
    BENCH_THREADS from the environment sets the thread count (THREADS, the app pool's size, stops at 256); the
    ticker runs as `python server.py` runs it.
    """
    import logging
    import os

    import waitress

    import config
    from server import create_app
    from simulator.ticker import Ticker

    logging.basicConfig(level=logging.WARNING)
    settings = config.load().with_admin_token()
    app = create_app(settings)
    ticker = Ticker(app.extensions["simulator"].engine).start()
    try:
        threads = int(os.environ.get("BENCH_THREADS", "64"))
        waitress.serve(app, host=settings.HOST, port=settings.PORT, threads=threads, connection_limit=threads + 512,
                       channel_timeout=300, _quiet=True)
    finally:
        ticker.stop()
    return 0


# ------------------------------------------------------------------------------------------------ main


def measure_scrape(n_jobs: int, rounds: int, gen: Wrk | PythonLoad, progress: Any) -> float:
    """Print the scrape table (a full server and an empty one, alternating); return the full one's client median."""
    big_settings = {"MAX_JOBS": n_jobs * 2, "RATE_LIMIT": 1_000_000, "TRANSLATION_DELAY": 0, "WORKERS": 2}
    scraped: dict[str, tuple[list[float], list[float], int]] = {}
    full_name = f"{n_jobs:,} jobs"
    with Server(big_settings, name="scrape-full") as full, Server({}, name="scrape-empty") as empty:
        progress(f"filling a server to {n_jobs} jobs")
        fill(full, gen, n_jobs // 2)
        full.configure(TRANSLATION_DELAY=86400)
        fill(full, gen, n_jobs)
        progress("scraping")
        for _ in range(2):  # alternate, so that both see the same neighbours' noise
            for name, server in (("empty", empty), (full_name, full)):
                client, logged, size = scrape_times(server, rounds // 2)
                old = scraped.get(name, ([], [], 0))
                scraped[name] = (old[0] + client, old[1] + logged, size)
    rows = [[f"GET /metrics, {name} stored", f"{size:,}", ms(statistics.median(logged)), ms(percentile(logged, 95)),
             ms(statistics.median(client)), ms(percentile(client, 95)), ms(max(client))]
            for name, (client, logged, size) in scraped.items()]
    print(f"## Scrape ({rounds} scrapes per server, one keep-alive connection)\n")
    print(table(["request", "bytes", "server median ms", "server p95 ms", "client median ms", "client p95 ms",
                 "client max ms"], rows))
    print()
    return statistics.median(scraped[full_name][0])


def probe(url: str, seconds: float, interval: float = 0.02) -> list[float]:
    """GET /healthz every `interval` s for `seconds` on one keep-alive connection (a monitor); return the latencies."""
    session = requests.Session()
    latencies = []
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = len(latencies) * interval
        if elapsed < due:
            time.sleep(due - elapsed)
        sent = time.perf_counter()
        session.get(f"{url}/healthz", timeout=30).raise_for_status()
        latencies.append(time.perf_counter() - sent)
    session.close()
    return latencies


def events_with(url: str, rate: float, seconds: float, beside: Any) -> tuple[int, Any]:
    """Submit at `rate` for `seconds` from another process while `beside()` runs here; return (jobs, its result)."""
    with mp.get_context("spawn").Pool(1) as pool:
        submitting = pool.apply_async(submit_at_rate, (url, rate, seconds))
        result = beside()
        submitted = submitting.get(timeout=seconds + 60)
    time.sleep(1.5)  # the last jobs end (1 s attempts) and their events arrive
    return submitted, result


def measure_fanout(subscribers: int, processes: int, rate: float, seconds: float, load_seconds: float,
                   gen: Wrk | PythonLoad, progress: Any, serving: str = "event loop") -> dict[str, Any]:
    """Print the fan-out tables for one way of serving; return the figures the targets need.

    Phases, on one server: /healthz probed (50 requests a second, as a monitor would) and saturated (wrk) with
    no stream open, then with every stream open and idle; then events at `rate` with the probe beside them
    (server CPU measured), then events with /healthz saturated beside them.
    """
    fan_settings = {"MAX_EVENT_STREAMS": subscribers, "RATE_LIMIT": 1_000_000, "TRANSLATION_DELAY": 1.0,
                    "PREMIUM_DELAY_FACTOR": 1.0, "DELAY_JITTER": 0, "ERROR_RATE": 0, "WORKERS": 50}
    if serving == "threads":
        fan_settings["BENCH_THREADS"] = subscribers + 64  # a thread per stream, and some for the rest
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-threads"] if serving == "threads" else None
    with Server(fan_settings, command=command, name=f"fanout-{serving}") as server:
        progress(f"{serving}: /healthz with no stream open")
        probed = {"none": probe(server.url, load_seconds)}
        saturated = {"none": gen.run(server.url, "/healthz", load_seconds)}
        progress(f"opening {subscribers} streams from {processes} processes")
        holders = Subscribers(server.url, subscribers, processes)
        holders.wait_open()
        gauge = re.search(r"^http_event_streams_open ([\d.]+)$", requests.get(f"{server.url}/metrics", timeout=30).text,
                          re.MULTILINE)
        progress(f"server says {gauge.group(1) if gauge else '?'} streams are open; /healthz while idle")
        idle_cpu, idle_started = cpu_seconds(server.pid), time.perf_counter()
        probed["idle"] = probe(server.url, load_seconds)
        idle_cpu_rate = (cpu_seconds(server.pid) - idle_cpu) / (time.perf_counter() - idle_started)
        saturated["idle"] = gen.run(server.url, "/healthz", load_seconds)
        progress(f"{rate:g} jobs/s for {seconds:g} s with the /healthz probe beside them; server CPU measured")
        cpu_before, phase_events, started = cpu_seconds(server.pid), time.time(), time.perf_counter()
        submitted, probed["events"] = events_with(server.url, rate, seconds, lambda: probe(server.url, seconds))
        # Less what the probe and an idle server cost (measured while the streams were idle): the events' share.
        cpu = cpu_seconds(server.pid) - cpu_before - idle_cpu_rate * (time.perf_counter() - started)
        phase_saturated = time.time()
        progress(f"{rate:g} jobs/s for {seconds:g} s with /healthz saturated beside them")
        more, saturated["events"] = events_with(server.url, rate, seconds,
                                                lambda: gen.run(server.url, "/healthz", min(seconds, load_seconds)))
        streams = holders.collect()
    calm = delivery([[e for e in events if phase_events <= e[3] < phase_saturated] for events in streams])
    busy = delivery([[e for e in events if e[3] >= phase_saturated] for events in streams])
    how = ("python server.py: granian, /events on the event loop (simulator.http.eventstream)" if serving != "threads"
           else "waitress, streams + 64 threads: a thread per stream (the Flask view, --serve-threads)")
    print(f"## Fan-out, {how}: {subscribers} streams, {submitted} + {more} jobs\n")
    print(table(["while", "changes to every stream", "deliveries", "delivery p50 ms", "p99 ms", "max ms",
                 "progress p99 ms", "spread p99 ms"], [
        [label, f"{d['to_all']} of {d['changes']}", f"{d['deliveries']:,}", ms(d["p50"]), ms(d["p99"]), ms(d["max"]),
         ms(d["progress_p99"]), ms(d["spread_p99"])]
        for label, d in ((f"{rate:g} jobs/s, /healthz probed", calm), (f"{rate:g} jobs/s, /healthz saturated", busy))
    ]))
    print()
    per_delivery = max(0.0, cpu) / max(1, calm["deliveries"] + calm["progress"])  # short runs can come out < 0
    print(f"Server CPU for the events of the probed phase (less the idle server's and the probe's): {cpu:.2f} s, "
          f"{per_delivery * 1e6:.1f} µs per delivery.\n")
    rows = []
    for key, label in (("none", "no stream open"), ("idle", f"{subscribers} streams open, idle"),
                       ("events", f"{subscribers} streams open, {rate:g} jobs/s")):
        lat, load = probed[key], saturated[key]
        rows.append([label, ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(max(lat)), f"{load.rate:,.0f}",
                     ms(load.p99), load.errors])
    print(table(["/healthz", "probe p50 ms", "probe p99 ms", "probe max ms", "saturated req/s", "saturated p99 ms",
                 "errors"], rows))
    print()
    return {"calm": calm, "busy": busy, "probed": probed, "subscribers": subscribers, "serving": serving,
            "cpu_us": per_delivery * 1e6}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 000 jobs, 50 subscribers, 1 s of events")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--jobs", type=int, help="jobs stored for the scrape (default 100000)")
    parser.add_argument("--subscribers", type=int, help="event streams held at once (default 1000)")
    parser.add_argument("--processes", type=int, default=4, help="processes holding the streams (default 4)")
    parser.add_argument("--rate", type=float, default=5.0, help="jobs submitted per second while measuring")
    parser.add_argument("--seconds", type=float, help="how long events flow (default 10)")
    parser.add_argument("--rounds", type=int, help="scrapes per server (default 50)")
    parser.add_argument("--part", choices=("all", "scrape", "hub", "fanout"), default="all", help="what to measure")
    parser.add_argument("--server", choices=("auto", "event-loop", "threads", "both"), default="auto",
                        help="how /events is served in the fan-out (auto: both when waitress is installed)")
    parser.add_argument("--serve-threads", action="store_true", help=argparse.SUPPRESS)  # the comparison server
    args = parser.parse_args(argv)
    if args.serve_threads:
        return serve_threads()
    quick = args.quick
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    gen: Wrk | PythonLoad = Wrk(8) if use_wrk else PythonLoad(2)

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    print(f"# bench/events.py — {machine()}; {revision()}; load: {gen.describe()}\n")
    targets = []
    try:
        if args.part in ("all", "scrape"):
            n_jobs = args.jobs or (1_000 if quick else 100_000)
            scrape = measure_scrape(n_jobs, args.rounds or (10 if quick else 50), gen, progress)
            targets.append([f"scrape at {n_jobs:,} jobs ≤ 50 ms (client median)", ms(scrape),
                            _yes(scrape <= SCRAPE_TARGET)])
        if args.part in ("all", "hub"):
            measure_hub(args.subscribers or (50 if quick else 1_000), 20 if quick else 200)
        servers = {"auto": ["event loop", "threads"] if _has_waitress() else ["event loop"],
                   "both": ["event loop", "threads"], "event-loop": ["event loop"]}.get(args.server, [args.server])
        for serving in servers if args.part in ("all", "fanout") else []:
            fan = measure_fanout(args.subscribers or (50 if quick else 1_000), 1 if quick else args.processes,
                                 args.rate, args.seconds or (1.0 if quick else 10.0), 0.5 if quick else 5.0, gen,
                                 progress, serving)
            calm = fan["calm"]
            everyone = all(d["to_all"] == d["changes"] > 0 for d in (fan["calm"], fan["busy"]))
            probe_p99 = max(percentile(fan["probed"][k], 99) for k in ("idle", "events"))
            targets += [
                [f"{serving}: each event to all {fan['subscribers']} streams",
                 f"{fan['calm']['to_all'] + fan['busy']['to_all']}/{fan['calm']['changes'] + fan['busy']['changes']}",
                 _yes(everyone)],
                [f"{serving}: delivery p99 ≤ 100 ms (/healthz probed)", ms(calm["p99"]),
                 _yes(calm["p99"] <= DELIVERY_TARGET)],
                [f"{serving}: /healthz p99 ≤ 50 ms while streams are open (probe)",
                 f"{ms(percentile(fan['probed']['idle'], 99))} idle, {ms(percentile(fan['probed']['events'], 99))} "
                 "with events", _yes(probe_p99 <= HEALTHZ_TARGET)],
            ]
    finally:
        gen.close()
    if targets:
        print(table(["target", "figure", "met"], targets, "lrl"))
    return 0


def _has_waitress() -> bool:
    import importlib.util

    return importlib.util.find_spec("waitress") is not None


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    sys.exit(main())
