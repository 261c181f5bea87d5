"""`python server.py`: read the settings, open the store, build the app, start the ticker, serve, shut down cleanly."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from simulator.http import create_app
from simulator.http.aio import async_routes, error_body, full_listing
from simulator.http.bodies import body_limits
from simulator.jobfiles import DataDirError, ResultWorker
from simulator.serve import serve
from simulator.settings import KEYS, ConfigError, Settings, load
from simulator.store import StoreError, open_store
from simulator.ticker import Ticker
from simulator.webhooks.deliverer import Deliverer

log = logging.getLogger("server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Video translation job simulator (HTTP server).")
    parser.add_argument("--host", help="address to listen on (default: HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT, else 4777; 0: any free port)")
    parser.add_argument("--store", help="where jobs live: memory or sqlite:///path/to/jobs.db (default: STORE)")
    return parser


def settings_from(argv: list[str] | None) -> Settings:
    """Return the settings: .env and environment, then the command line's options on top."""
    args = _parser().parse_args(argv)
    settings = load()
    overrides = {"HOST": args.host, "PORT": args.port, "STORE": args.store}
    changes = {name: KEYS[name].check(value) for name, value in overrides.items() if value is not None}
    return dataclasses.replace(settings, **changes)


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGTERM or Ctrl-C; return 0, or 2 when it cannot start (one line says why)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(argv).with_admin_token()
    except (ConfigError, ValueError) as e:
        print(f"Invalid configuration: {e}", file=sys.stderr)
        return 2
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
    held = simulator.engine.total()
    if held:
        log.info("the store holds %d job(s); the simulation resumes", held)
    # A manual clock moves only when told (POST /admin/clock/advance): the ticker would have nothing to do.
    ticker = Ticker(simulator.engine).start() if not simulator.engine.manual_clock else None
    worker = ResultWorker(files).start()
    hooks = simulator.webhooks
    deliverer = Deliverer(store, simulator.engine.config, callback_secret=hooks.callback_secret,
                          doorbell=hooks.doorbell, workers=settings.WEBHOOK_WORKERS,
                          clock=simulator.engine.now).start()
    if settings.admin_token_generated:
        # Printed once, never logged: the operator needs it for admin calls.
        print(f"ADMIN_TOKEN (generated for this run): {settings.ADMIN_TOKEN}", flush=True)
    if hooks.callback_secret_generated:
        # The same on every start with the same store: receivers of callback_url deliveries verify with it.
        print(f"WEBHOOK_SECRET (kept in the store): {hooks.callback_secret}", flush=True)
    try:
        code = serve(app, settings, simulator.release_waiters, routes=lambda loop: async_routes(app, loop),
                     heavy=full_listing, body_limit=body_limits(app), error_body=error_body)
    finally:
        if ticker is not None:
            ticker.stop()
        worker.stop()
        deliverer.stop()
        files.close()
        store.close()
    if code == 0:
        log.info("stopped")
    return code
