"""Several server processes on one Redis (issue 16): correctness with 2 and 4 processes, and what Redis costs.

    python bench/scale.py            # the figures in BENCHMARKS.md
    python bench/scale.py --quick    # a smoke run (the test suite runs it)

A throw-away redis-server is started on a free port (`simulator.testing.redis_server`). For each
process count it starts that many `python server.py` processes on ports of their own, all with the
same STORE (so the spread over processes is exact, not left to SO_REUSEPORT's hashing), and measures:

- 50 concurrent free submissions of one user, round-robin over the processes: exactly RATE_LIMIT pass;
- 2,000 concurrent submissions (16 client threads, round-robin): 2,000 distinct jobs, every one stored;
- jobs submitted to one process and long-polled on the next: the lag from `finished_at` to the answer;
- kill -9 of the lease holder while clients submit and read: acknowledged jobs all there afterwards,
  the others' requests all answered, and how long until another process takes the lease and a job
  that fell due meanwhile (with nobody asking) is completed by its ticker.

Then the cost of Redis, in one process: round trips per request counted on the connection (a
`redis.Connection` subclass counting what it sends: one per script or command), and GET /status/<id>
requests per second on the Redis store against the memory store, side by side, alternating runs,
medians (`--rounds`).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

from bench._common import Server, epoch, machine, ms, percentile, revision, table  # noqa: E402
from bench.load import PythonLoad, Wrk  # noqa: E402
from simulator.testing.redis_server import RedisServer  # noqa: E402

SETTINGS = {"RATE_LIMIT": 5, "TRANSLATION_DELAY": 0.5, "PREMIUM_DELAY_FACTOR": 0.5, "DELAY_JITTER": 0.0,
            "ERROR_RATE": 0.0, "WORKERS": 4, "MAX_WAIT": 30, "JOB_TTL": 3600, "MAX_JOBS": 1_000_000}


class CountingConnection(redis.Connection):
    """A Redis connection that counts what it sends: one count per round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Count, then send."""
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def start_fleet(redis_url: str, count: int, settings: dict[str, Any]) -> tuple[list[Server], str]:
    """Start `count` server processes on one new prefix; return them and the prefix."""
    prefix = f"scale{count}-{uuid.uuid4().hex[:6]}"
    servers = [Server({**SETTINGS, **settings, "STORE": f"{redis_url}?prefix={prefix}"}, name=f"p{i}")
               for i in range(count)]
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready()
    return servers, prefix


def rate_limit_run(servers: list[Server], submissions: int) -> tuple[int, int]:
    """Send `submissions` concurrent free submissions of one user, round-robin; return (accepted, refused)."""
    user = f"limited-{uuid.uuid4().hex[:6]}"

    def one(i: int) -> int:
        return requests.post(servers[i % len(servers)].url + "/translate", headers={"X-User-Id": user},
                             timeout=30).status_code

    with ThreadPoolExecutor(max_workers=submissions) as pool:
        codes = list(pool.map(one, range(submissions)))
    return codes.count(202), codes.count(429)


def burst_run(servers: list[Server], submissions: int, threads: int = 16) -> dict[str, Any]:
    """Submit `submissions` jobs from `threads` threads, round-robin; check each is stored once."""
    ids: list[str] = []
    errors: list[int] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        with requests.Session() as session:
            for i in range(start, submissions, threads):
                role = "premium" if i % 2 else "free"
                answer = session.post(servers[i % len(servers)].url + "/translate", json={"role": role},
                                      headers={"X-User-Id": f"burst-{i}"}, timeout=60)
                with lock:
                    (ids.append(answer.json()["job_id"]) if answer.status_code == 202 else errors.append(
                        answer.status_code))

    began = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    listed: set[str] = set()
    offset = 0
    while True:
        page = requests.get(servers[-1].url + "/jobs", params={"offset": offset, "limit": 1000}, timeout=60).json()
        got = [job_id for roles in page.values() for jobs in roles.values() for job_id in jobs]
        listed.update(got)
        if len(got) < 1000:
            break
        offset += 1000
    return {"accepted": len(ids), "distinct": len(set(ids)), "errors": len(errors), "stored": len(set(ids) & listed),
            "seconds": elapsed}


def lag_run(servers: list[Server], jobs: int) -> list[float]:
    """Submit premium jobs to one process and long-poll each on the next; return the lags behind `finished_at`."""
    lags: list[float] = []

    def follow(i: int) -> None:
        home, other = servers[i % len(servers)], servers[(i + 1) % len(servers)]
        with requests.Session() as session:
            answer = session.post(home.url + "/translate", json={"role": "premium"}, timeout=30)
            job = answer.json()
            while answer.ok and not job["done"]:
                answer = session.get(f"{other.url}/status/{job['job_id']}",
                                     params={"wait": 20, "since": job["version"]}, timeout=30)
                job = answer.json() if answer.ok else job
            if not answer.ok:
                raise RuntimeError(f"{answer.status_code} {answer.text}")
            lags.append(time.time() - epoch(job["finished_at"]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(follow, range(jobs)))
    return lags


def holder_of(keys: redis.Redis, lease: str, servers: list[Server]) -> tuple[str, Server]:
    """Return the lease's value and the server process holding it (waiting until one does)."""
    while True:
        holder = keys.get(lease)
        if holder is not None:
            for server in servers:
                if server.process is not None and server.pid == int(holder.split(":")[0]):
                    return holder, server
        time.sleep(0.01)


