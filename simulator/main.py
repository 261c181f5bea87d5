"""`python server.py`: read the settings, open the store, build the app, start the ticker, serve, shut down cleanly.

With a store shared by several processes (Redis), it also follows the store's change stream and runs
the ticker only while it holds the leader lease (`simulator.cluster`); `--workers N` starts N such
processes on one port (`simulator.workers`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import sys

from simulator.http import create_app
from simulator.http.aio import async_routes, error_body, full_listing
from simulator.http.bodies import body_limits
from simulator.jobfiles import DataDirError, ResultWorker
from simulator.serve import serve
from simulator.settings import KEYS, ConfigError, Settings, load
from simulator.store import StoreError, open_store
from simulator.ticker import Clockwork
from simulator.webhooks.deliverer import Deliverer

log = logging.getLogger("server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Video translation job simulator (HTTP server).")
    parser.add_argument("--host", help="address to listen on (default: HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT, else 4777; 0: any free port)")
    parser.add_argument("--store", help="where jobs live: memory, sqlite:///path/to/jobs.db or "
                        "redis://host:port/db (default: STORE)")
    parser.add_argument("--workers", type=int, help="server processes sharing the port (default: PROCESSES, else 1); "
                        "more than one needs STORE=redis://…")
    parser.add_argument("--reuse-port", action="store_true",
                        help="bind with SO_REUSEPORT, so that several servers share the port (what --workers runs)")
    return parser


def settings_from(argv: list[str] | None) -> Settings:
    """Return the settings: .env and environment, then the command line's options on top."""
    args = _parser().parse_args(argv)
    settings = load()
    overrides = {"HOST": args.host, "PORT": args.port, "STORE": args.store, "PROCESSES": args.workers}
    changes = {name: KEYS[name].check(value) for name, value in overrides.items() if value is not None}
    return dataclasses.replace(settings, **changes)


def _refuse_workers(settings: Settings) -> str | None:
    """Return why several processes cannot run on this store (None: they can)."""
    if settings.PROCESSES > 1 and not hasattr(socket, "SO_REUSEPORT"):
        return (f"--workers {settings.PROCESSES} needs SO_REUSEPORT, which this system lacks: run one "
                "python server.py per port behind a load balancer, all with the same STORE=redis://…")
    if settings.PROCESSES > 1 and not settings.STORE.startswith(("redis://", "rediss://")):
        return (f"--workers {settings.PROCESSES} needs a store the processes share: set STORE=redis://host:port/db. "
                f"STORE={settings.STORE.split('?')[0]} lives inside one process (each worker would run a simulation "
                "of its own).")
    if settings.PROCESSES > 1 and settings.CLOCK == "manual":
        return (f"--workers {settings.PROCESSES} cannot run with CLOCK=manual: each process would keep simulated time "
                "of its own. Run one process to move the clock yourself.")
    if settings.PROCESSES > 1 and settings.DATA_DIR:
        return (f"--workers {settings.PROCESSES} cannot share DATA_DIR: the data folder is one process's (a lock "
                "refuses the others). Unset DATA_DIR: each worker then keeps its uploads and results in a folder of "
                "its own (see Videos).")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or Ctrl-C; return 0, or 2 when it cannot start (one line says why)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(argv).with_admin_token()
        reuse_port = _parser().parse_args(argv).reuse_port
    except (ConfigError, ValueError) as e:
        print(f"Invalid configuration: {e}", file=sys.stderr)
        return 2
    refusal = _refuse_workers(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    if settings.PROCESSES > 1:
        from simulator.workers import run_workers

        if settings.admin_token_generated:
            print(f"ADMIN_TOKEN (generated for this run): {settings.ADMIN_TOKEN}", flush=True)
        return run_workers(settings)
    try:
        store = open_store(settings.STORE)
    except StoreError as e:
        print(f"Cannot open the job store: {e}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings, store=store)
    except ConfigError as e:
        store.close()
        print(f"Invalid configuration: {e}", file=sys.stderr)
        return 2
    simulator = app.extensions["simulator"]
    files = app.extensions["job_files"]
    if settings.DATA_DIR:
        try:
            files.open()  # a configured folder is checked now; this run's own one is made on first use
        except DataDirError as e:
            print(f"Cannot use the data directory: {e}", file=sys.stderr)
            store.close()
            return 2
    engine = simulator.engine
    held = engine.total()
    if held:
        log.info("the store holds %d job(s); the simulation resumes", held)
    if store.shared:
        from simulator.workers import watch_parent

        watch_parent()
    clockwork = Clockwork(engine).start()
    worker = ResultWorker(files).start()
    hooks = simulator.webhooks
    deliverer = Deliverer(store, engine.config, callback_secret=hooks.callback_secret, doorbell=hooks.doorbell,
                          workers=settings.WEBHOOK_WORKERS, clock=engine.now).start()
    if settings.admin_token_generated:
        # Printed once, never logged: the operator needs it for admin calls.
        print(f"ADMIN_TOKEN (generated for this run): {settings.ADMIN_TOKEN}", flush=True)
    if hooks.callback_secret_generated:
        # The same on every start with the same store: receivers of callback_url deliveries verify with it.
        print(f"WEBHOOK_SECRET (kept in the store): {hooks.callback_secret}", flush=True)
    try:
        code = serve(app, settings, simulator.release_waiters, routes=lambda loop: async_routes(app, loop),
                     heavy=full_listing, body_limit=body_limits(app), reuse_port=reuse_port, error_body=error_body)
    finally:
        clockwork.stop()
        worker.stop()
        deliverer.stop()
        files.close()
        store.close()
    if code == 0:
        log.info("stopped")
    return code
