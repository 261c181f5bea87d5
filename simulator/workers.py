"""`python server.py --workers N`: N independent server processes sharing one port and one Redis store.

Each worker is an ordinary `python server.py --reuse-port` (granian embedded, as one process serves;
SO_REUSEPORT: the kernel spreads new connections over the processes listening on the port) with the
same settings, the same admin token and PROCESSES=1. This process holds the port first, as one server
does (a placeholder bound with SO_REUSEPORT, never listening: a port in use is refused, PORT=0 picks
one), so that the workers join it and nobody else can take it meanwhile. The workers share nothing but
the port and the store: jobs, lanes, the rate limit, runtime settings and the ticker's lease are in
Redis; uploads and results stay in a folder of each worker's own (see the README's Videos). This process
only starts them, relays their output, prints one `Serving on` line once all of them serve, restarts a
worker that dies, and on SIGTERM or Ctrl-C stops them all. A worker whose parent disappears stops itself.

Elsewhere (another machine, a container per process) run `python server.py --reuse-port` or plain
`python server.py` behind a load balancer, each with the same STORE and ADMIN_TOKEN: that is all
`--workers` does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from simulator.serve import PortBusy, hold_port
from simulator.settings import Settings

log = logging.getLogger("server")
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
#: A worker that exits this soon after starting is not restarted: the settings or the store are wrong.
_STARTUP_GRACE = 10.0


class Workers:
    """Start, watch and stop the worker processes."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.processes: dict[int, subprocess.Popen[str]] = {}
        self.started: dict[int, float] = {}
        self.stopping = False

    def environment(self) -> dict[str, str]:
        """Return a worker's environment: this one, the process settings fixed, the package importable."""
        env = dict(os.environ)
        s = dataclasses.replace(self.settings, PORT=self.port, PROCESSES=1)
        for name in ("STORE", "HOST", "PORT", "THREADS", "PROCESSES", "ADMIN_TOKEN"):
            env[name] = str(getattr(s, name))
        if s.RANDOM_SEED is not None:
            env["RANDOM_SEED"] = str(s.RANDOM_SEED)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env["SIMULATOR_PARENT_PID"] = str(os.getpid())
        return env

    def spawn(self, index: int) -> None:
        """Start worker `index` and relay its output."""
        command = [sys.executable, "-c", "import sys; from simulator.main import main; sys.exit(main(sys.argv[1:]))",
                   "--reuse-port"]
        process = subprocess.Popen(command, env=self.environment(), stdout=subprocess.PIPE, text=True, bufsize=1)  # noqa: S603
        self.processes[index] = process
        self.started[index] = time.monotonic()
        threading.Thread(target=self._relay, args=(index, process), daemon=True).start()

    def _relay(self, index: int, process: subprocess.Popen[str]) -> None:
        for line in process.stdout or ():
            self.lines.put((index, line.rstrip("\n")))
        self.lines.put((index, None))

    def stop(self) -> None:
        """Send SIGTERM to every worker and wait for them (SIGKILL after 15 s)."""
        self.stopping = True
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_workers(settings: Settings) -> int:
    """Run `settings.PROCESSES` workers until SIGTERM or Ctrl-C; return 0, or 2 when they cannot start."""
    try:
        reserved = hold_port(settings.HOST, settings.PORT)
    except PortBusy as e:
        print(e, file=sys.stderr, flush=True)
        return 2
    port = int(reserved.getsockname()[1])
    workers = Workers(settings, port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        workers.lines.put((-1, None))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    count = settings.PROCESSES
    for index in range(count):
        workers.spawn(index)
    listening: set[int] = set()
    announced = False
    try:
        while not stop.is_set():
            index, line = workers.lines.get()
            if index < 0:
                continue
            if line is not None:
                if line.startswith("Serving on "):
                    listening.add(index)
                    if len(listening) == count and not announced:
                        announced = True
                        host = f"[{settings.HOST}]" if ":" in settings.HOST else settings.HOST
                        log.info("%d worker processes listen on port %d", count, port)
                        print(f"Serving on http://{host}:{port}", flush=True)
                        reserved.close()  # every worker listens: the port is held by them now
                elif not line.startswith("ADMIN_TOKEN"):
                    print(f"[worker {index}] {line}", flush=True)
                continue
            code = workers.processes[index].wait()
            if stop.is_set() or workers.stopping:
                continue
            if index not in listening and time.monotonic() - workers.started[index] < _STARTUP_GRACE:
                print(f"worker {index} exited with code {code} while starting; stopping", file=sys.stderr, flush=True)
                workers.stop()
                return 2
            log.warning("worker %d (pid %d) exited with code %s; starting another", index,
                        workers.processes[index].pid, code)
            listening.discard(index)
            workers.spawn(index)
    finally:
        workers.stop()
        reserved.close()
    log.info("stopped")
    return 0


def watch_parent() -> None:
    """In a worker: stop this process (SIGTERM) when the `--workers` process that started it is gone."""
    parent = os.environ.get("SIMULATOR_PARENT_PID")
    if not parent:
        return

    def watch() -> None:
        while True:
            time.sleep(1)
            if os.getppid() != int(parent):
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