def kill_run(servers: list[Server], redis_url: str, prefix: str, traffic: float = 1.0) -> dict[str, Any]:
    """Kill -9 the lease holder twice: under traffic (is anything lost, do the others answer?), then with no
    request coming in, where only the ticker can end attempts (how soon do they end again?)."""
    keys = redis.Redis.from_url(redis_url, decode_responses=True)
    lease, running = "{" + prefix + "}:leader", "{" + prefix + "}:running"
    holder, victim = holder_of(keys, lease, servers)
    acknowledged: dict[str, dict[str, Any]] = {}
    failures = {"victim": 0, "survivors": 0}
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        with requests.Session() as session:
            i = 0
            while not stop.is_set():
                server = servers[(n + i) % len(servers)]
                i += 1
                try:
                    answer = session.post(server.url + "/translate", json={"role": "premium"}, timeout=10)
                    if answer.status_code == 202:
                        with lock:
                            acknowledged[answer.json()["job_id"]] = answer.json()
                except requests.RequestException:
                    with lock:
                        failures["victim" if server is victim else "survivors"] += 1
                    session.close()

    pool = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in pool:
        thread.start()
    time.sleep(traffic)
    os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    victim.process.wait()  # type: ignore[union-attr]
    while keys.get(lease) in (None, holder):
        time.sleep(0.005)
    takeover = time.monotonic() - killed
    time.sleep(traffic)
    stop.set()
    for thread in pool:
        thread.join()
    survivors = [s for s in servers if s is not victim]
    lost = []
    with requests.Session() as session:
        for job_id, job in acknowledged.items():
            answer = session.get(f"{survivors[-1].url}/status/{job_id}", timeout=10)
            if answer.status_code != 200 or answer.json()["version"] < job["version"]:
                lost.append(job_id)
    # A replacement for the dead process (what --workers does), then the holder killed with no request coming:
    # attempts that fall due meanwhile end only when another process's ticker runs.
    victim.start()
    for _ in range(12):  # attempts to end while nobody asks (premium: 0.25 s each)
        requests.post(victim.url + "/translate", json={"role": "premium"}, timeout=10)
    holder, victim = holder_of(keys, lease, servers)
    os.kill(victim.pid, signal.SIGKILL)
    killed_at, killed = time.time(), time.monotonic()
    first_due = None
    while True:
        head = keys.zrange(running, 0, 0, withscores=True)
        if head and head[0][1] > killed_at and first_due is None:
            first_due = head[0]  # the first attempt due after the kill
        if first_due is not None and (not head or head[0][0] != first_due[0]):
            break  # it was ended (by the new holder's ticker: no one else is asked anything)
        if time.monotonic() - killed > 30:
            raise RuntimeError("no attempt ended within 30 s of the kill")
        time.sleep(0.002)
    resumed = time.monotonic() - killed
    late = time.time() - first_due[1]
    victim.process.wait()  # type: ignore[union-attr]
    return {"acknowledged": len(acknowledged), "lost": len(lost), "takeover": takeover, **failures,
            "resumed": resumed, "late": late}


def count_round_trips(redis_url: str) -> dict[str, tuple[float, float]]:
    """Count Redis round trips per request in one process (Flask's test client, the Redis store).

    Two counts: the store's own requests, on its connection (`CountingConnection`); and every command
    clients sent meanwhile as Redis's MONITOR shows them (not those a script ran), which includes
    flask-limiter's on its own connection. Neither pipelines, so each is one round trip.
    """
    from server import create_app
    from simulator.store.redis_store import RedisStore

    store = RedisStore(f"{redis_url}?prefix=rt-{uuid.uuid4().hex[:6]}", connection_class=CountingConnection)
    app = create_app({**SETTINGS, "WORKERS": 2, "RATE_LIMIT": 1000, "ADMIN_TOKEN": "x"}, store=store)
    client = app.test_client()
    marker = redis.Redis.from_url(redis_url, decode_responses=True)
    monitor = Monitor(redis_url)
    figures: dict[str, tuple[float, float]] = {}
    ids: list[str] = []

    def per(name: str, n: int, call: Any) -> None:
        before = CountingConnection.sent
        marker.echo(f"bench-mark {name}")
        for i in range(n):
            call(i)
        marker.echo("bench-mark end")
        figures[name] = ((CountingConnection.sent - before) / n, n)

    per("warm-up", 3, lambda i: client.post("/translate", json={"role": "premium"}))
    per("engine: submit (premium)", 50, lambda i: ids.append(app.extensions["simulator"].engine.submit(
        "premium", "eng")[0]["job_id"]))
    per("engine: get (a status read)", 50, lambda i: app.extensions["simulator"].engine.get(ids[i]))
    per("POST /translate premium", 50, lambda i: client.post("/translate", json={"role": "premium"},
                                                               headers={"X-User-Id": "p"}))
    per("POST /translate free (rate limit checked)", 50, lambda i: client.post("/translate",
                                                                                 headers={"X-User-Id": f"f{i}"}))
    per("POST /translate free, Idempotency-Key", 50, lambda i: client.post(
        "/translate", headers={"X-User-Id": f"k{i}", "Idempotency-Key": f"key-{i}"}))
    per("GET /status/<id> (queued job)", 50, lambda i: client.get(f"/status/{ids[-1]}"))
    per("GET /status/<id> (running job)", 50, lambda i: client.get(f"/status/{ids[0]}"))
    per("GET /status (newest of a user)", 50, lambda i: client.get("/status", headers={"X-User-Id": "p"}))
    per("GET /healthz", 50, lambda i: client.get("/healthz"))
    store.close()
    sent = monitor.stop()
    for name, (store_trips, n) in list(figures.items()):
        figures[name] = (store_trips, sent.get(name, 0) / n)
    del figures["warm-up"]
    return figures


def redis_cpu(redis_url: str, count: int) -> dict[str, float]:
    """Return Redis's own CPU time (µs, INFO cpu) per engine submission and per status read, in one process.

    What one Redis core can serve at most: 1 s divided by these. No MONITOR runs meanwhile.
    """
    import config
    from jobs import JobEngine
    from simulator.store.redis_store import RedisStore

    server = redis.Redis.from_url(redis_url)

    def cpu() -> float:
        info = server.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    store = RedisStore(f"{redis_url}?prefix=cpu-{uuid.uuid4().hex[:6]}")
    engine = JobEngine(config.from_mapping({**SETTINGS, "TRANSLATION_DELAY": 3600}), store=store)
    figures = {}
    before = cpu()
    ids = [engine.submit("premium", f"u{i % 50}")[0]["job_id"] for i in range(count)]
    figures["submission"] = (cpu() - before) / count * 1e6
    before = cpu()
    for i in range(count):
        engine.get(ids[i])
    figures["status read"] = (cpu() - before) / count * 1e6
    store.close()
    return figures


class Monitor:
    """Redis's MONITOR in a thread: commands sent by clients (not by scripts) between `ECHO bench-mark` lines."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = redis.Redis.from_url(url, decode_responses=True)
        self.counts: dict[str, int] = {}
        self.ready = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        current = None
        with self.connection.monitor() as monitor:
            self.ready.set()
            for command in monitor.listen():
                text = command["command"]
                if text.startswith("ECHO bench-mark"):
                    current = text.removeprefix("ECHO bench-mark ")
                    if current == "done":
                        break
                    if current == "end":
                        current = None
                elif current is not None and command.get("client_type") != "lua":
                    self.counts[current] = self.counts.get(current, 0) + 1
        self.done.set()

    def stop(self) -> dict[str, int]:
        """Stop monitoring; return the commands counted per measurement."""
        redis.Redis.from_url(self.url).echo("bench-mark done")
        self.done.wait(10)
        return self.counts


def throughput(redis_url: str, seconds: float, rounds: int) -> dict[str, list[float]]:
    """GET /status/<id> req/s, one process each, memory and Redis side by side in alternating runs."""
    import shutil

    generator = Wrk(8) if shutil.which("wrk") else PythonLoad(4)
    servers = {
        "memory": Server({**SETTINGS, "STORE": "memory"}, name="memory"),
        "redis": Server({**SETTINGS, "STORE": f"{redis_url}?prefix=tp-{uuid.uuid4().hex[:6]}"}, name="redis"),
    }
    rates: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for server in servers.values():
            server.start()
        paths = {}
        for name, server in servers.items():
            for _ in range(6):  # a few queued and running jobs, as a status read meets them
                job_id = requests.post(server.url + "/translate", json={"role": "premium"}, timeout=10).json()["job_id"]
            paths[name] = f"/status/{job_id}"
        for _ in range(rounds):
            for name, server in servers.items():
                rates[name].append(generator.run(server.url, paths[name], seconds).rate)
    finally:
        generator.close()
        for server in servers.values():
            server.stop()
    print(f"GET /status/<id> load: {generator.describe()}, {seconds:g} s per run\n")
    return rates


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the tables; exit 1 if a correctness target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small numbers: a smoke run")
    parser.add_argument("--rounds", type=int, help="alternating throughput runs per store (default 5; quick 1)")
    args = parser.parse_args(argv)
    quick = args.quick
    counts = (2,) if quick else (2, 4)
    burst = 100 if quick else 2000
    lag_jobs = 4 if quick else 100
    lag_rounds = 1 if quick else 3
    rounds = args.rounds or (1 if quick else 5)
    seconds = 0.3 if quick else 3.0
    print(f"# bench/scale.py — {machine()}; {revision()}; load average {os.getloadavg()[0]:.1f} at the start\n")
    rows: list[list[Any]] = []
    failed = False
    with RedisServer() as redis_server:
        version = redis.Redis.from_url(redis_server.url).info("server")["redis_version"]
        print(f"redis-server {version} ({redis_server.binary})\n")
        for count in counts:
            servers, prefix = start_fleet(redis_server.url, count, {})
            try:
                accepted, refused = rate_limit_run(servers, 50)
                rounds_of_lags = [lag_run(servers, lag_jobs) for _ in range(lag_rounds)]
                done = burst_run(servers, burst)
                killed = kill_run(servers, redis_server.url, prefix, 0.3 if quick else 1.0)
            finally:
                for server in servers:
                    server.stop()
            p95s = [percentile(lags, 95) for lags in rounds_of_lags]
            p50 = statistics.median(percentile(lags, 50) for lags in rounds_of_lags)
            p95 = statistics.median(p95s)
            ok = {
                "limit": accepted == SETTINGS["RATE_LIMIT"],
                "burst": done["distinct"] == done["stored"] == burst and not done["errors"],
                "lag": p95 <= 0.050,
                "kill": killed["lost"] == 0 and killed["survivors"] == 0,
            }
            # Correctness always counts; the timing targets only in a full run on a quiet machine.
            failed = failed or not (ok["limit"] and ok["burst"] and ok["kill"])
            failed = failed or (not quick and not (ok["lag"] and max(killed["takeover"], killed["resumed"]) <= 2.0))
            rows += [
                [f"{count} processes: 50 concurrent free submissions, one user", f"{accepted} accepted, {refused} 429",
                 f"exactly {SETTINGS['RATE_LIMIT']}", _yes(ok["limit"])],
                [f"{count} processes: {burst:,} concurrent submissions (16 threads)",
                 f"{done['distinct']:,} distinct, {done['stored']:,} stored, {done['errors']} errors, "
                 f"{burst / done['seconds']:,.0f}/s", f"{burst:,} distinct", _yes(ok["burst"])],
                [f"{count} processes: long-poll on another process, lag behind finished_at ({lag_rounds} rounds × "
                 f"{lag_jobs} jobs, medians)", f"p50 {ms(p50)} ms, p95 {ms(p95)} ms (p95 of each round: "
                 f"{', '.join(ms(x) for x in p95s)})", "p95 ≤ 50 ms", _yes(ok["lag"])],
                [f"{count} processes: kill -9 of the lease holder under traffic",
                 f"{killed['acknowledged']} acknowledged, {killed['lost']} lost; failed requests: "
                 f"{killed['victim']} to the killed one, {killed['survivors']} to the others",
                 "0 lost, 0 to the others", _yes(ok["kill"])],
                [f"{count} processes: another process holds the ticker lease after the kill (under traffic)",
                 f"{killed['takeover']:.2f} s", "≤ 2 s", _yes(killed["takeover"] <= 2.0)],
                [f"{count} processes: kill -9 of the holder, no requests: the first attempt due after it ends",
                 f"{killed['resumed']:.2f} s after the kill ({killed['late']:.2f} s late)", "≤ 2 s",
                 _yes(killed["resumed"] <= 2.0)],
            ]
        trips = count_round_trips(redis_server.url)
        redis_costs = redis_cpu(redis_server.url, 200 if quick else 5000)
        rates = throughput(redis_server.url, seconds, rounds)
    print(table(["measure", "figure", "target", "met"], rows, "llll"))
    print()
    print(table(["request (one process, Redis store)", "store round trips", "all Redis commands (+ limiter)"],
                [[name, f"{store:.2f}", f"{every:.2f}"] for name, (store, every) in trips.items()], "lrr"))
    print()
    print(table(["Redis CPU, one process (INFO cpu)", "µs each", "one Redis core's ceiling"],
                [[name, f"{us:.1f}", f"{1e6 / us:,.0f}/s"] for name, us in redis_costs.items()], "lrr"))
    print()
    memory, on_redis = statistics.median(rates["memory"]), statistics.median(rates["redis"])
    ratio = on_redis / memory
    print(table(["GET /status/<id>, one process", "req/s (median)", "runs"],
                [["memory store", f"{memory:,.0f}", ", ".join(f"{r:,.0f}" for r in rates["memory"])],
                 ["Redis store", f"{on_redis:,.0f}", ", ".join(f"{r:,.0f}" for r in rates["redis"])],
                 ["Redis ÷ memory", f"{ratio:.2f}×", "target ≥ 0.5×"]], "lrl"))
    status_trips = trips["GET /status/<id> (queued job)"][1]
    submit_trips = trips["POST /translate premium"][1]
    print(f"\nstatus read: {status_trips:.2f} round trips (target 1); submission: {submit_trips:.2f} (target ≤ 2); "
          f"Redis ÷ memory {ratio:.2f}× (target ≥ 0.5×)")
    return 1 if failed else 0


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


if __name__ == "__main__":
    sys.exit(main())
